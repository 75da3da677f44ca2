//! `tether ssh HOST|ROLE [-- CMD]`: an interactive shell on one host (Deployer's `dep ssh`),
//! or one command on a pseudo-terminal, over the route a run takes (jump hosts, ProxyCommand,
//! the host key checks, the agent forwarding), without leaving tether for `ssh`.
//!
//! The host is a recipe's server, or the first server of a role; without a recipe, any name
//! `tether run --hosts` takes. With a recipe's `deploy_to`, the shell starts in
//! `<deploy_to>/current`, else in `<deploy_to>`, else in the home directory, and says where
//! when it is not `current`. The remote side gets a PTY with the local `TERM` and window
//! size (resized on SIGWINCH); the local terminal is in raw mode while the session lasts and
//! put back on every way out; the remote exit status becomes tether's.

use std::io::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::quote;
use crate::error::Error;
use crate::failure::{Failure, Kind};
use crate::fleet;
use crate::host::HostTarget;
use crate::host_text::HostText;
use crate::pool;
use crate::recipe::model::suggest;
use crate::report::Reporter;
use crate::runner;
use crate::settings::{Format, Settings};
use crate::sink::Sink;
use crate::ssh::config::Requests;
use crate::ssh::config::SshConfig;
use crate::ssh::connection::{self, Connection, WaitError};
use crate::ssh::jump::Jumps;
use crate::ssh::limiter::HandshakeLimiter;
use crate::ssh::owner::{Owner, Shared, Via};
use crate::ssh::policy::WorkerSettings;
use crate::ssh::SshError;
use crate::terminal::{self, RawMode, Signals, WindowSize};

/// `tether ssh`'s own options.
#[derive(Debug, Clone, Default)]
pub struct ShellOptions {
    /// A server of the recipe, a role (its first server), or without a recipe any host name.
    pub target: String,
    /// With a recipe: select this stage first (its servers and `deploy_to`).
    pub stage: Option<String>,
    /// The command to run instead of a shell (words joined with spaces, as `ssh` joins them);
    /// empty for a shell.
    pub command: Vec<String>,
}

/// Where the session goes: the host, how its config is read, and the directory to start in.
struct Destination {
    target: HostTarget,
    ssh_config: SshConfig,
    keepalive: Option<Duration>,
    deploy_to: Option<String>,
}

