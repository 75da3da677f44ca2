//! tether's stdout and stderr: every line goes through [`write`] (the `outln!` and `out!`
//! macros) or [`write_stderr`] (`errln!`, `err!`).

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

use anstream::{AutoStream, ColorChoice};

/// The first error writing stdout other than a reader gone away (see [`failed`]).
static WRITE_ERROR: OnceLock<String> = OnceLock::new();

/// stdout's reader has gone away (see [`closed`]): nothing more is written there.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// How stdout's colours are written, once asked ([`choice`]): 0 not yet, else a
/// [`ColorChoice`] by [`code`]. Asking anstream is a `tcgetattr` and an environment lookup,
/// which at a line each cost more than the line (a command printing two million lines).
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// How many bytes a batching thread ([`batch`]) holds before it writes them.
const BATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// The output of a thread that batches its writes ([`batch`]), not yet written.
    static BATCH: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

fn code(c: ColorChoice) -> u8 {
    match c {
        ColorChoice::Auto => 1,
        ColorChoice::AlwaysAnsi => 2,
        ColorChoice::Always => 3,
        ColorChoice::Never => 4,
    }
}

/// How stdout writes colours: as `--color` said ([`set_color`]), and with `auto` as the
/// terminal and `NO_COLOR` say (anstream's rules), asked once.
pub fn choice() -> ColorChoice {
    match CHOICE.load(Ordering::Relaxed) {
        2 => ColorChoice::AlwaysAnsi,
        3 => ColorChoice::Always,
        4 => ColorChoice::Never,
        _ => {
            let c = AutoStream::choice(&std::io::stdout());
            CHOICE.store(code(c), Ordering::Relaxed);
            c
        }
    }
}

/// Sets how stdout writes colours (`--color`; `auto` as anstream decides); [`choice`] asks
/// again.
pub fn set_color(c: ColorChoice) {
    c.write_global();
    CHOICE.store(0, Ordering::Relaxed);
}

/// From now on this thread's writes to stdout are held, and written at [`flush`] or when
/// [`BATCH_BYTES`] are held: one `write(2)` for a burst of lines, where stdout (line-buffered)
/// makes one per line. For the reporter, which flushes whenever it has no event waiting.
pub fn batch() {
    BATCH.with(|b| *b.borrow_mut() = Some(Vec::with_capacity(BATCH_BYTES)));
}

/// Writes to stdout for [`outln!`](crate::outln), through anstream (which drops colour where
/// `--color` or the terminal says so). A write that fails is [`failed`]'s.
pub fn write(args: std::fmt::Arguments) {
    hold(|buf| {
        let start = buf.len();
        // Writing to a Vec cannot fail.
        let _ = AutoStream::new(&mut *buf, choice()).write_fmt(args);
        // Secrets are masked here, in what this write added, once colour was dropped (stop 44
        // tester t54: a secret split by colour codes, which no mask matched, was whole again
        // in a file), and in what no reporter saw (`tether tasks`' descriptions). Without one
        // there, nothing is copied.
        if let std::borrow::Cow::Owned(masked) = crate::secret::mask_bytes(&buf[start..]) {
            buf.truncate(start);
            buf.extend_from_slice(&masked);
        }
    });
}

/// Writes `bytes` to stdout as they are (terminal control: no colour stripped), after what
/// this thread holds ([`batch`]) or with it; a write that fails is [`failed`]'s.
pub fn write_raw(bytes: &[u8]) {
    hold(|buf| buf.extend_from_slice(bytes));
}

/// Passes what `put` writes to stdout: held while this thread batches ([`batch`]), until
/// [`BATCH_BYTES`] are, else written at once. Nothing is written once stdout's reader has
/// gone away ([`closed`]).
fn hold(put: impl FnOnce(&mut Vec<u8>)) {
    if closed() {
        return;
    }
    let mut put = Some(put);
    let full = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let buf = b.as_mut()?;
        // Nothing took `put` before: it is there.
        (put.take()?)(buf);
        Some(buf.len() >= BATCH_BYTES)
    });
    match (full, put) {
        (Some(true), _) => write_held(),
        (None, Some(put)) => {
            let mut bytes = Vec::new();
            put(&mut bytes);
            write_out(&bytes);
        }
        _ => {}
    }
}

