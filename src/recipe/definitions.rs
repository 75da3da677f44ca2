//! `tether definitions DIR`: Rhai definition files (`*.d.rhai`) for what a recipe can call,
//! for the Rhai language server and editors (completion, signature help, checks).
//!
//! The registered functions come from Rhai itself ([`rhai::Engine::definitions`], which needs
//! rhai's `metadata` and `internals` features), the engine built exactly as a run builds it;
//! Rhai's standard packages (strings, arrays, maps) are included. A function registered with a
//! `Result` return type comes out of Rhai as `-> EvalAltResult>>` (the last `::` segment of
//! the Rust type name), which is written as `-> ?` (any value), as Rhai writes `Dynamic`.
//!
//! Each stdlib module is loaded as a run's `import "NAME"` loads it and its public functions
//! are written with their parameters and `///` comments, in Rhai's definition syntax. (Rhai's
//! own writer is not used for them: registering a script module drops its doc comments, and
//! it would list the closures, `anon$...`, too.)

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rhai::{FnAccess, Module, Position};

use super::context::{Filters, Runtime};
use super::engine;
use super::stdlib::MODULES;
use crate::error::Error;

/// Writes the definition files into `dir` (created when missing, with its parents; files of
/// the same names are replaced) and returns their paths, sorted: Rhai's
/// `__builtin__.d.rhai` and `__builtin-operators__.d.rhai` (the standard packages),
/// `__static__.d.rhai` (every function tether registers: `on`, `run`, `upload`, ...) and one
/// `NAME.d.rhai` per stdlib module (`deploy.d.rhai`, ...).
///
/// Errors: [`Error::Usage`] when `dir` exists and is not a directory or a file cannot be
/// written; [`Error::Recipe`] when an embedded stdlib module fails to load (a defect of the
/// build).
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory: tether definitions writes several files into a directory",
            dir.display()
        )));
    }
    // A runtime for a recipe in `dir` that nothing runs: only its registrations are used. The
    // reporter end of the sink is dropped (a stdlib module's top level reports nothing).
    let (sink, _) = crate::sink::channel();
    let rt = Arc::new(Runtime::new(
        dir.join(crate::settings::DEFAULT_RECIPE),
        Filters::default(),
        None,
        None,
        Arc::new(AtomicBool::new(false)),
        sink,
    ));
    let engine = engine::build(rt);
    let mut files: Vec<(String, String)> = engine
        .definitions()
        .iter_files()
        .map(|(name, text)| (name, plain_return_types(&text)))
        .collect();
    for (name, _) in MODULES {
        let module = engine
            .module_resolver()
            .resolve(&engine, None, name, Position::NONE)
            .map_err(|e| Error::Recipe(format!("stdlib module {name} does not load: {e}")))?;
        files.push((format!("{name}.d.rhai"), module_definitions(name, &module)));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::write(&path, text)
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// Rhai's definition text with the return types it cannot name (see the module doc) written
/// as `?`.
fn plain_return_types(text: &str) -> String {
    text.lines()
        .map(|line| {
            for unnamed in ["-> EvalAltResult>>;", "-> RhaiResult;", "-> ;"] {
                if let Some(head) = line.strip_suffix(unnamed) {
                    return format!("{head}-> ?;");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The definitions of stdlib module `name`: `module NAME;`, then each public function (not the
/// closures), sorted, with its `///` comments and parameter names.
fn module_definitions(name: &str, module: &Module) -> String {
    let mut fns: Vec<_> = module
        .iter_script_fn_info()
        .filter(|(_, access, fn_name, _, _)| {
            *access != FnAccess::Private && !fn_name.starts_with("anon$")
        })
        .map(|(_, _, fn_name, _, def)| (fn_name.to_string(), def.clone()))
        .collect();
    fns.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.params.len().cmp(&b.1.params.len())));
    let mut out = format!("module {name};\n");
    for (fn_name, def) in fns {
        out.push('\n');
        for comment in &def.comments {
            out.push_str(comment);
            out.push('\n');
        }
        let params: Vec<String> = def.params.iter().map(|p| format!("{p}: ?")).collect();
        out.push_str(&format!("fn {fn_name}({}) -> ?;\n", params.join(", ")));
    }
    out
}

/// `tether definitions DIR`: [`write`], then says what it wrote (a `wrote PATH` line per
/// file, or one `definitions` JSON object).
pub fn run(settings: &crate::settings::Settings, dir: &Path) -> Result<(), Error> {
    let files = write(dir)?;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    match settings.format {
        crate::settings::Format::Json => crate::outln!(
            "{}",
            serde_json::json!({ "type": "definitions", "dir": dir.display().to_string(), "files": names })
        ),
        crate::settings::Format::Text => {
            for name in &names {
                crate::outln!("wrote {name}");
            }
        }
    }
    Ok(())
}
