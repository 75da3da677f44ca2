//! The remote backend: commands and transfers go to the hosts' sessions (through the fleet's
//! workers); temporary files a lost connection left behind are removed at the next contact.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::interface::{Backend, Call, Download, TransferError, Upload};
use super::regular_file::{local_target, not_regular, regular_file};
use super::run_locally::run_locally;
use crate::event::EventKind;
use crate::failure::Failure;
use crate::fleet::Fleet;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::ssh::exec::{self, Drain, Echo, ExecOptions, ExecOutput, ExitStatus, Source};
use crate::ssh::SshError;
use crate::stop::{Stop, StopReason};
use crate::transfer;

/// How long asking whether a stopped upload had placed its file may take (one short exec).
const PLACED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A command owed to a host at the next contact, with its stdin (the sudo password line), the
/// name its messages give it, what is said of what it would have removed should it never
/// succeed in this run, and what an exit at a second signal says of that.
struct Owed {
    command: String,
    stdin: Option<Vec<u8>>,
    label: String,
    left: String,
    _said: crate::interrupt::LeftBehind,
}

/// Commands go to the hosts' sessions.
pub struct Remote {
    fleet: Arc<Fleet>,
    /// Once set, no further command is dispatched.
    cancel: Arc<AtomicBool>,
    /// Once set, in-flight commands are stopped (a supervised or PTY command's process group,
    /// a transfer's channel), each for its reason.
    kill: Stop,
    /// A run's own flags among `kill`'s, cleared when its failure hooks start (watch mode).
    run_flags: Vec<Arc<AtomicBool>>,
    /// Every command gets a pseudo-terminal (`--pty`).
    pty: bool,
    /// Hosts connected with the first `prepare`: every host of the run, used or not.
    hosts: Vec<HostTarget>,
    /// Set once `hosts` have been connected.
    opened: OnceLock<()>,
    /// Per host, commands (and their stdin) owed to it at the next contact: removals of
    /// temporary files a lost connection left behind.
    owed: Mutex<HashMap<String, Vec<Owed>>>,
}

impl Remote {
    /// A backend over `fleet` for one run: Ctrl-C (the fleet's flag) stops dispatching and
    /// stops in-flight commands (a PTY's terminal hung up; otherwise the supervisor's process
    /// group, see `ssh::supervisor`); transfers and commands the host runs without the
    /// supervisor are waited for.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let flag = fleet.interrupted.clone();
        Remote {
            fleet,
            cancel: flag.clone(),
            kill: Stop::flag(flag, StopReason::Interrupted),
            run_flags: Vec::new(),
            pty: false,
            hosts: Vec::new(),
            opened: OnceLock::new(),
            owed: Mutex::new(HashMap::new()),
        }
    }

    /// Connects `hosts` when the run first needs a session: from then on every host of the
    /// run has its session, kept alive by its heartbeat until the run ends, whether or not
    /// the current step uses it. Deferred so that a recipe failing before its first `on`
    /// connects to nothing.
    pub fn with_hosts(mut self, hosts: Vec<HostTarget>) -> Self {
        self.hosts = hosts;
        self
    }

    /// Gives every command a pseudo-terminal (`--pty`).
    pub fn with_pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }

    /// Uses a run's own flags instead of the fleet's Ctrl-C flag (watch mode, where the fleet
    /// outlives many runs): `cancel` stops dispatching, `kill` stops in-flight commands, and
    /// `run_flags`, flags of `kill` that are the run's own, are cleared for its failure hooks
    /// ([`Backend::revive`]). The fleet's Ctrl-C flag still stops every fan-out.
    pub fn with_flags(
        mut self,
        cancel: Arc<AtomicBool>,
        kill: Stop,
        run_flags: Vec<Arc<AtomicBool>>,
    ) -> Self {
        self.cancel = cancel;
        self.kill = kill;
        self.run_flags = run_flags;
        self
    }
}

