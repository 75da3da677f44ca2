//! The recipe as plain data: servers and roles, stages, variables, tasks and hooks. The Rhai
//! functions in `api.rs` fill it while the recipe is evaluated; the runner reads it.

use std::collections::{BTreeMap, HashMap, HashSet};

use rhai::{Dynamic, FnPtr, Map};

use crate::host::HostTarget;

/// A host declared with `server` or `role`.
#[derive(Debug, Clone)]
pub struct Server {
    /// The name as written (`web1`, `deploy@10.0.0.5:2222`).
    pub name: String,
    /// Roles, in declaration order.
    pub roles: Vec<String>,
    /// Every other property given to `server` (`primary`, `any_key` ...).
    pub props: Map,
}

impl Server {
    /// The host to connect to: its name, reached through the `via` property (jump hosts, as
    /// ProxyJump: `"bastion"`, `"a,b"`, `"none"`) when it has one.
    pub fn target(&self) -> Result<HostTarget, String> {
        let via = match self.props.get("via") {
            None => None,
            Some(v) if v.is_unit() => None,
            Some(v) => match v.clone().into_immutable_string() {
                Ok(s) => Some(s.to_string()),
                Err(t) => {
                    return Err(format!(
                    "server(\"{}\"): `via` must be a string (jump hosts, as ProxyJump), not {t}",
                    self.name
                ))
                }
            },
        };
        let forward_agent = self
            .props
            .get("forward_agent")
            .and_then(|v| v.as_bool().ok());
        Ok(HostTarget::parse(&self.name)?
            .with_via(via)
            .with_forward_agent(forward_agent)
            .with_roles(self.roles.clone()))
    }
}

/// What runs before or after a task.
#[derive(Debug, Clone)]
pub enum Hook {
    /// Another task, by name.
    Task(String),
    /// A closure.
    Closure(FnPtr),
}

/// Where a `before`/`after` was declared, for errors about the names it gives.
#[derive(Debug, Clone)]
pub struct HookSite {
    /// `before` (else `after`).
    pub before: bool,
    /// The task it hooks.
    pub task: String,
    /// The task it runs (`None`: a closure).
    pub other: Option<String>,
    /// The source and position of the call.
    pub at: Option<(String, rhai::Position)>,
}

impl HookSite {
    /// Where it was declared, as `file:line:col`.
    pub fn location(&self) -> Option<super::diagnostics::Location> {
        let (source, pos) = self.at.as_ref()?;
        super::diagnostics::Location::at(source, *pos)
    }
}

/// A named task; defining a task twice appends the second body (as Rake does).
#[derive(Debug, Clone)]
pub struct Task {
    /// `namespace:name`.
    pub name: String,
    /// One line for `tether tasks`.
    pub description: String,
    /// Bodies in definition order.
    pub bodies: Vec<TaskBody>,
}

/// One body of a task: its closure and where `task(...)` defined it.
#[derive(Debug, Clone)]
pub struct TaskBody {
    /// The closure.
    pub f: FnPtr,
    /// The source (`deploy.rhai`, `stdlib/deploy.rhai`) and position of the `task(...)` call,
    /// for errors that carry no position of their own (a runaway loop).
    pub at: Option<(String, rhai::Position)>,
}

