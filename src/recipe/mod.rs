//! The recipe side: the Rhai engine, the functions a recipe calls, the recipe model, the
//! stdlib, diagnostics, and running tasks.

pub mod api;
pub mod args;
pub mod array_search;
pub mod ask;
pub mod captured;
pub mod commands;
pub mod context;
pub mod declare;
pub mod definitions;
pub mod diagnostics;
pub mod engine;
pub mod failures;
pub mod given;
pub mod host_info;
pub mod limits;
pub mod model;
pub mod names;
pub mod on;
pub mod runaway;
pub mod runtime_vars;
pub mod selection;
pub mod servers;
pub mod sources;
pub mod stdlib;
pub mod support;
pub mod syntax;
pub mod tasks;
pub mod transfers;