/// Runs the session; returns the exit status to exit with: the remote command's or shell's,
/// 255 when it was killed by a signal (as `ssh`), 128+N when tether itself got SIGTERM or
/// SIGHUP. Errors: an unknown host or role, or a bad recipe ([`Error::Usage`],
/// [`Error::Recipe`]); a host that cannot be reached (exit 3); a connection lost during the
/// session (exit 1).
///
/// `interrupted` is set by Ctrl-C, SIGTERM or SIGHUP (see `interrupt::install`): connecting
/// gives up at once (exit 130, as a run's connecting; `ssh` ends at Ctrl-C while it connects
/// too; stop 46 tester t59: a banner that never came was waited for 30 s); the session then
/// catches them itself (128+N).
pub fn run(
    settings: &Settings,
    opts: &ShellOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<i32, Error> {
    if let Some(shard) = settings.shard {
        // One host, named: a part of a selection means nothing here, and ignoring it would
        // open a host the shard does not hold.
        return Err(Error::Usage(format!(
            "--shard {}/{}: `tether ssh` opens the one host it is given, not a part of a \
             selection",
            shard.index, shard.count
        )));
    }
    if settings.format == Format::Json {
        // The session's terminal carries the remote side's bytes: its output can be no JSON
        // object (stop 46 tester t59: one `connected` object, then the command's raw text).
        return Err(Error::Usage(
            "--format json: `tether ssh` opens a terminal on the host, whose bytes are the \
             remote side's, not JSON objects; drop --format json (`tether run --hosts HOST \
             --format json -- CMD` runs a command with JSON output)"
                .into(),
        ));
    }
    let reporter = Reporter::start(settings);
    let dest = destination(settings, opts, reporter.sink())?;
    let command = opts.command.join(" ");
    // The `cd` is one word every login shell reads alike, and csh and tcsh cannot quote a
    // newline (stop 59 tester t95: `Unmatched` quotes, five times).
    if let Some(dir) = dest.deploy_to.as_deref().filter(|d| d.contains('\n')) {
        return Err(Error::Usage(format!(
            "deploy_to {dir:?} holds a newline: `tether ssh` cannot enter it under every login \
             shell (csh and tcsh cannot quote one)"
        )));
    }
    let remote = remote_command(dest.deploy_to.as_deref(), &command);
    // One exec request, as the command is run on a terminal (stop 59 tester t95: a 100 KB
    // command failed as "the server refused the session: Unable to send channel request").
    if let Some(r) = remote
        .as_ref()
        .filter(|r| r.sent.len() > crate::ssh::exec::MAX_EXEC)
    {
        return Err(Error::Usage(format!(
            "the command is too long for `tether ssh`: {} bytes to send, where one exec request \
             holds {} KiB (`tether run --hosts HOST -- CMD` writes a longer command to a file \
             on the host first)",
            r.sent.len(),
            crate::ssh::exec::MAX_EXEC / 1024
        )));
    }
    if settings.dry_run {
        crate::outln!(
            "{}: would open {} on a pseudo-terminal",
            dest.target.name,
            match &remote {
                Some(r) => format!("`{}`", r.shown),
                None => "a login shell".into(),
            }
        );
        return Ok(0);
    }
    let opened = open(settings, &dest, reporter.sink(), &interrupted)?;
    reporter.barrier();
    let host = dest.target.name.clone();
    let lost = |reason: String| -> Error {
        Failure::host(
            &host,
            Kind::ConnectionLost,
            HostText::new()
                .host(&host)
                .text(&format!(": the session ended: {reason}")),
        )
        .into()
    };
    let interval = fleet::heartbeat(settings, dest.keepalive).every;
    session(
        &opened.conn,
        remote.as_ref().map(|r| r.sent.as_str()),
        opened.agent.clone(),
        &opened.env,
        interval,
    )
    .map_err(lost)
}

/// The host `opts.target` names, and what the recipe (if any) says about reaching it.
fn destination(settings: &Settings, opts: &ShellOptions, sink: Sink) -> Result<Destination, Error> {
    let name = opts.target.as_str();
    if opts.stage.is_none() && !settings.recipe.exists() {
        return Ok(Destination {
            target: HostTarget::parse(name).map_err(Error::Usage)?,
            ssh_config: fleet::load_ssh_config(settings)?,
            keepalive: None,
            deploy_to: None,
        });
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let loaded = runner::load(
        &settings.recipe,
        runner::load_options(settings, interrupted, sink)?,
    )?;
    loaded.select_stage(opts.stage.as_deref())?;
    let target = {
        let recipe = loaded.rt.recipe();
        let server = match recipe.server(name) {
            Some(s) => s,
            None => {
                let in_role: Vec<&str> = recipe
                    .servers()
                    .iter()
                    .filter(|s| s.roles.iter().any(|r| r == name))
                    .map(|s| s.name.as_str())
                    .collect();
                // A host name selects its one server (`web` the server declared
                // `root@web:2222`), as `--hosts web` and `on("web")` do (stop 36 tester t20:
                // refused, with "did you mean `db`?").
                let by_name = recipe.server_for_filter(name).map_err(Error::Usage)?;
                let Some(first) = in_role
                    .first()
                    .copied()
                    .or(by_name.map(|s| s.name.as_str()))
                else {
                    let mut known = recipe.role_names();
                    known.extend(recipe.servers().iter().map(|s| s.name.clone()));
                    return Err(Error::Usage(format!(
                        "tether ssh: `{name}` is neither a server nor a role of {}{}",
                        settings.recipe.display(),
                        suggest(name, known.iter().map(String::as_str))
                    )));
                };
                if in_role.len() > 1 {
                    crate::errln!(
                        "tether: role {name}: {first}, the first of {}",
                        in_role.join(", ")
                    );
                }
                // The name came from the list of servers just above.
                recipe.server(first).ok_or_else(|| {
                    Error::Usage(format!("tether ssh: no server `{first}` in the recipe"))
                })?
            }
        };
        server.target().map_err(Error::Recipe)?
    };
    Ok(Destination {
        target,
        ssh_config: loaded.ssh_config()?,
        keepalive: loaded.keepalive()?,
        deploy_to: match loaded.fetch_string("deploy_to")? {
            Some(dir) if dir.is_empty() => {
                return Err(Error::Recipe(format!(
                    "deploy_to{}: an empty path (a directory on the host, `~/app` for one in \
                     the remote home)",
                    loaded.set_at("deploy_to")
                )))
            }
            dir => dir,
        },
    })
}

/// An open session to the destination.
struct Opened {
    conn: Connection,
    /// The local agent to forward (`ForwardAgent`), when there is one.
    agent: Option<std::path::PathBuf>,
    /// `SendEnv` and `SetEnv`, as ssh sends them on its session.
    env: Requests,
    /// Keeps the jump hosts' workers of the route alive as long as the connection.
    _owner: Owner,
}

/// Connects to the destination as a run would (its route's jump hosts get their own worker
/// threads, kept by the [`Opened`]).
fn open(
    settings: &Settings,
    dest: &Destination,
    sink: Sink,
    interrupted: &Arc<AtomicBool>,
) -> Result<Opened, Error> {
    let host = dest.target.name.as_str();
    let failed = |e: SshError| -> Error { Failure::host(host, e.kind(), e.said()).into() };
    let (mut config, hops) =
        pool::reach(&dest.ssh_config, &dest.target, settings.jump.as_deref()).map_err(failed)?;
    let unforwarded = crate::ssh::agent::not_forwarded(&config);
    if unforwarded.is_some() {
        config.forward_agent = false;
    }
    let agent = config.agent_to_forward();
    let env = config.env.requests();
    if let Some(why) = unforwarded {
        crate::errln!(
            "tether: {host}: agent forwarding was asked for (ForwardAgent / forward_agent), but \
             {why}: the session has none"
        );
    }
    let policy = WorkerSettings {
        heartbeat: fleet::heartbeat(settings, dest.keepalive).every,
        interrupted: Some(interrupted.clone()),
        ..WorkerSettings::default()
    };
    let limiter = Arc::new(HandshakeLimiter::sized_for_this_machine());
    let jumps = Jumps::new(policy.clone(), limiter.clone(), sink.clone());
    let via = jumps
        .via(hops)
        .map_err(|e| {
            failed(SshError::Session {
                host: host.to_string(),
                reason: format!("cannot start a jump host's thread: {e}"),
            })
        })?
        .map(|j| j as Arc<dyn Via>);
    let mut owner = Owner::new(
        Arc::from(host),
        host,
        config,
        via,
        policy,
        Shared {
            limiter,
            events: sink,
        },
        Arc::new(AtomicBool::new(false)),
    );
    let conn = owner.open().map_err(|e| match e {
        // Given up at a signal: an interrupt, exit 130, as a run's connecting is.
        SshError::ConnectStopped { .. } => Error::Failed(Box::new(
            Failure::host(host, e.kind(), e.said()).under_interrupt(),
        )),
        e => failed(e),
    })?;
    Ok(Opened {
        conn,
        agent,
        env,
        _owner: owner,
    })
}

/// `deploy_to` as a shell word: quoted, except a leading `~` or `~user`, which the remote
/// shell expands (a deploy_to of `~/app` is in the remote user's home).
fn shell_path(path: &str) -> String {
    if let Some(rest) = path.strip_prefix('~') {
        let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let plain_user = user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if plain_user {
            return match tail.strip_prefix('/') {
                Some(t) if !t.is_empty() => format!("~{user}/{}", quote(t)),
                _ => format!("~{user}"),
            };
        }
    }
    quote(path)
}

/// What the session runs instead of a plain shell request (see [`remote_command`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Remote {
    /// As sh text, as `-n` shows it: the `cd`, then the command or `exec "${SHELL:-/bin/sh}" -l`.
    pub shown: String,
    /// The exec request that runs it, which every login shell reads alike (see
    /// [`crate::ssh::exec::interactive`]; stop 59 tester t94: sent as sh text, the `cd` was a
    /// syntax error to fish and csh).
    pub sent: String,
}

/// The exec request for the session: `None` for a plain shell request (no `deploy_to`, no
/// command); otherwise the `cd` into `<deploy_to>/current` (falling back to `<deploy_to>`,
/// then the home directory, each fallback said on stderr), then `command`, run as `tether
/// run` runs one (by bash where the host has one), or a login shell (`exec $SHELL -l`, as
/// Deployer's `dep ssh` does).
pub fn remote_command(deploy_to: Option<&str>, command: &str) -> Option<Remote> {
    let cd = match deploy_to {
        Some(dir) => format!("{};", cd_into(dir)),
        None if command.is_empty() => return None,
        None => String::new(),
    };
    let then = match command.is_empty() {
        true => "exec \"${SHELL:-/bin/sh}\" -l",
        false => command,
    };
    Some(Remote {
        shown: format!("{cd} {then}").trim_start().to_string(),
        sent: crate::ssh::exec::interactive(&cd, command),
    })
}

/// The sh that enters `<dir>/current`, else `dir`, else the home directory, saying each
/// fallback on stderr.
fn cd_into(dir: &str) -> String {
    let base = shell_path(dir);
    let shown = |s: &str| quote(s);
    // `cd --`: a deploy_to beginning with `-` is a path, not an option; one there that cannot
    // be entered is said as such, not as missing (stop 59 tester t95: a 0700 `current` of
    // root's was said not to exist).
    format!(
        "if cd -- {base}/current 2>/dev/null; then :; \
         elif [ -e {base}/current ] && cd -- {base} 2>/dev/null; then \
         printf 'tether: %s cannot be entered by this user: in %s\\n' {cur} {dir} >&2; \
         elif cd -- {base} 2>/dev/null; then \
         printf 'tether: %s does not exist (not deployed yet?): in %s\\n' {cur} {dir} >&2; \
         elif [ -e {base} ]; then \
         printf 'tether: %s cannot be entered by this user: in the home directory\\n' {dir} >&2; cd; \
         else printf 'tether: %s does not exist: in the home directory\\n' {dir} >&2; cd; fi",
        cur = shown(&format!("{dir}/current")),
        dir = shown(dir),
    )
}

const STDIN: RawFd = 0;

/// How long a channel request (PTY, resize, close) may take before the session counts as
/// lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the channel (PTY, agent, shell or `remote`), then relays the terminal both ways
/// until the remote side exits; returns the exit status to exit with. Err: the connection
/// failed (the reason in plain words).
fn session(
    conn: &Connection,
    remote: Option<&str>,
    agent: Option<std::path::PathBuf>,
    env: &Requests,
    heartbeat: Option<Duration>,
) -> Result<i32, String> {
    let until = Instant::now() + REQUEST_TIMEOUT;
    let session = &conn.session;
    let failed = |what: &str, e: WaitError| format!("{what}: {e}");
    let mut channel = conn
        .retry(until, || session.channel_session())
        .map_err(|e| failed("cannot open a channel", e))?;
    let size = terminal::window_size(STDIN).unwrap_or(WindowSize::DEFAULT);
    // ssh sends SetEnv's TERM, else the local one; a terminal that does not say gets the
    // plainest one.
    let term = env
        .term()
        .map(str::to_string)
        .or_else(|| std::env::var("TERM").ok().filter(|t| !t.is_empty()))
        .unwrap_or_else(|| "dumb".into());
    conn.retry(until, || {
        channel.request_pty(
            &term,
            None,
            Some((
                size.cols.into(),
                size.rows.into(),
                size.width.into(),
                size.height.into(),
            )),
        )
    })
    .map_err(|e| failed("the server refused a pseudo-terminal", e))?;
    let mut forwarder = match agent {
        Some(socket) => Some(crate::ssh::agent::start(conn, &mut channel, until, socket)?),
        None => None,
    };
    crate::ssh::env::send(conn, &mut channel, env, until)
        .map_err(|e| failed("sending environment variables (SetEnv/SendEnv) failed", e))?;
    match remote {
        Some(command) => conn.retry(until, || channel.exec(command)),
        None => conn.retry(until, || channel.shell()),
    }
    .map_err(|e| failed("the server refused the session", e))?;
    // Raw mode only for a terminal; piped input is passed on as it is.
    let raw = if terminal::is_terminal(STDIN) {
        Some(
            RawMode::enter(STDIN)
                .map_err(|e| format!("cannot set the terminal to raw mode: {e}"))?,
        )
    } else {
        None
    };
    let signals = Signals::install().map_err(|e| format!("cannot catch SIGWINCH: {e}"))?;
    let ended = relay(conn, &mut channel, forwarder.as_mut(), &signals, heartbeat);
    if let Some(f) = forwarder.take() {
        f.finish(conn);
    }
    drop(signals);
    drop(raw);
    match ended? {
        Ending::Local(signal) => {
            channel.close().ok();
            Ok(128 + signal)
        }
        Ending::Remote => {
            let until = Instant::now() + REQUEST_TIMEOUT;
            conn.retry(until, || channel.wait_close())
                .map_err(|e| failed("waiting for the exit status", e))?;
            let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
            if let Some(signal) = signal {
                crate::errln!("tether: the remote side was killed by signal {signal}");
                return Ok(255);
            }
            channel
                .exit_status()
                .map_err(|e| format!("no exit status: {}", crate::ssh::wording::plain(&e)))
        }
    }
}

/// Why the relay stopped.
enum Ending {
    /// The remote side closed its output (it exited).
    Remote,
    /// tether got this signal (SIGTERM, SIGHUP).
    Local(i32),
}

/// Moves bytes: stdin to the channel, the channel's output to stdout, agent requests both
/// ways; resizes the PTY on SIGWINCH and sends the heartbeat while idle.
fn relay(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    mut agent: Option<&mut crate::ssh::agent::Forwarder>,
    signals: &Signals,
    heartbeat: Option<Duration>,
) -> Result<Ending, String> {
    let session = &conn.session;
    let plain = |e: &ssh2::Error| crate::ssh::wording::plain(e);
    let mut input: Vec<u8> = Vec::new();
    let mut stdin_open = true;
    let mut eof_sent = false;
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdout = std::io::stdout().lock();
    let mut next_beat = heartbeat.map(|h| Instant::now() + h);
    loop {
        let mut progressed = false;
        // Output first: it is what the user waits for.
        for id in [0, 1] {
            loop {
                match std::io::Read::read(&mut channel.stream(id), &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        progressed = true;
                        // A closed stdout ends nothing remote: the bytes are dropped.
                        let _ = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        return Err(format!(
                            "reading output: {}",
                            crate::ssh::wording::plain_io(&e, session)
                        ))
                    }
                }
            }
        }
        if channel.eof() {
            return Ok(Ending::Remote);
        }
        while !input.is_empty() {
            match channel.write(&input) {
                Ok(n) => {
                    input.drain(..n);
                    progressed = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(format!(
                        "sending input: {}",
                        crate::ssh::wording::plain_io(&e, session)
                    ))
                }
            }
        }
        if !stdin_open && input.is_empty() && !eof_sent {
            match channel.send_eof() {
                Ok(()) => eof_sent = true,
                Err(e) if connection::would_block(&e) => {}
                Err(e) => return Err(format!("sending end of input: {}", plain(&e))),
            }
        }
        if let Some(a) = agent.as_deref_mut() {
            progressed |= a.pump();
        }
        for signal in signals.take() {
            if signal == libc::SIGWINCH {
                if let Some(size) = terminal::window_size(STDIN) {
                    let until = Instant::now() + REQUEST_TIMEOUT;
                    conn.retry(until, || {
                        channel.request_pty_size(
                            size.cols.into(),
                            size.rows.into(),
                            Some(size.width.into()),
                            Some(size.height.into()),
                        )
                    })
                    .map_err(|e| format!("resizing the terminal: {e}"))?;
                }
            } else {
                return Ok(Ending::Local(signal));
            }
        }
        if progressed {
            continue;
        }
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_beat, heartbeat) {
            if now >= at {
                if let Err(e) = session.keepalive_send() {
                    if !connection::would_block(&e) {
                        return Err(format!("keepalive failed: {}", plain(&e)));
                    }
                }
                next_beat = Some(now + every);
            }
        }
        let mut wait = Duration::from_millis(500);
        if let Some(at) = next_beat {
            wait = wait.min(
                at.saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            );
        }
        if agent.as_ref().is_some_and(|a| a.busy()) {
            // The agent's answers arrive on sockets this poll does not watch.
            wait = wait.min(Duration::from_millis(5));
        }
        let mut ssh_events = connection::poll_events(session.block_directions());
        ssh_events |= libc::POLLIN;
        let mut fds = vec![
            libc::pollfd {
                fd: conn.fd(),
                events: ssh_events,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // More input only once the last is sent: a slow server holds back the keyboard.
        let read_stdin = stdin_open && input.is_empty();
        if read_stdin {
            fds.push(libc::pollfd {
                fd: STDIN,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        crate::ssh::poll::poll_fds(&mut fds, wait).map_err(|e| format!("poll: {e}"))?;
        if read_stdin && fds[2].revents != 0 {
            // SAFETY: `buf` is valid for writes of its length; poll said stdin is readable
            // (or at its end), so read returns without waiting.
            let n = unsafe { libc::read(STDIN, buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                n if n > 0 => input.extend_from_slice(&buf[..n as usize]),
                0 => stdin_open = false,
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted
                        && e.kind() != std::io::ErrorKind::WouldBlock
                    {
                        stdin_open = false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_to_keeps_its_tilde_unquoted_and_quotes_the_rest() {
        assert_eq!(shell_path("/srv/app"), "/srv/app");
        assert_eq!(shell_path("/srv/my app"), "'/srv/my app'");
        assert_eq!(shell_path("~/apps/x y"), "~/'apps/x y'");
        assert_eq!(shell_path("~"), "~");
        assert_eq!(shell_path("~deploy/app"), "~deploy/app");
        assert_eq!(shell_path("~a;b/app"), "'~a;b/app'");
    }

    #[test]
    fn no_deploy_to_and_no_command_is_a_shell_request() {
        assert_eq!(remote_command(None, ""), None);
        let tty = remote_command(None, "tty").unwrap();
        assert_eq!(tty.shown, "tty");
        assert!(tty.sent.starts_with("exec /bin/sh -c '"), "{}", tty.sent);
        assert!(tty.sent.ends_with(" sh 'tty'"), "{}", tty.sent);
        let shell = remote_command(Some("/srv/a"), "").unwrap();
        assert!(
            shell
                .shown
                .starts_with("if cd -- /srv/a/current 2>/dev/null;"),
            "{}",
            shell.shown
        );
        assert!(
            shell.shown.ends_with("; exec \"${SHELL:-/bin/sh}\" -l"),
            "{}",
            shell.shown
        );
        assert!(
            shell.sent.starts_with("exec /bin/sh -c '"),
            "{}",
            shell.sent
        );
        assert!(
            shell.sent.ends_with("; exec \"${SHELL:-/bin/sh}\" -l' sh"),
            "{}",
            shell.sent
        );
        // A deploy_to beginning with `-` is a path, not an option of `cd` (stop 59 tester t95).
        let dash = remote_command(Some("-x"), "pwd").unwrap();
        assert!(
            dash.shown.starts_with("if cd -- -x/current "),
            "{}",
            dash.shown
        );
    }
}