/// Everything a recipe declared.
#[derive(Debug, Default, Clone)]
pub struct Recipe {
    /// Servers in declaration order (added by [`Recipe::add_server`] alone, which keeps the
    /// two indexes below).
    servers: Vec<Server>,
    /// Each server's position in `servers`, by name.
    by_name: HashMap<String, usize>,
    /// The positions of the servers of each host name (ssh_config(5) `Host` alias; parsed
    /// once, where [`Recipe::same_server`] parsed every server's name for each name looked up:
    /// a million parses to declare 1000 servers).
    by_alias: HashMap<String, Vec<(usize, HostTarget)>>,
    /// Tasks by name.
    pub tasks: BTreeMap<String, Task>,
    /// Hooks run before a task, by task name.
    pub before: HashMap<String, Vec<Hook>>,
    /// Hooks run after a task, by task name.
    pub after: HashMap<String, Vec<Hook>>,
    /// Every `before`/`after` call, in order: where it was declared.
    pub hook_sites: Vec<HookSite>,
    /// `on_failure` closures, in order.
    pub failure_hooks: Vec<FnPtr>,
    /// Stages in declaration order.
    pub stages: Vec<(String, FnPtr)>,
    /// Variables.
    pub vars: HashMap<String, Dynamic>,
    /// Variables set with `-s key=value`: later `set` calls do not change them.
    pub locked: HashSet<String>,
    /// Tasks have started: the variables tether reads itself when the run starts (see
    /// `runtime_vars`) were read, and setting them is refused.
    pub started: bool,
    /// The stage was chosen (its closure and stage file run now, or ran): a `stage()` from
    /// here on could never be selected.
    pub stage_chosen: bool,
    /// Where each variable was last set: `FILE:LINE:COL`, or `-s KEY=VALUE` (named when tether
    /// cannot use its value, as a missing ssh config file or a `deploy_to` that is no path).
    pub origins: HashMap<String, String>,
    /// Roles declared with no server (`role("spare", [])`): a role still, of no host, as in
    /// Capistrano (an `on` of it runs nowhere).
    pub empty_roles: Vec<String>,
}

impl Recipe {
    /// Adds a server or merges roles and properties into an existing one: the one of that
    /// name, or, as Capistrano keys its servers by host name and port, the one written with a
    /// user (`deploy@host1`) that `name` names without one (`host1`: a `role` of it joins
    /// `deploy@host1`, whose user stays). Two users written out (`deploy@host1`,
    /// `root@host1`) are two logins, two hosts, as meant. Err (a recipe error) when `name`
    /// could be more than one of them, or gives a user to a server declared without one: one
    /// machine would be two hosts, each command run on it twice.
    pub fn add_server(&mut self, name: &str, roles: &[String], props: Map) -> Result<(), String> {
        let found = match self.by_name.get(name) {
            Some(&i) => Some(i),
            None => self.same_server(name)?,
        };
        let server = match found {
            Some(i) => &mut self.servers[i],
            None => {
                let at = self.servers.len();
                self.servers.push(Server {
                    name: name.to_string(),
                    roles: Vec::new(),
                    props: Map::new(),
                });
                self.by_name.insert(name.to_string(), at);
                if let Ok(target) = HostTarget::parse(name) {
                    self.by_alias
                        .entry(target.alias.clone())
                        .or_default()
                        .push((at, target));
                }
                &mut self.servers[at]
            }
        };
        for r in roles {
            if !server.roles.contains(r) {
                server.roles.push(r.clone());
            }
        }
        server.props.extend(props);
        Ok(())
    }

    /// The server `name` (not declared under that name) names by its host name and port, as
    /// Capistrano matches servers (see [`Recipe::add_server`]).
    fn same_server(&self, name: &str) -> Result<Option<usize>, String> {
        let Ok(new) = HostTarget::parse(name) else {
            return Ok(None);
        };
        let of_alias: Vec<(usize, HostTarget)> =
            self.by_alias.get(&new.alias).cloned().unwrap_or_default();
        // Of the same port; a name without one (reached at the ssh config's port) names the
        // server of that host name declared with one, as `--hosts` and `on()` take it (stop 36
        // tester t22: `role("worker", ["web"])` beside `server("web", #{ port: P })` made a
        // second host, the same machine through the config, and every command ran twice).
        let exact: Vec<(usize, HostTarget)> = of_alias
            .iter()
            .filter(|(_, t)| t.port == new.port)
            .cloned()
            .collect();
        let same = match (exact.is_empty(), new.port) {
            (true, None) => of_alias,
            _ => exact,
        };
        match (&new.user, same.as_slice()) {
            (_, []) => Ok(None),
            (None, [(i, _)]) => Ok(Some(*i)),
            (None, more) => Err(ambiguous(
                name,
                more.iter().map(|(i, _)| self.servers[*i].name.as_str()),
            )),
            (Some(user), more) => match more.iter().find(|(_, t)| t.user.is_none()) {
                Some((i, _)) => Err(format!(
                    "`{name}` names the server `{}` again, with the user {user}: one machine \
                     would be two hosts, each command run on it twice; write it one way \
                     everywhere (`{name}`), or set its User in the ssh config",
                    self.servers[*i].name
                )),
                // Another user written out: another login, another host.
                None => Ok(None),
            },
        }
    }

