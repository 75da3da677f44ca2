//! The `host` value an `on` closure receives: the host's name, where it resolves to through
//! the ssh config, its roles and the properties the recipe gave it.

use rhai::{Array, Dynamic, Engine, Map};

use super::context::Runtime;
use crate::host::HostTarget;

/// What a closure sees as `host`.
#[derive(Debug, Clone)]
pub struct HostInfo {
    name: String,
    hostname: String,
    user: String,
    port: i64,
    roles: Vec<String>,
    props: Map,
}

impl HostInfo {
    /// The host's name in the recipe.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host `name` of the running recipe.
    pub fn new(rt: &Runtime, name: &str) -> Self {
        let recipe = rt.recipe();
        let server = recipe.server(name);
        let target = HostTarget::parse(name).ok();
        // A host whose config is refused shows its name; connecting to it reports why.
        let cfg = target
            .as_ref()
            .and_then(|t| rt.ssh_config().and_then(|c| c.resolve_target(t, None).ok()));
        HostInfo {
            name: name.to_string(),
            hostname: cfg
                .as_ref()
                .map_or_else(|| name.to_string(), |c| c.hostname.clone()),
            user: cfg.as_ref().map_or_else(String::new, |c| c.user.clone()),
            port: cfg.as_ref().map_or(22, |c| i64::from(c.port)),
            roles: server.map(|s| s.roles.clone()).unwrap_or_default(),
            props: server.map(|s| s.props.clone()).unwrap_or_default(),
        }
    }
}

/// Registers the `Host` type: `host.name`, `.hostname`, `.user`, `.port`, `.roles`,
/// `.props`, `.has_role(r)`.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<HostInfo>("Host")
        .register_get("name", |h: &mut HostInfo| h.name.clone())
        .register_get("hostname", |h: &mut HostInfo| h.hostname.clone())
        .register_get("user", |h: &mut HostInfo| h.user.clone())
        .register_get("port", |h: &mut HostInfo| h.port)
        .register_get("roles", |h: &mut HostInfo| {
            h.roles
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<Array>()
        })
        .register_get("props", |h: &mut HostInfo| h.props.clone())
        .register_fn("has_role", |h: &mut HostInfo, r: &str| {
            h.roles.iter().any(|x| x == r)
        })
        .register_fn("to_string", |h: &mut HostInfo| h.name.clone())
        // As an element of an array or map, which Rhai prints with `to_debug`: the expression
        // that gives it (stop 44 tester t54: `print([h1, h2])` printed `[Host, Host]`).
        .register_fn("to_debug", |h: &mut HostInfo| format!("host({:?})", h.name));
}
