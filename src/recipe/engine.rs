//! The Rhai engine for one run: limits, cancellation, module resolution, the recipe API.

use std::sync::Arc;

use rhai::{Dynamic, Engine};

use super::api;
use super::context::Runtime;
use super::limits::{MAX_CALL_LEVELS, MAX_COLLECTION_SIZE, MAX_OPERATIONS, MAX_STRING_SIZE};
use super::runaway::OutOfMemory;
use super::stdlib::Resolver;

/// A fresh engine (module caches included) for `rt`.
pub fn build(rt: Arc<Runtime>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(MAX_OPERATIONS);
    // Recipes nest closures (on -> within -> with_env -> run) deeper than the defaults allow.
    engine.set_max_expr_depths(256, 256);
    // Lazy variables, module functions and closures nest calls: Rhai's default depth is 8 in
    // debug builds (64 in release), which `fetch("release_path")` from a module's closure
    // exceeds. The same limit in every build.
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    // Generous for any real recipe, and far below what would exhaust memory: a string or an
    // array doubled in a loop is stopped with an error instead of aborting tether.
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(MAX_COLLECTION_SIZE);
    engine.set_max_map_size(MAX_COLLECTION_SIZE);
    super::runaway::watch(&mut engine);
    super::array_search::register(&mut engine);
    let cancel = rt.clone();
    let memory_limit = crate::memory::recipe_limit();
    // Stops a running script (loops included) soon after Ctrl-C or a watch-mode cancel, and
    // one that makes tether hold more than its memory limit (many values, each under the
    // limits above).
    engine.on_progress(move |_| {
        if cancel.interrupted() {
            return Some("interrupted".into());
        }
        (crate::memory::in_use() > memory_limit).then(|| Dynamic::from(OutOfMemory))
    });
    let dir = rt
        .file
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    engine.set_module_resolver(Resolver::new(&dir, rt.sources.clone(), rt.modules.clone()));
    api::register(&mut engine, rt);
    engine
}
