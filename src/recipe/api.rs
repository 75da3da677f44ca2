//! The functions a recipe calls, registered on the engine: declarations (`declare.rs`), the
//! `host` value (`host_info.rs`), `on` (`on.rs`), host-bound commands (`commands.rs`),
//! failures as values (`failures.rs`) and the stdlib's helpers (`support.rs`); their
//! shared argument handling is in `args.rs`.

use std::sync::Arc;

use rhai::Engine;

use super::context::Runtime;

/// Registers every recipe function on `engine`.
pub fn register(engine: &mut Engine, rt: Arc<Runtime>) {
    super::failures::register(engine);
    super::context::register(engine);
    super::host_info::register(engine);
    super::declare::register(engine, &rt);
    super::ask::register(engine, &rt);
    super::on::register(engine, &rt);
    super::commands::register(engine, &rt);
    super::transfers::register(engine, &rt);
    super::support::register(engine, &rt);
}
