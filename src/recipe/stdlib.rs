//! The stdlib: Rhai modules under `stdlib/`, embedded in the binary, imported by name
//! (`import "deploy" as deploy;`). Other import paths are files relative to the recipe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, Module, Position, Scope};

/// A module shared between imports (`rhai::Shared` is `Arc` with the `sync` feature).
pub type SharedModule = Arc<Module>;

/// Modules loaded in a run, by import path.
pub type Loaded = Arc<Mutex<HashMap<String, SharedModule>>>;

use super::sources::Sources;

/// The embedded modules: (import name, source).
pub const MODULES: &[(&str, &str)] = &[
    ("deploy", include_str!("../../stdlib/deploy.rhai")),
    ("rails", include_str!("../../stdlib/rails.rhai")),
    ("systemd", include_str!("../../stdlib/systemd.rhai")),
    ("node", include_str!("../../stdlib/node.rhai")),
    ("php", include_str!("../../stdlib/php.rhai")),
];

/// Whether `key` names the run state of the stdlib's release flow (`deploy:prepared`,
/// `deploy:pinned`, `deploy:locked_hosts`...: what deploy:prepare checked, the lock it took):
/// given with `-s`, such a value would switch its checks off or pass for a lock it never
/// took, so it is refused there.
pub fn is_run_state(key: &str) -> bool {
    key.starts_with("deploy:")
}

/// The source of the stdlib module `name`.
pub fn get(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The name positions in stdlib module `name` are reported under.
pub fn source_name(name: &str) -> Option<String> {
    get(name).map(|_| format!("stdlib/{name}.rhai"))
}

/// Resolves stdlib names to embedded modules and other paths to files next to the recipe.
/// Each module is evaluated once per run, when first imported (its top level defines tasks).
pub struct Resolver {
    dir: PathBuf,
    sources: Arc<Sources>,
    loaded: Loaded,
    /// The modules being loaded right now, outermost first (import paths): an import of one
    /// of them is a cycle, refused instead of recursing until the stack overflows.
    loading: Mutex<Vec<String>>,
}

impl Resolver {
    /// A resolver for a recipe in `dir`.
    pub fn new(dir: &Path, sources: Arc<Sources>, loaded: Loaded) -> Self {
        Resolver {
            dir: dir.to_path_buf(),
            sources,
            loaded,
            loading: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SharedModule>> {
        // Only whole inserts happen under the lock.
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(
        &self,
        engine: &Engine,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let (name, text) = match get(path) {
            Some(text) => (format!("stdlib/{path}.rhai"), text.to_string()),
            None => {
                let mut file = self.dir.join(path);
                if file.extension().is_none() {
                    file.set_extension("rhai");
                }
                let text = crate::recipe::sources::read(&file).map_err(|e| {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        // rhai reports a module it could not find by its path alone; a file
                        // that is there but cannot be read needs its own reason.
                        return Box::new(EvalAltResult::ErrorRuntime(
                            format!("cannot import {path}: {}: {e}", file.display()).into(),
                            pos,
                        ));
                    }
                    Box::new(EvalAltResult::ErrorModuleNotFound(
                        format!(
                            "{path} ({}: {e}; stdlib modules are {})",
                            file.display(),
                            MODULES
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        pos,
                    ))
                })?;
                (file.display().to_string(), text)
            }
        };
        self.sources.insert(&name, &text);
        // Named by its source name (the file, or `stdlib/x.rhai`), so that errors inside it
        // print that file's `file:line:col` and source line.
        let in_module =
            |e: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(name.clone(), e, pos));
        let mut ast = engine
            .compile(super::syntax::prepare_source(&text))
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(name.as_str());
        self.sources
            .record_module_functions(&name, ast.iter_functions().map(|f| f.name));
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(module.into())
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        // Not held across the load: a module may import another one.
        let cached = self.lock().get(path).cloned();
        if let Some(m) = cached {
            return Ok(m);
        }
        {
            let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = loading.iter().position(|p| p == path) {
                let mut chain: Vec<&str> = loading[i..].iter().map(String::as_str).collect();
                chain.push(path);
                return Err(EvalAltResult::ErrorRuntime(
                    format!(
                        "import cycle: {} (a module cannot import itself, directly or through \
                         others)",
                        chain.join(" -> ")
                    )
                    .into(),
                    pos,
                )
                .into());
            }
            loading.push(path.to_string());
        }
        let module = self.load(engine, path, pos);
        self.loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != path);
        let module = module?;
        self.lock().insert(path.to_string(), module.clone());
        Ok(module)
    }
}