    /// The servers, in declaration order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.by_name.get(name).map(|&i| &self.servers[i])
    }

    /// Every role name, in first-seen order (those of no server last).
    pub fn role_names(&self) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for r in self
            .servers
            .iter()
            .flat_map(|s| &s.roles)
            .chain(&self.empty_roles)
        {
            if !roles.contains(r) {
                roles.push(r.clone());
            }
        }
        roles
    }

    /// The server a host name names: declared under it, or (Capistrano's key) by its host
    /// name and port; `None` if no server.
    pub fn server_named(&self, name: &str) -> Result<Option<&Server>, String> {
        if let Some(s) = self.server(name) {
            return Ok(Some(s));
        }
        Ok(self.same_server(name)?.map(|i| &self.servers[i]))
    }

    /// The server `--hosts NAME` selects: declared under that name, or, as Capistrano's host
    /// filter matches a server by its host name, the one server of that host name (and of the
    /// port and user NAME gives, if it gives them): `web` selects the server declared
    /// `deploy@web:2222`. `None` if no server; Err where it would fit several.
    pub fn server_for_filter(&self, name: &str) -> Result<Option<&Server>, String> {
        if let Some(s) = self.server(name) {
            return Ok(Some(s));
        }
        let fits: Vec<&Server> = self
            .servers
            .iter()
            .filter(|s| filter_fits(name, &s.name))
            .collect();
        match fits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            more => Err(ambiguous(name, more.iter().map(|s| s.name.as_str()))),
        }
    }

    /// Resolves role names, `all` and host names to hosts, in the order named (a role's and
    /// `all`'s hosts in server order), each once, where first named: `on(["web2", "web1"],
    /// #{ in: "sequence" })` runs web2 first, as SSHKit's coordinator keeps the hosts given.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<String>, String> {
        let roles = self.role_names();
        let mut wanted: Vec<&str> = Vec::new();
        for n in names {
            if n == "all" {
                wanted.extend(self.servers.iter().map(|s| s.name.as_str()));
            } else if roles.contains(n)
                && self.server(n).is_some()
                && self
                    .servers
                    .iter()
                    .any(|s| s.roles.contains(n) && s.name != *n)
            {
                // Capistrano tells `roles(:x)` from `"x"`; a name here can be either, and
                // they differ: the role has other hosts. (`server("db", #{ roles: ["db"] })`
                // alone is the same host either way.)
                return Err(format!(
                    "`{n}` is both a role and a server: it is not clear which is meant; rename \
                     one (a role's name is best one no host has)"
                ));
            } else if roles.contains(n) {
                wanted.extend(
                    self.servers
                        .iter()
                        .filter(|s| s.roles.contains(n))
                        .map(|s| s.name.as_str()),
                );
            } else if self.server(n).is_some() {
                wanted.push(n.as_str());
            } else if let Ok(Some(i)) = self.same_server(n) {
                // `host1` for the server declared as `deploy@host1`.
                wanted.push(self.servers[i].name.as_str());
            } else if let Some(s) = self.server_for_filter(n)? {
                // `web` for the one server of that host name, `root@web:2222`, as `--hosts web`
                // selects it (stop 36 tester t20: refused, with "did you mean `db`?").
                wanted.push(s.name.as_str());
            } else {
                let mut known = roles.clone();
                known.extend(self.servers.iter().map(|s| s.name.clone()));
                return Err(format!(
                    "unknown role or host `{n}`{}",
                    suggest(n, known.iter().map(String::as_str))
                ));
            }
        }
        let mut seen = HashSet::new();
        Ok(wanted
            .into_iter()
            .filter(|n| seen.insert(*n))
            .map(str::to_string)
            .collect())
    }

    /// The primary server of `role` among those `admitted` (as Capistrano's `primary` picks
    /// from the servers its host and role filters select): the first with `primary: true`,
    /// else the first; of every server of the role when none is admitted.
    pub fn primary(&self, role: &str, admitted: impl Fn(&Server) -> bool) -> Option<&Server> {
        self.primary_of(role, &admitted)
            .or_else(|| self.primary_of(role, &|_: &Server| true))
    }

    fn primary_of(&self, role: &str, admitted: &dyn Fn(&Server) -> bool) -> Option<&Server> {
        let in_role = || {
            self.servers
                .iter()
                .filter(|s| s.roles.iter().any(|r| r == role) && admitted(s))
        };
        in_role()
            .find(|s| {
                s.props
                    .get("primary")
                    .and_then(|p| p.as_bool().ok())
                    .unwrap_or(false)
            })
            .or_else(|| in_role().next())
    }

    /// The first circle of task hooks a run of `roots` would enter (`a`, `b`, `a`: `a` runs
    /// `b` before or after it, `b` runs `a`), following each task's before hooks, then its
    /// after hooks, as a run takes them; `None` when there is none. Hooks are known before a
    /// run starts; an `invoke` in a task's body is met only as it runs.
    pub fn hook_circle(&self, roots: &[String]) -> Option<Vec<String>> {
        self.hook_circle_within(&[], roots)
    }

    /// [`Recipe::hook_circle`] for `roots` invoked while the tasks of `chain` run (the
    /// invocation chain, outermost first): a hook that leads back to one of them closes a
    /// circle too (`after("deploy:symlink:release", "deploy:publishing")` with the stdlib's
    /// `deploy:publishing` invoking `deploy:symlink:release`).
    pub fn hook_circle_within(&self, chain: &[String], roots: &[String]) -> Option<Vec<String>> {
        let mut done = HashSet::new();
        let mut path: Vec<&str> = chain.iter().map(String::as_str).collect();
        roots
            .iter()
            .find_map(|root| self.circle_from(root, &mut path, &mut done))
    }

    /// [`Recipe::hook_circle`] from `task`, reached by `path`; `done` holds the tasks whose
    /// hooks were followed to their ends.
    fn circle_from<'a>(
        &'a self,
        task: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|t| *t == task) {
            let mut circle: Vec<String> = path[i..].iter().map(|t| t.to_string()).collect();
            circle.push(task.to_string());
            return Some(circle);
        }
        if done.contains(task) {
            return None;
        }
        path.push(task);
        let hooked = [&self.before, &self.after]
            .into_iter()
            .filter_map(|hooks| hooks.get(task))
            .flatten()
            .filter_map(|hook| match hook {
                Hook::Task(t) => Some(t.as_str()),
                Hook::Closure(_) => None,
            });
        for next in hooked {
            if let Some(circle) = self.circle_from(next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(task);
        None
    }

    /// What is wrong with the targets of the hook declared at `site`: the task it hooks or the
    /// task it runs unknown (`after("b", ...): unknown task `b``); `None` when both exist. A
    /// hook of `deploy:failed` needs no such task: the failure path runs it when it exists.
    pub fn hook_target_problem(&self, site: &HookSite) -> Option<String> {
        let kind = if site.before { "before" } else { "after" };
        let task = &site.task;
        if !self.tasks.contains_key(task) && task != "deploy:failed" {
            return Some(format!(
                "{kind}(\"{task}\", ...): {}",
                self.unknown_task(task)
            ));
        }
        let other = site.other.as_ref()?;
        if self.tasks.contains_key(other) {
            return None;
        }
        Some(format!(
            "{kind}(\"{task}\", \"{other}\"): {}",
            self.unknown_task(other)
        ))
    }

    /// An error message for an unknown task, with the closest names.
    pub fn unknown_task(&self, name: &str) -> String {
        // Rake's and Capistrano's `KEY=VALUE` argument (stop 41 tester t42: `tether
        // deploy:rollback ROLLBACK_RELEASE=X` said only `unknown task`).
        // Each hint is one tether takes (stop 44 tester t54: `HOSTS=host1` was told `-s
        // hosts=host1`, which selected nothing, and `stage=production` `-s stage=...`, which
        // is refused).
        if let Some((key, value)) = name.split_once('=') {
            let var = key.to_ascii_lowercase();
            let names = if value.is_empty() { "NAMES" } else { value };
            let is_name = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            // HOST= and ROLE= too: as variables they would select nothing (stop 44 tester t55).
            let instead = match var.as_str() {
                "hosts" | "host" | "roles" | "role" => {
                    let flag = if var.starts_with("host") {
                        "hosts"
                    } else {
                        "roles"
                    };
                    format!(
                        "select them with --{flag} {names} (or {}={names} in the environment)",
                        flag.to_ascii_uppercase()
                    )
                }
                "stage" => format!(
                    "name the stage first, before the tasks (`tether [OPTIONS] {} TASK...`)",
                    if value.is_empty() { "STAGE" } else { value }
                ),
                _ if !is_name => format!(
                    "`{key}` is not a variable name either (a letter or `_`, then letters, \
                     digits, `_` or `:`)"
                ),
                _ => format!(
                    "set a variable with -s {var}={value}, or {key} in the environment where \
                     tether reads it (HOSTS, ROLES, ROLLBACK_RELEASE)"
                ),
            };
            return format!(
                "unknown task `{name}`: tether takes no KEY=VALUE arguments (Rake would put \
                 them in its environment): {instead}"
            );
        }
        format!(
            "unknown task `{name}`{}",
            suggest(name, self.tasks.keys().map(String::as_str))
        )
    }
}

