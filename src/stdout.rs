//! tether's stdout and stderr: every line goes through [`write`] (the `outln!` and `out!`
//! macros) or [`write_stderr`] (`errln!`, `err!`).

use std::io::Write as _;

/// Writes to stdout for [`outln!`](crate::outln), through anstream (which drops colour where
/// `--color` or the terminal says so). When the reader has gone away (`tether ... | head`),
/// the process ends quietly with status 141, as SIGPIPE ends other Unix tools.
pub fn write(args: std::fmt::Arguments) {
    if let Err(e) = anstream::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(crate::exit::BROKEN_PIPE);
        }
    }
}

/// Writes to stderr for [`errln!`](crate::errln). A failed write (the reader has gone away,
/// the terminal hung up) is dropped: stderr is where tether would say so.
pub fn write_stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
