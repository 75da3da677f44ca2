//! tether: a deploy runner. Recipes are Rhai scripts; every host gets one SSH session, owned
//! by one thread, kept open and alive for the whole run.
#![warn(missing_docs)]

/// `println!` for tether's stdout: when the reader has gone away (`tether ... | head`), it
/// does not panic; tether stops its run and ends with status 141, as SIGPIPE ends other Unix
/// tools (see [`stdout::failed`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` counterpart of [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: a line for a stderr whose reader has gone away
/// (`tether ... 2>&1 | head`) is dropped, there being nowhere left to say it; `eprintln!`
/// panicked there (exit 101).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::stdout::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` counterpart of [`errln!`].
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::stdout::write_stderr(format_args!($($arg)*))
    };
}

pub mod backend;
pub mod chars;
pub mod check;
pub mod clock;
pub mod command;
pub mod dispatch;
pub mod duration;
pub mod error;
pub mod event;
pub mod exit;
pub mod failure;
pub mod fd_limit;
pub mod file_stamp;
pub mod fleet;
pub mod host;
pub mod host_text;
pub mod hosts;
pub mod hostset;
pub mod init;
pub mod interrupt;
pub mod memory;
pub mod outcome;
pub mod pool;
pub mod recipe;
pub mod report;
pub mod run;
pub mod runner;
pub mod secret;
pub mod settings;
pub mod shell;
pub mod sink;
pub mod ssh;
pub mod ssh_syntax;
pub mod sshd;
pub mod stderr_tail;
pub mod stdout;
pub mod step_abort;
pub mod stop;
pub mod sudo;
pub mod terminal;
pub mod timeline;
pub mod transfer;
pub mod watch;
