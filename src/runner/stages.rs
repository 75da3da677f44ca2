//! A recipe's stages selected: `tether STAGE TASK...` split into the stage and its tasks, the
//! stage's `stage()` closure run and its file (`deploy/STAGE.rhai`, Capistrano's
//! `config/deploy/STAGE.rb`) evaluated, a `-s stage=..` refused.

use std::path::Path;
use std::sync::Arc;

use rhai::Dynamic;

use super::load::{classify, classify_in, stage_after_task, Loaded};
use crate::error::Error;
use crate::recipe::diagnostics;
use crate::recipe::model::suggest;

impl Loaded {
    /// Runs the stage's closure (it usually declares servers and variables), with the
    /// variable `stage` set to `name` (as Capistrano's `fetch(:stage)`), also inside it.
    /// `None`: no stage is selected.
    ///
    /// Errors: an unknown stage; a `-s stage=..` that names another stage than the one
    /// selected, or a stage of the recipe when none is selected (its closure would not run
    /// while `fetch("stage")` said it had).
    pub fn select_stage(&self, name: Option<&str>) -> Result<(), Error> {
        self.refuse_stage_override(name)?;
        self.rt.recipe().stage_chosen = true;
        let Some(name) = name else {
            return Ok(());
        };
        let stage = self
            .rt
            .recipe()
            .stages
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.clone());
        let file = self
            .stage_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone());
        if stage.is_none() && file.is_none() {
            let stages = self.stages();
            return Err(Error::Usage(format!(
                "unknown stage `{name}`{}",
                suggest(name, stages.iter().map(String::as_str))
            )));
        };
        {
            // `fetch("stage")` is the selected stage, in its closure and after: the stage that
            // runs wins over a `-s stage=..` that would name another one.
            let mut recipe = self.rt.recipe();
            recipe.vars.insert("stage".into(), name.into());
            recipe.locked.insert("stage".into());
        }
        if let Some(f) = stage {
            // A stage declares; the closure's value is not used.
            // A runaway placed where it ran away, as a task's is (stop 46 tester t60: `Too
            // many operations` alone).
            f.call::<Dynamic>(&self.engine, &self.library(), ())
                .map(drop)
                .map_err(|e| {
                    let e = crate::recipe::runaway::place(e, &format!("stage `{name}`"), None);
                    classify(&self.rt, &e)
                })?;
        }
        match file {
            Some(path) => self.run_stage_file(&path),
            None => Ok(()),
        }
    }

    /// A stage is selected by naming it (`tether STAGE TASK`), never by `-s stage=..`: a
    /// `-s stage=` that disagrees with the selection is refused rather than ignored.
    fn refuse_stage_override(&self, selected: Option<&str>) -> Result<(), Error> {
        let recipe = self.rt.recipe();
        let Some(given) = recipe
            .origins
            .get("stage")
            .filter(|origin| origin.starts_with("-s "))
            .cloned()
        else {
            return Ok(());
        };
        let value = recipe
            .vars
            .get("stage")
            .map(ToString::to_string)
            .unwrap_or_default();
        drop(recipe);
        match selected {
            Some(name) if name != value => Err(Error::Usage(format!(
                "{given}: the stage selected is `{name}`; a stage is chosen by naming it \
                 (`tether {name} TASK`), not with -s"
            ))),
            None if self.stages().contains(&value) => Err(Error::Usage(format!(
                "{given} does not select the stage `{value}` (its servers and settings would \
                 not be loaded): name it instead, `tether {value} TASK`"
            ))),
            None if !self.stages().is_empty() => Err(Error::Usage(format!(
                "{given}: `{value}` is not a stage of the recipe (stages: {}); a stage is \
                 chosen by naming it, `tether STAGE TASK`",
                self.stages().join(", ")
            ))),
            // Without stages, `fetch("stage")` would name one that `tether STAGE ...` (in the
            // stdlib's hints, say) refuses.
            None => Err(Error::Usage(format!(
                "{given}: the recipe declares no stages; `stage` is the stage selected \
                 (`tether STAGE TASK`), never set with -s"
            ))),
            _ => Ok(()),
        }
    }

    /// Evaluates a stage file after the stage's `stage()` closure, with the recipe's
    /// functions in reach; its errors name the stage file's line and column.
    fn run_stage_file(&self, path: &Path) -> Result<(), Error> {
        let name = path.display().to_string();
        let text = crate::recipe::sources::read(path)
            .map_err(|e| Error::Usage(format!("cannot read stage file {name}: {e}")))?;
        self.rt.sources.insert(&name, &text);
        let mut ast = self
            .engine
            .compile(crate::recipe::syntax::prepare_source(&text))
            .map_err(|e| Error::Recipe(diagnostics::parse_error(&e, &name, &self.rt.sources)))?;
        ast.set_source(name.as_str());
        // Its functions (the stage file's closures: a lazy `set`, a hook, a task) join the
        // library closures are called against. Before, they were left out, and calling one
        // failed ("Function not found: anon$...").
        let functions = ast.clone_functions_only();
        self.rt
            .sources
            .record_functions(&name, functions.iter_functions().map(|f| f.name));
        let ast = self.library().merge(&ast);
        let _: Dynamic = self
            .engine
            .eval_ast(&ast)
            .map_err(|e| classify_in(&self.rt, &e, &name))?;
        self.rt.set_ast(Arc::new(self.library().merge(&functions)));
        Ok(())
    }
}

/// Splits `[STAGE] TASK...` and selects the stage.
pub fn split_stage(loaded: &Loaded, targets: &[String]) -> Result<Vec<String>, Error> {
    let stages = loaded.stages();
    let mut tasks = targets.to_vec();
    let selected = targets.first().filter(|first| stages.contains(first));
    if let Some(name) = selected.filter(|name| loaded.rt.recipe().tasks.contains_key(*name)) {
        // A stage file (`deploy/NAME.rhai`) named as a task; `stage()` refuses this itself.
        let file = loaded
            .stage_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, path)| format!(" (the stage file {})", path.display()))
            .unwrap_or_default();
        return Err(Error::Recipe(format!(
            "{}{file}",
            crate::recipe::names::both_stage_and_task(name)
        )));
    }
    loaded.select_stage(selected.map(String::as_str))?;
    if selected.is_some() {
        tasks.remove(0);
    } else if let Some(first) = targets.first() {
        if !loaded.rt.recipe().tasks.contains_key(first) && !stages.is_empty() {
            let recipe = loaded.rt.recipe();
            let known = stages
                .iter()
                .map(String::as_str)
                .chain(recipe.tasks.keys().map(String::as_str));
            return Err(Error::Usage(format!(
                "`{first}` is neither a stage nor a task{}",
                suggest(first, known)
            )));
        }
    }
    if selected.is_none() && !stages.is_empty() {
        if let Some(stage) = targets.iter().find(|t| stages.contains(t)) {
            return Err(stage_after_task(stage, None));
        }
        let recipe = loaded.rt.recipe();
        if recipe.servers().is_empty() && targets.iter().all(|t| recipe.tasks.contains_key(t)) {
            // As Capistrano's "Stage not set" (stop 44 tester t54: `tether app:hello` said
            // `unknown role or host`, exit 4, and `tether deploy` to select hosts with
            // --hosts, which no unloaded stage's server can be).
            return Err(Error::Usage(format!(
                "no stage selected, and the recipe's servers are declared in its stages ({}): \
                 name one first, before the tasks (`tether [OPTIONS] STAGE TASK...`)",
                stages.join(", ")
            )));
        }
    }
    Ok(tasks)
}
