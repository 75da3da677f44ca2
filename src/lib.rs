//! tether: a deploy runner. Recipes are Rhai scripts; every host gets one SSH session, owned
//! by one thread, kept open and alive for the whole run.

pub mod backend;
pub mod check;
pub mod cli;
pub mod command;
pub mod error;
pub mod fleet;
pub mod host;
pub mod interrupt;
pub mod pool;
pub mod recipe;
pub mod report;
pub mod run;
pub mod runner;
pub mod secret;
pub mod ssh;
pub mod watch;
