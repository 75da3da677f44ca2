//! Backends: where the commands of a recipe go (SSHKit's backends). The remote backend sends
//! them to the hosts' workers; the printer (dry run) reports what would run, so a dry run walks
//! the same calls in the same order and connects to nothing. The recipe functions never ask
//! which backend they have; neither backend writes output itself (events go to the reporter).
//!
//! - `interface.rs`: the [`Backend`] trait and the calls it takes.
//! - `remote.rs`: [`Remote`], with `regular_file.rs` (what an upload may send) and
//!   `run_locally.rs` (a command on this machine).
//! - `dry_run.rs`: [`DryRun`], the printer.

mod dry_run;
mod interface;
mod regular_file;
mod remote;
mod run_locally;

pub use dry_run::DryRun;
pub use interface::{Backend, Call, Download, TransferError, Upload};
pub use remote::Remote;