/// Writes what this thread holds ([`batch`]), if anything.
fn write_held() {
    let held = BATCH.with(|b| {
        b.borrow_mut()
            .as_mut()
            .filter(|buf| !buf.is_empty())
            .map(|buf| std::mem::replace(buf, Vec::with_capacity(BATCH_BYTES)))
    });
    if let Some(bytes) = held {
        write_out(&bytes);
    }
}

/// Writes `bytes` to stdout, unless its reader has gone away; a failure is [`failed`]'s.
fn write_out(bytes: &[u8]) {
    if closed() {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_all(bytes) {
        failed(&e);
    }
}

/// A write (or flush) of stdout failed with `e`. When the reader has gone away (`tether ... |
/// head`), nothing more is written there ([`closed`]) and a run under way is stopped
/// (see [`crate::interrupt::stdout_closed`]: status 141). Any other error (a full disk) loses
/// output: said once on stderr, as coreutils say it, and kept for the exit status
/// ([`write_error`]); the run goes on, as its hosts are mid-step.
pub fn failed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        if !CLOSED.swap(true, Ordering::SeqCst) {
            crate::interrupt::stdout_closed();
        }
        return;
    }
    if WRITE_ERROR.set(e.to_string()).is_ok() {
        write_stderr(format_args!("error: cannot write tether's output: {e}\n"));
    }
}

/// Watches stdout, where it is a pipe or a socket, for its reader going away while nothing is
/// written (a quiet command under `tether deploy | head`): poll(2) says it (`POLLERR` on a
/// pipe without a reader, `POLLHUP` on a socket shut down) at once, where a write would say it
/// only at tether's next line. Then as [`failed`] with a broken pipe. A terminal's hangup comes
/// as SIGHUP, and a file never goes away: nothing to watch there.
pub fn watch_reader() {
    const FD: libc::c_int = libc::STDOUT_FILENO;
    // SAFETY: fstat writes only into `st`, a plain struct of integers.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(FD, &mut st) } != 0 {
        return;
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("stdout-reader".into())
        .spawn(|| loop {
            // No events asked: poll(2) reports only POLLERR, POLLHUP and POLLNVAL, which it
            // always reports; with a reader there it waits for good.
            let mut fd = libc::pollfd {
                fd: FD,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the call's length.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                failed(&std::io::Error::from(std::io::ErrorKind::BrokenPipe));
            }
            return;
        });
}

/// stdout's reader has gone away: the process ends with status 141, as SIGPIPE ends other
/// Unix tools, once its run has stopped (see [`failed`]).
pub fn closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// The first error that lost output on stdout, if any: a run that succeeded otherwise exits
/// 2 with it, as one whose `--timeline` file cannot be written.
pub fn write_error() -> Option<&'static str> {
    WRITE_ERROR.get().map(String::as_str)
}

/// Writes what this thread holds ([`batch`]) and flushes stdout; a failure is [`failed`]'s.
pub fn flush() {
    write_held();
    if closed() {
        return;
    }
    if let Err(e) = std::io::stdout().flush() {
        failed(&e);
    }
}

/// Whether stdout and stderr are one file: one terminal, or one pipe or file (`2>&1`), so
/// that what is said on one is read on the other.
pub fn shares_stderr() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let id = |fd: std::os::fd::BorrowedFd<'_>| {
        let m = std::fs::File::from(fd.try_clone_to_owned().ok()?)
            .metadata()
            .ok()?;
        Some((m.dev(), m.ino()))
    };
    let out = id(std::io::stdout().as_fd());
    out.is_some() && out == id(std::io::stderr().as_fd())
}

/// Writes to stderr for [`errln!`](crate::errln). A failed write (the reader has gone away,
/// the terminal hung up) is dropped: stderr is where tether would say so.
pub fn write_stderr(args: std::fmt::Arguments) {
    let text = args.to_string();
    let _ = std::io::stderr()
        .lock()
        .write_all(crate::secret::mask(&text).as_bytes());
}
