//! tether's stdout and stderr: every line goes through [`write`] (the `outln!` and `out!`
//! macros) or [`write_stderr`] (`errln!`, `err!`).

use std::io::Write as _;
use std::sync::OnceLock;

/// The first error writing stdout other than a reader gone away (see [`failed`]).
static WRITE_ERROR: OnceLock<String> = OnceLock::new();

/// Writes to stdout for [`outln!`](crate::outln), through anstream (which drops colour where
/// `--color` or the terminal says so). A write that fails is [`failed`]'s.
pub fn write(args: std::fmt::Arguments) {
    if let Err(e) = anstream::stdout().lock().write_fmt(args) {
        failed(&e);
    }
}

/// A write (or flush) of stdout failed with `e`. When the reader has gone away (`tether ... |
/// head`), the process ends quietly with status 141, as SIGPIPE ends other Unix tools. Any
/// other error (a full disk) loses output: said once on stderr, as coreutils say it, and kept
/// for the exit status ([`write_error`]); the run goes on, as its hosts are mid-step.
pub fn failed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(crate::exit::BROKEN_PIPE);
    }
    if WRITE_ERROR.set(e.to_string()).is_ok() {
        write_stderr(format_args!("error: cannot write tether's output: {e}\n"));
    }
}

/// The first error that lost output on stdout, if any: a run that succeeded otherwise exits
/// 2 with it, as one whose `--timeline` file cannot be written.
pub fn write_error() -> Option<&'static str> {
    WRITE_ERROR.get().map(String::as_str)
}

/// Flushes stdout; a failure is [`failed`]'s.
pub fn flush() {
    if let Err(e) = std::io::stdout().flush() {
        failed(&e);
    }
}

/// Writes to stderr for [`errln!`](crate::errln). A failed write (the reader has gone away,
/// the terminal hung up) is dropped: stderr is where tether would say so.
pub fn write_stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
