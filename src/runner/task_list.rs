//! `tether tasks`: a recipe's tasks (with their hooks) and stages, as text, JSON lines or
//! bare names for the completion scripts.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::load::{load, load_options};
use crate::error::Error;
use crate::recipe::model::{Hook, Task};
use crate::report::Reporter;
use crate::settings::{Format, Settings};

/// One task as `tether tasks --format json` prints it.
#[derive(serde::Serialize)]
struct TaskEntry<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    description: &'a str,
    before: Vec<String>,
    after: Vec<String>,
    /// Whether the task applies to the recipe (see [`applies`]); text output hides those that
    /// do not unless `--all`.
    applies: bool,
}

/// The stdlib's strategy namespaces: `deploy` makes a release with one of them, the one the
/// `strategy` variable names; the other's tasks do not apply to the recipe.
const STRATEGIES: &[&str] = &["git", "copy"];

/// Whether `task` applies to a recipe whose `strategy` variable is `strategy` (`None`: not a
/// plain string, so nothing is judged): every task but a stdlib one (all its bodies defined in
/// `stdlib/...`) of a strategy namespace (`git:*`, `copy:*`) other than `strategy`. A task of
/// the recipe's own in those namespaces always applies.
fn applies(task: &Task, strategy: Option<&str>) -> bool {
    let Some(strategy) = strategy else {
        return true;
    };
    let from_stdlib = !task.bodies.is_empty()
        && task.bodies.iter().all(|b| {
            b.at.as_ref()
                .is_some_and(|(src, _)| src.starts_with("stdlib/"))
        });
    let namespace = task.name.split(':').next().unwrap_or_default();
    !(from_stdlib && STRATEGIES.contains(&namespace) && namespace != strategy)
}

/// What `tether tasks` shows.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Under each task, what runs before and after it (`--hooks`).
    pub hooks: bool,
    /// Tasks without a description too (`--all`); text output hides them otherwise, as Rake's
    /// `-T` does, and says how many it hid. JSON lists every task.
    pub all: bool,
    /// Only the names, one a line: the stages, then every task that applies to the recipe
    /// (described or not); what the completion scripts read.
    pub names: bool,
    /// The stage selected first (`tether tasks production`, `tether production -T`): its
    /// closure or stage file may declare tasks and hooks.
    pub stage: Option<String>,
}

/// `tether tasks`: the recipe's tasks (with their hooks) and stages, as text or JSON lines.
pub fn list(
    settings: &Settings,
    options: &ListOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let hooks = options.hooks;
    let reporter = Reporter::for_listing(settings);
    // Completion scripts read `--names` line by line: what the recipe prints (`print`,
    // warnings) must not become a name, so those events go nowhere.
    let sink = if options.names {
        crate::sink::channel().0
    } else {
        reporter.sink()
    };
    let loaded = load(&settings.recipe, load_options(settings, interrupted, sink)?)?;
    loaded.select_stage(options.stage.as_deref())?;
    loaded.validate_hooks()?;
    reporter.barrier();
    let stages = loaded.stages();
    let recipe = loaded.rt.recipe();
    let hook_names = |map: &std::collections::HashMap<String, Vec<Hook>>, task: &str| {
        map.get(task)
            .into_iter()
            .flatten()
            .map(|hook| match hook {
                Hook::Task(t) => t.clone(),
                Hook::Closure(_) => "(closure)".into(),
            })
            .collect::<Vec<_>>()
    };
    let strategy = recipe.vars.get("strategy").and_then(|v| {
        v.read_lock::<rhai::ImmutableString>()
            .map(|s| s.to_string())
    });
    if options.names {
        for name in &stages {
            crate::outln!("{name}");
        }
        for task in recipe.tasks.values() {
            if applies(task, strategy.as_deref()) {
                crate::outln!("{}", task.name);
            }
        }
        return Ok(());
    }
    if settings.format == Format::Json {
        for task in recipe.tasks.values() {
            let entry = TaskEntry {
                kind: "task",
                name: &task.name,
                description: &task.description,
                before: hook_names(&recipe.before, &task.name),
                after: hook_names(&recipe.after, &task.name),
                applies: applies(task, strategy.as_deref()),
            };
            crate::outln!("{}", serde_json::to_string(&entry).unwrap_or_default());
        }
        for name in &stages {
            crate::outln!("{}", serde_json::json!({ "type": "stage", "name": name }));
        }
        return Ok(());
    }
    let described = |t: &&Task| options.all || !t.description.is_empty();
    let applicable = |t: &&Task| options.all || applies(t, strategy.as_deref());
    let shown: Vec<_> = recipe
        .tasks
        .values()
        .filter(|t| described(t) && applicable(t))
        .collect();
    let undescribed = recipe.tasks.values().filter(|t| !described(t)).count();
    let inapplicable = recipe
        .tasks
        .values()
        .filter(|t| described(t) && !applicable(t))
        .count();
    let width = shown
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    for task in &shown {
        crate::outln!("{:width$}  {}", task.name, task.description);
        if !hooks {
            continue;
        }
        for (kind, map) in [("before", &recipe.before), ("after", &recipe.after)] {
            for what in hook_names(map, &task.name) {
                crate::outln!("{:width$}    {kind}: {what}", "");
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut hidden = Vec::new();
    if undescribed > 0 {
        hidden.push(format!(
            "{undescribed} task{} without a description",
            plural(undescribed)
        ));
    }
    if inapplicable > 0 {
        hidden.push(format!(
            "{inapplicable} stdlib task{} of another strategy than {:?}",
            plural(inapplicable),
            strategy.as_deref().unwrap_or_default()
        ));
    }
    if !hidden.is_empty() {
        crate::outln!("\n({} not shown: tether tasks --all)", hidden.join(" and "));
    }
    if !stages.is_empty() {
        crate::outln!("\nstages: {}", stages.join(", "));
    }
    Ok(())
}
