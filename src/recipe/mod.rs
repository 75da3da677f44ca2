//! The recipe side: Rhai engine, API, model, stdlib and diagnostics.

pub mod api;
pub mod context;
pub mod diagnostics;
pub mod engine;
pub mod model;
pub mod stdlib;
