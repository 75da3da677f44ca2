//! Which hosts a target names (`on()`, `hosts()`, `host()`): roles, host names and `Host`
//! values, narrowed by --roles, --hosts, --shard and a server's properties.

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, NativeCallContext};

use super::args::{fail, strings, Fallible};
use super::context::Runtime;
use super::host_info::HostInfo;
use super::model::Recipe;

/// The server properties `hosts(target, options)` selects by, as Capistrano's
/// `roles(:db, select: :primary)` and `roles(:app, exclude: :no_release)` (`filter` is
/// `select`): a server passes where each `select` property is true and no `exclude` property
/// is. A property is true as Capistrano takes it: set, and neither `false` nor `()`.
#[derive(Default)]
pub struct PropertyFilter {
    select: Vec<String>,
    exclude: Vec<String>,
}

impl PropertyFilter {
    /// The filter `options` gives `what` (a function's name, for its errors); Err for an
    /// option other than `select`, `filter`, `exclude`, or a value that is no property name.
    pub fn of(ctx: &NativeCallContext, options: &Map, what: &str) -> Fallible<Self> {
        let mut by = PropertyFilter::default();
        for (key, value) in options {
            let list = match key.as_str() {
                "select" | "filter" => &mut by.select,
                "exclude" => &mut by.exclude,
                other => {
                    return fail(format!(
                        "{what}(): unknown option `{other}`: it takes select (or filter) and \
                         exclude, each a property name, as Capistrano's roles(:db, select: \
                         :primary)"
                    ))
                }
            };
            let type_name = ctx.engine().map_type_name(value.type_name());
            let not = match value.read_lock::<ImmutableString>() {
                Some(name) if !name.is_empty() => {
                    list.push(name.to_string());
                    continue;
                }
                Some(_) => "an empty string".to_string(),
                None if value.is_unit() => "()".to_string(),
                None if value.is_int()
                    || value.is_float()
                    || value.is_bool()
                    || value.is_char() =>
                {
                    format!("{value} (of type {type_name})")
                }
                None => format!("a value of type {type_name}"),
            };
            return fail(format!(
                "{what}(): `{key}` takes a property name (`{key}: \"primary\"`), not {not}"
            ));
        }
        Ok(by)
    }

    fn admits(&self, server: &super::model::Server) -> bool {
        let set = |p: &String| {
            server
                .props
                .get(p.as_str())
                .is_some_and(|v| !v.is_unit() && v.as_bool() != Ok(false))
        };
        self.select.iter().all(set) && !self.exclude.iter().any(set)
    }
}

/// Hosts of `target` (role names, `all`, host names, `Host` values, or an array of those),
/// narrowed by `--roles`/`--hosts`, in the order named (a role's hosts in server order; see
/// `Recipe::resolve`), each once. A `Host` value (`host(name)`, an `on` closure's `host`)
/// names that host and is never taken for a role of that name.
pub fn select(rt: &Runtime, target: &Dynamic) -> Fallible<Vec<String>> {
    select_admitted(rt, target, |recipe, s| {
        rt.filters.admits(recipe, &s.name, &s.roles)
    })
}

/// The hosts of `target` (as [`select`] takes it) that `by` lets through, of those
/// --roles/--hosts select, and --shard too where `sharded`.
pub fn hosts_by(
    rt: &Runtime,
    target: &Dynamic,
    by: &PropertyFilter,
    sharded: bool,
) -> Fallible<Array> {
    let admit = |recipe: &Recipe, s: &super::model::Server| {
        let named = match sharded {
            true => rt.filters.admits(recipe, &s.name, &s.roles),
            false => rt.filters.admits_unsharded(recipe, &s.name, &s.roles),
        };
        named && by.admits(s)
    };
    Ok(select_admitted(rt, target, admit)?
        .into_iter()
        .map(Dynamic::from)
        .collect())
}

/// The hosts of `target` (as [`select`] takes it) that `admit` lets through.
fn select_admitted(
    rt: &Runtime,
    target: &Dynamic,
    admit: impl Fn(&Recipe, &super::model::Server) -> bool,
) -> Fallible<Vec<String>> {
    let one = |v: &Dynamic| v.read_lock::<HostInfo>().map(|h| h.name().to_string());
    let items: Vec<Dynamic> = match (one(target), target.read_lock::<Array>()) {
        (Some(_), _) => vec![target.clone()],
        (None, Some(items)) => {
            // Every name a string, as one list says it.
            let names: Array = items
                .iter()
                .filter(|v| !v.is::<HostInfo>())
                .cloned()
                .collect();
            strings(&Dynamic::from(names), "on() targets")?;
            items.iter().cloned().collect()
        }
        (None, None) => {
            strings(target, "on() targets")?;
            vec![target.clone()]
        }
    };
    let recipe = rt.recipe();
    let mut chosen: Vec<String> = Vec::new();
    for item in &items {
        match one(item) {
            Some(host) => chosen.push(host),
            None => chosen.extend(
                recipe
                    .resolve(&strings(item, "on() targets")?)
                    .map_err(|e| -> Box<EvalAltResult> { e.into() })?,
            ),
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(chosen
        .into_iter()
        .filter(|name| seen.insert(name.clone()))
        .filter(|name| recipe.server(name).is_some_and(|s| admit(&recipe, s)))
        .collect())
}

/// `host(name)`: the server `name` as a `Host` value, an `on` target that cannot be taken for
/// a role of the same name (Capistrano tells `on "db"` from `on roles(:db)`).
pub fn host(rt: &Runtime, name: &str) -> Fallible<HostInfo> {
    let recipe = rt.recipe();
    match recipe.server_named(name)? {
        Some(server) => {
            let name = server.name.clone();
            drop(recipe);
            Ok(HostInfo::new(rt, &name))
        }
        None => fail(format!(
            "no server `{name}` in the recipe{}",
            super::model::suggest(name, recipe.servers().iter().map(|s| s.name.as_str()))
        )),
    }
}