/// The error of a host name `name` that fits each of `servers`.
fn ambiguous<'a>(name: &str, servers: impl Iterator<Item = &'a str>) -> String {
    let servers: Vec<String> = servers.map(|s| format!("`{s}`")).collect();
    format!(
        "`{name}` could be any of the servers {}: write the one meant",
        servers.join(", ")
    )
}

/// `; did you mean `a`?` for the names closest to `name`, or nothing.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    suggest_as(name, candidates, "")
}

/// [`suggest`], each name shown after `shown_as` (`tether ` for a subcommand: ``; did you
/// mean `tether check`?``).
pub fn suggest_as<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
    shown_as: &str,
) -> String {
    suggest_shown(name, candidates, |c| format!("{shown_as}{c}"))
}

/// [`suggest`], each name shown as `shown` writes it (`--hosts`' notation: `"x[1]"`), though
/// compared as it is.
pub fn suggest_shown<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
    shown: impl Fn(&str) -> String,
) -> String {
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(2) || c.contains(name))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    // Only the closest names: a near miss should not drown in merely similar ones.
    let best = scored.first().map_or(0, |(d, _)| *d);
    let names: Vec<String> = scored
        .iter()
        .filter(|(d, _)| *d == best)
        .take(3)
        .map(|(_, c)| format!("`{}`", shown(c)))
        .collect();
    match names.len() {
        0 => String::new(),
        1 => format!("; did you mean {}?", names[0]),
        _ => format!("; did you mean one of {}?", names.join(", ")),
    }
}