impl Backend for Remote {
    fn prepare(&self, hosts: &[HostTarget]) {
        self.opened.get_or_init(|| self.fleet.connect(&self.hosts));
        self.fleet.connect(hosts);
    }

    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        if let Some(label) = &how.label {
            self.fleet.sink.emit(
                &Arc::from(""),
                EventKind::OnCommand {
                    hosts: commands.iter().map(|(h, _)| h.clone()).collect(),
                    command: label.clone(),
                },
            );
        }
        for (host, _) in commands {
            self.settle(host, false);
        }
        let how = FanOut {
            pty: how.pty || self.pty,
            cancel: Some(self.cancel.clone()),
            // The run's stops first, then the caller's (a nested `on`'s enclosing step).
            kill: self.kill.clone().or(how.kill.clone()),
            ..how.clone()
        };
        self.fleet.exec(commands, &how)
    }

    fn exec(&self, host: &str, command: &str, call: Call) -> Result<ExecOutput, SshError> {
        self.settle(host, false);
        self.run(host, command, call, true)
    }

    fn upload(&self, host: &str, upload: &Upload) -> Result<(), TransferError> {
        let cannot = |e: std::io::Error| {
            TransferError::Local(format!(
                "upload: cannot read {}: {e}",
                transfer::paths::shown_path(&upload.path.to_string_lossy())
            ))
        };
        // Checked before opening (a FIFO's open blocks) and before anything is sent.
        regular_file(upload.path)?;
        let left = deadline(upload.timeout);
        self.settle(host, false);
        let file = std::fs::File::open(upload.path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        if !meta.is_file() {
            return Err(not_regular(upload.path, &meta));
        }
        let mode = upload
            .mode
            .unwrap_or(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
        let reader = Arc::new(Mutex::new(transfer::digest::HashingReader::new(
            file,
            meta.len(),
        )));
        let tmp = transfer::names::upload_suffix();
        // Named as the recipe asked for it, not as the scripts sent.
        let label_words = transfer::paths::label("upload", upload.local, upload.remote);
        // Said should a second signal end tether before the upload, or its owed clean-up,
        // removed it (tester t121: 301 MB left behind, unsaid).
        let left_words = |verb: &str| {
            format!(
                "`{label_words}` {verb} its temporary directory {} on the host, with what \
                 arrived of the file: a later upload to {} removes it once nothing in it has \
                 changed for a minute, or remove it by hand",
                transfer::paths::shown_path(&transfer::names::upload_temp_path(
                    upload.remote,
                    &tmp
                )),
                transfer::paths::shown_path(upload.remote)
            )
        };
        let said_left = || {
            crate::interrupt::LeftBehind::say_as(
                crate::interrupt::Said::Recipe,
                format!("{host}: {}", left_words("may leave")),
            )
        };
        let _left = said_left();
        let receive = (upload.render)(&transfer::scripts::receive_script(
            upload.remote,
            &tmp,
            meta.len(),
        ));
        let label = label_words.clone();
        let opts = ExecOptions {
            stdin: upload.stdin_prefix.clone(),
            stdin_from: Some(Source(reader.clone())),
            label: Some(label.clone()),
            timeout: left(),
            timeout_named: upload.timeout,
            ..ExecOptions::default()
        };
        let result = self
            .send(host, &receive, opts)
            .map_err(SshError::nothing_replaced);
        // The upload began when its host ran its first part, which may be long after it was
        // asked for (its host connecting meanwhile): how far into the upload its connection
        // was lost counts from there (CI: 0.12 s more than its `command_started` said). Where
        // that part failed, nothing more is sent.
        let began = result
            .as_ref()
            .map_or_else(|_| Instant::now(), |out| out.started);
        let (sent, ended_early) = {
            let mut reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            (reader.finish().map_err(cannot), reader.ended_early())
        };
        let cleanup = || Owed {
            command: (upload.render)(&transfer::scripts::cleanup_script(upload.remote, &tmp)),
            stdin: upload.stdin_prefix.clone(),
            label: format!("removing the temporary directory of `{label_words}`"),
            left: left_words("leaves"),
            _said: said_left(),
        };
        let checked = self.check(host, &receive, result, cleanup);
        // A local read error ended the input early: it, not the short file, is the reason.
        let sent = sent?;
        // So did a file that shrank, and one written meanwhile is no version of itself: said
        // as the local file's doing, not the connection's, and nothing is placed.
        if let Some(why) = changed_while_read(upload.path, &meta, &sent, ended_early) {
            let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
            owed.entry(host.to_string()).or_default().push(cleanup());
            return Err(TransferError::Changed(format!(
                "upload {}: {why}; nothing was replaced",
                upload.local
            )));
        }
        checked?;
        let place = (upload.render)(&transfer::scripts::place_script(
            upload.remote,
            &tmp,
            &sent,
            mode,
        ));
        let opts = ExecOptions {
            stdin: upload.stdin_prefix.clone(),
            part: Some(began),
            label: Some(label),
            timeout: left(),
            timeout_named: upload.timeout,
            ..ExecOptions::default()
        };
        let result = match self.send(host, &place, opts) {
            Err(e) if e.stopped_on_host() && self.placed(host, upload, &tmp, sent.bytes, began) => {
                // Said as it happens too: an interrupted run's failure is `interrupted` alone.
                self.fleet.sink.emit(
                    &Arc::from(host),
                    EventKind::Warning {
                        message: format!(
                            "`{label_words}`: the file had been moved into place before the \
                             stop reached the host: {} is the uploaded file",
                            transfer::paths::shown_path(upload.remote)
                        ),
                    },
                );
                // Its private directory may be left, empty: removed as after any stop.
                let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
                owed.entry(host.to_string()).or_default().push(cleanup());
                return Err(TransferError::Placed(Box::new(e)));
            }
            result => result,
        };
        self.check(host, &place, result, cleanup)
    }

    fn download(&self, host: &str, download: &Download) -> Result<(), TransferError> {
        let left = deadline(download.timeout);
        self.settle(host, false);
        let local = |what: &str, e: std::io::Error| {
            TransferError::LocalWrite(format!(
                "download: cannot {what} {}: {e}",
                transfer::paths::shown_path(&download.path.to_string_lossy())
            ))
        };
        local_target(download.path)?;
        let (temp, file) = transfer::local_temp::LocalTemp::create(download.path)
            .map_err(|e| local("create a temporary file beside", e))?;
        let writer = Arc::new(Mutex::new(transfer::digest::HashingWriter::new(
            std::io::BufWriter::with_capacity(exec::CHUNK, file),
        )));
        let fetch = (download.render)(&transfer::scripts::fetch_script(download.remote));
        // Named as the recipe asked for it, not as the scripts sent.
        let label = transfer::paths::label("download", download.remote, download.local);
        let opts = ExecOptions {
            stdin: download.stdin_prefix.clone(),
            stdout_to: Some(Drain(writer.clone())),
            echo: Echo::NoStdout,
            label: Some(label.clone()),
            timeout: left(),
            timeout_named: download.timeout,
            ..ExecOptions::default()
        };
        let result = self
            .send(host, &fetch, opts)
            .map_err(SshError::nothing_replaced);
        // A local write error closed the channel: it, not the channel's end, is the reason.
        let got = writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish()
            .map_err(|e| local("write", e));
        // Counted from its host's running it, as an upload's.
        let began = match result {
            Ok(out) if out.status.success() => out.started,
            result => {
                got?;
                return Err(TransferError::Remote {
                    command: fetch,
                    result: Box::new(result),
                });
            }
        };
        let got = got?;
        let measure = (download.render)(&transfer::scripts::measure_script(download.remote));
        let opts = ExecOptions {
            stdin: download.stdin_prefix.clone(),
            echo: Echo::NoStdout,
            part: Some(began),
            label: Some(label),
            timeout: left(),
            timeout_named: download.timeout,
            ..ExecOptions::default()
        };
        let out = match self.send(host, &measure, opts) {
            Ok(out) if out.status.success() => out,
            result => {
                return Err(TransferError::Remote {
                    command: measure,
                    result: Box::new(result),
                })
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(there) = transfer::scripts::parse_measured(&text) else {
            return Err(TransferError::Changed(format!(
                "download {}: cannot read the remote file's size and checksum from `{}`",
                download.remote,
                text.trim()
            )));
        };
        if there.bytes != got.bytes {
            return Err(TransferError::Changed(format!(
                "download {}: {} of {} bytes arrived (did the file change while it was read?)",
                download.remote, got.bytes, there.bytes
            )));
        }
        if there.sha256.as_ref().is_some_and(|s| *s != got.sha256) {
            return Err(TransferError::Changed(format!(
                "download {}: arrived changed: SHA-256 differs (did the file change while it \
                 was read?)",
                download.remote
            )));
        }
        temp.place(download.mode.unwrap_or(there.mode))
            .map_err(|e| local("move the downloaded file onto", e))
    }

    fn run_locally(&self, command: &str, dir: &Path) -> Result<String, Box<Failure>> {
        let stopped = || {
            if self.fleet.interrupted() {
                Some(StopReason::Interrupted)
            } else {
                self.cancel
                    .load(Ordering::SeqCst)
                    .then_some(StopReason::RunCancelled)
            }
        };
        run_locally(&self.fleet.sink, command, dir, &stopped)
    }

    fn ordered(&self) -> bool {
        false
    }

    fn revive(&self) {
        for flag in &self.run_flags {
            flag.store(false, Ordering::SeqCst);
        }
        if self.opened.get().is_some() {
            self.fleet.pool.revive();
        }
    }

    fn never_connected(&self, host: &str) -> Option<SshError> {
        self.fleet.pool.never_connected(host)
    }
}

impl Remote {
    /// Runs what every host is owed (see [`Remote::settle`]): at the end of a run, so that an
    /// upload stopped there (Ctrl-C, SIGTERM, a cancelled watch run) leaves no temporary
    /// file behind for a next contact that will not come.
    pub fn settle_all(&self) {
        let hosts: Vec<String> = self
            .owed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for host in hosts {
            self.settle(&host, true);
        }
    }

    /// Runs what `host` is owed before anything else is sent to it: the removal of temporary
    /// files of uploads whose connection died under them, so that the remote shell could not
    /// remove them itself. A removal that fails is kept for the next contact.
    fn settle(&self, host: &str, last: bool) {
        let owed = {
            let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
            match owed.remove(host) {
                Some(list) => list,
                None => return,
            }
        };
        let mut kept = Vec::new();
        for owed in owed {
            // Named as what it does (tester t123: `reconnecting before `PATH=...; rm -rf --
            // "$d".tether-upload...``, the script itself).
            let opts = ExecOptions {
                stdin: owed.stdin.clone(),
                echo: Echo::Nothing,
                label: Some(owed.label.clone()),
                ..ExecOptions::default()
            };
            // A clean-up runs whatever stopped the run (as the failure hooks do): the stop
            // flags are not its own.
            let result = self.fleet.pool.exec_one(host, &owed.command, opts);
            self.fleet.sink.barrier();
            if !matches!(result, Ok(out) if out.status.success()) {
                // The run ends with it undone: said (tester t123: left, its path unsaid).
                if last {
                    self.fleet.sink.emit(
                        &Arc::from(host),
                        EventKind::Warning {
                            message: owed.left.clone(),
                        },
                    );
                }
                kept.push(owed);
            }
        }
        if !kept.is_empty() {
            let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
            owed.entry(host.to_string()).or_default().extend(kept);
        }
    }

    /// Whether the upload `upload` (suffix `tmp`, `size` bytes, begun at `began`), its placing
    /// step stopped on `host`, had placed its file (see [`transfer::scripts::placed_script`]).
    /// Asked whatever stopped the step, as a clean-up is; no answer is taken for no.
    fn placed(&self, host: &str, upload: &Upload, tmp: &str, size: u64, began: Instant) -> bool {
        let probe = (upload.render)(&transfer::scripts::placed_script(upload.remote, tmp, size));
        let opts = ExecOptions {
            stdin: upload.stdin_prefix.clone(),
            echo: Echo::Nothing,
            part: Some(began),
            timeout: Some(PLACED_WITHIN),
            ..ExecOptions::default()
        };
        matches!(self.fleet.pool.exec_one(host, &probe, opts),
                 Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "placed")
    }

    /// Ok when `command` (a step of an upload) succeeded. Otherwise Err; when it ended without
    /// an exit status of the remote shell (a lost connection, a signal, a timeout), the shell
    /// may not have removed the temporary file, so `cleanup` is owed to `host` (see
    /// [`Remote::settle`]).
    fn check(
        &self,
        host: &str,
        command: &str,
        result: Result<ExecOutput, SshError>,
        cleanup: impl Fn() -> Owed,
    ) -> Result<(), TransferError> {
        match &result {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) if matches!(out.status, ExitStatus::Code(_)) => {}
            _ => {
                let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
                owed.entry(host.to_string()).or_default().push(cleanup());
            }
        }
        Err(TransferError::Remote {
            command: command.to_string(),
            result: Box::new(result),
        })
    }

    /// Runs `command` on `host` with `opts` as they are (no PTY unless they say so).
    fn send(
        &self,
        host: &str,
        command: &str,
        mut opts: ExecOptions,
    ) -> Result<ExecOutput, SshError> {
        opts.stop = self.kill.clone().or(std::mem::take(&mut opts.stop));
        let result = self.fleet.pool.exec_one(host, command, opts);
        // Not a barrier: a command ending on one host of a closure's `on` must not print the
        // lines other hosts' copies are still on their way to join.
        self.fleet.sink.sync();
        result
    }

    /// Runs `command` on `host`; `terminal` says whether it may get a PTY (`--pty`, the call's
    /// own).
    fn run(
        &self,
        host: &str,
        command: &str,
        call: Call,
        terminal: bool,
    ) -> Result<ExecOutput, SshError> {
        let opts = ExecOptions {
            pty: (call.pty || self.pty) && terminal,
            stdin: call.stdin,
            timeout: call.timeout,
            reattach: call.reattach,
            stop: call.stop,
            echo: if call.quiet {
                Echo::NoStdout
            } else {
                Echo::All
            },
            ..ExecOptions::default()
        };
        self.send(host, command, opts)
    }
}

/// What is left of a transfer's `timeout` when asked, counted from now: each of its commands
/// gets that as its own (stop 42 tester t46: `on(.., #{ timeout: 0.2 }, ..)` left a 150 MB
/// upload alone, which ran 1.4 s and succeeded). `None` for none.
fn deadline(timeout: Option<std::time::Duration>) -> impl Fn() -> Option<std::time::Duration> {
    let started = Instant::now();
    move || timeout.map(|t| t.saturating_sub(started.elapsed()))
}

/// Why the local file of an upload (`meta` when it was opened) is not what was sent (`sent`),
/// if it is not: it ended early (`ended_early`: it shrank while it was read), or, all of it
/// read, was written meanwhile (its size or modification time changed). A reading that
/// stopped short for another reason (the connection was cut) is the transfer's failure.
fn changed_while_read(
    path: &Path,
    meta: &std::fs::Metadata,
    sent: &transfer::digest::Digest,
    ended_early: bool,
) -> Option<String> {
    if ended_early {
        return Some(format!(
            "the local file shrank while it was read: {} of its {} bytes could be read",
            sent.bytes,
            meta.len()
        ));
    }
    if sent.bytes != meta.len() {
        return None;
    }
    // The change time too: a write that sets the modification time back (`touch -d`) still
    // moves it (tester t121: a file written in place mid-upload, its time set back, arrived
    // as no version of itself, exit 0).
    use std::os::unix::fs::MetadataExt as _;
    let changed = |m: &std::fs::Metadata| (m.ctime(), m.ctime_nsec());
    let now = std::fs::metadata(path).ok();
    let same = now.is_some_and(|n| {
        n.len() == meta.len()
            && n.modified().ok() == meta.modified().ok()
            && changed(&n) == changed(meta)
    });
    (!same).then(|| {
        "the local file changed while it was read (its size, modification or change time is \
         not what it was when the upload began)"
            .to_string()
    })
}
