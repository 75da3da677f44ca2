//! Loading a recipe and running its tasks, and the commands built on that: `tether TASK...`,
//! `tether tasks`, the host selection of `run`, `check` and `hosts`.
//!
//! - `load.rs`: a recipe compiled and evaluated, what is checked before anything connects.
//! - `stages.rs`: its stage selected (`tether STAGE TASK...`).
//! - `run_tasks.rs`: its tasks run (failure hooks included), `tether [STAGE] TASK...`.
//! - `host_selection.rs`: the hosts `run`, `check` and `hosts` act on.
//! - `task_list.rs`: `tether tasks`.

mod host_selection;
mod load;
mod run_tasks;
mod stages;
mod task_list;

pub use host_selection::{empty_shard, select, Selection};
pub use load::{load, load_options, LoadOptions, Loaded};
pub use run_tasks::{finish_timeline, run};
pub use stages::split_stage;
pub use task_list::{list, ListOptions};
