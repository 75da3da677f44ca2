//! The process exit codes, as README.md's table gives them.

/// A remote command failed (non-zero status, signal, no status, lost, timeout).
pub const COMMAND_FAILED: i32 = 1;
/// Bad usage or configuration (also clap's code for bad arguments).
pub const USAGE: i32 = 2;
/// A host could not be reached or refused us (connect, host key, authentication).
pub const UNREACHABLE: i32 = 3;
/// A recipe error (syntax, runtime, unknown task/role/stage).
pub const RECIPE: i32 = 4;
/// Interrupted (Ctrl-C, SIGTERM, SIGHUP).
pub const INTERRUPTED: i32 = 130;
/// stdout was closed by its reader (`tether tasks | head`), as SIGPIPE ends other tools.
pub const BROKEN_PIPE: i32 = 141;