/// Whether `--hosts` name `given` fits the server declared `declared` (see
/// [`Recipe::server_for_filter`]): the same host name, and the port and user `given` gives,
/// if it gives them.
pub fn filter_fits(given: &str, declared: &str) -> bool {
    match (HostTarget::parse(given), HostTarget::parse(declared)) {
        (Ok(g), Ok(d)) => target_fits(&g, &d),
        _ => false,
    }
}

/// [`filter_fits`] of names already parsed.
pub fn target_fits(given: &HostTarget, declared: &HostTarget) -> bool {
    given.alias == declared.alias
        && given.port.is_none_or(|p| declared.port == Some(p))
        && given
            .user
            .as_ref()
            .is_none_or(|u| declared.user.as_ref() == Some(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One machine written two ways (`deploy@host1`, then `host1` in a role) is one server, as
    /// Capistrano keys servers by host name and port; written under two users, or with a user
    /// the first did not give, it is refused: each command would run on it twice.
    #[test]
    fn one_machine_written_two_ways_is_one_server_or_refused() {
        let mut r = Recipe::default();
        r.add_server("deploy@host1", &["web".into()], Map::new())
            .unwrap();
        r.add_server("host1", &["worker".into()], Map::new())
            .unwrap();
        assert_eq!(r.servers.len(), 1);
        assert_eq!(r.servers[0].name, "deploy@host1");
        assert_eq!(r.servers[0].roles, ["web", "worker"]);
        assert_eq!(r.resolve(&["host1".into()]).unwrap(), ["deploy@host1"]);
        assert_eq!(
            r.resolve(&["web".into(), "worker".into()]).unwrap(),
            ["deploy@host1"]
        );
        // Another port is another server, as in Capistrano.
        r.add_server("host1:2222", &[], Map::new()).unwrap();
        r.add_server("deploy@host1:2222", &[], Map::new())
            .unwrap_err();
        assert_eq!(r.servers.len(), 2);
        // Two users written out are two logins: two hosts, as meant; then `host1` could be
        // either.
        r.add_server("root@host1", &["db".into()], Map::new())
            .unwrap();
        assert_eq!(r.servers.len(), 3);
        let e = r.add_server("host1", &[], Map::new()).unwrap_err();
        assert!(
            e.contains("could be any of the servers `deploy@host1`, `root@host1`"),
            "{e}"
        );
        let mut r = Recipe::default();
        r.add_server("host2", &[], Map::new()).unwrap();
        let e = r.add_server("deploy@host2", &[], Map::new()).unwrap_err();
        assert!(e.contains("again, with the user deploy"), "{e}");
        assert_eq!(r.servers.len(), 1);
    }

    /// A host name names the one server of that host name whatever its user and port, as
    /// `--hosts` selects it; one that fits several is refused, naming them (stop 36 tester
    /// t20: `on("web")` for `root@web:2222` was "unknown role or host", with "did you mean
    /// `db`?").
    #[test]
    fn a_host_name_names_its_one_server() {
        let mut r = Recipe::default();
        r.add_server("root@web:2222", &["app".into()], Map::new())
            .unwrap();
        r.add_server("db", &["app".into()], Map::new()).unwrap();
        assert_eq!(r.resolve(&["web".into()]).unwrap(), ["root@web:2222"]);
        assert_eq!(r.resolve(&["web:2222".into()]).unwrap(), ["root@web:2222"]);
        let e = r.resolve(&["web:2223".into()]).unwrap_err();
        assert!(e.contains("unknown role or host `web:2223`"), "{e}");
        r.add_server("deploy@web:2200", &[], Map::new()).unwrap();
        let e = r.resolve(&["web".into()]).unwrap_err();
        assert!(
            e.contains("could be any of the servers `root@web:2222`, `deploy@web:2200`"),
            "{e}"
        );
        assert_eq!(
            r.resolve(&["web:2200".into()]).unwrap(),
            ["deploy@web:2200"]
        );
    }

    /// A name without a port joins the one server of that host name declared with one (as
    /// `role("worker", ["web"])` names it), rather than make a second host of what the ssh
    /// config may reach as the same machine; one of another port is another server, and a
    /// name that then fits several is refused (stop 36 tester t22: every command ran twice).
    #[test]
    fn a_name_without_a_port_joins_its_one_server() {
        let mut r = Recipe::default();
        r.add_server("root@web:2222", &["app".into()], Map::new())
            .unwrap();
        r.add_server("web", &["worker".into()], Map::new()).unwrap();
        assert_eq!(r.servers.len(), 1);
        assert_eq!(r.servers[0].roles, ["app", "worker"]);
        r.add_server("web:2200", &["db".into()], Map::new())
            .unwrap();
        assert_eq!(r.servers.len(), 2);
        let e = r.add_server("web", &[], Map::new()).unwrap_err();
        assert!(e.contains("could be any of the servers"), "{e}");
        r.add_server("web:2200", &["cache".into()], Map::new())
            .unwrap();
        assert_eq!(r.servers.len(), 2);
        assert_eq!(r.servers[1].roles, ["db", "cache"]);
    }

    /// A name that is both a role and a server is refused where it is used, not taken for the
    /// role (before, `on("host2")` ran on host1, the one server of the role `host2`).
    #[test]
    fn a_name_both_a_role_and_a_server_is_refused() {
        let mut r = Recipe::default();
        r.add_server("host1", &["host2".into()], Map::new())
            .unwrap();
        r.add_server("host2", &["web".into()], Map::new()).unwrap();
        let e = r.resolve(&["host2".into()]).unwrap_err();
        assert!(e.contains("both a role and a server"), "{e}");
        assert_eq!(r.resolve(&["web".into()]).unwrap(), ["host2"]);
        assert_eq!(r.resolve(&["host1".into()]).unwrap(), ["host1"]);
        // Where the role is that server alone, either reading is the same host (fresh-eyes
        // finding: `on(primary("db"))` was refused for `server("db", #{ roles: ["db"] })`).
        let mut r = Recipe::default();
        r.add_server("db", &["db".into(), "app".into()], Map::new())
            .unwrap();
        r.add_server("web1", &["app".into()], Map::new()).unwrap();
        assert_eq!(r.resolve(&["db".into()]).unwrap(), ["db"]);
    }

    fn recipe() -> Recipe {
        let mut r = Recipe::default();
        r.add_server("web1", &["web".into(), "app".into()], Map::new())
            .unwrap();
        r.add_server("web2", &["web".into(), "app".into()], Map::new())
            .unwrap();
        let mut p = Map::new();
        p.insert("primary".into(), true.into());
        r.add_server("db1", &["db".into()], Map::new()).unwrap();
        r.add_server("db2", &["db".into()], p).unwrap();
        r
    }

    #[test]
    fn resolves_roles_once_in_server_order() {
        let r = recipe();
        assert_eq!(
            r.resolve(&["app".into(), "web".into(), "db2".into()])
                .unwrap(),
            ["web1", "web2", "db2"]
        );
        assert_eq!(r.resolve(&["all".into()]).unwrap().len(), 4);
        let e = r.resolve(&["wbe".into()]).unwrap_err();
        assert_eq!(e, "unknown role or host `wbe`; did you mean `web`?");
    }

    #[test]
    fn union_of_roles_and_props() {
        let mut r = recipe();
        let mut p = Map::new();
        p.insert("x".into(), 1_i64.into());
        r.add_server("web1", &["db".into()], p).unwrap();
        let s = r.server("web1").unwrap();
        assert_eq!(s.roles, ["web", "app", "db"]);
        assert!(s.props.contains_key("x"));
        assert_eq!(r.servers.len(), 4);
    }

    #[test]
    fn primary_prefers_the_flag() {
        let all = |_: &Server| true;
        assert_eq!(recipe().primary("db", all).unwrap().name, "db2");
        assert_eq!(recipe().primary("web", all).unwrap().name, "web1");
        // Among the admitted (`--hosts db1`): db1, though db2 is marked primary.
        let db1 = |s: &Server| s.name == "db1";
        assert_eq!(recipe().primary("db", db1).unwrap().name, "db1");
        // None of the role admitted: the role's own primary (an `on` of it then runs nowhere).
        let web1 = |s: &Server| s.name == "web1";
        assert_eq!(recipe().primary("db", web1).unwrap().name, "db2");
    }

    #[test]
    fn suggestions() {
        let names = ["deploy:updating", "deploy:publishing", "deploy"];
        assert_eq!(
            suggest("deploy:publish", names.iter().copied()),
            "; did you mean `deploy:publishing`?"
        );
        assert_eq!(suggest("zzz", names.iter().copied()), "");
    }
}
