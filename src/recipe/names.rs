//! Names a recipe cannot give a task, a stage or a role, because the command line or `on()`
//! could never name them alone.

use super::args::{fail, Fallible};

/// A task or stage (`what`) named as a subcommand of tether: `tether NAME` runs the
/// subcommand, so it could never be named on the command line.
pub fn named_like_a_subcommand(what: &str, name: &str) -> String {
    format!(
        "a {what} cannot be named `{name}`: `tether {name}` is tether's own subcommand, so the \
         {what} could never be named on the command line; rename it"
    )
}

/// Why `name` cannot name a task or stage (`what`), which the command line names: nothing, a
/// blank or whitespace in it, a control or invisible character, an empty part between `:`s
/// (`a:`, `:a`, `a::b`), a `-` at its start (`tether -x` is an option), or for a stage a `/`;
/// None where it can (stop 41 tester t37: `a:` and `-x`
/// were taken, stages were not checked at all).
pub fn refused_name(what: &str, name: &str) -> Option<String> {
    let why = if name.trim().is_empty() {
        "it is empty"
    } else if name.contains(char::is_whitespace) {
        "it holds whitespace"
    } else if name.chars().any(crate::chars::invisible) {
        "it holds a control or invisible character, which a listing cannot show as typed"
    } else if what == "stage" && name.contains('/') {
        "a stage names a file, deploy/NAME.rhai, and `/` would name another directory"
    } else if name.split(':').any(str::is_empty) {
        "a part between `:`s is empty"
    } else if name.starts_with('-') {
        "it begins with `-`, which the command line reads as an option"
    } else {
        return None;
    };
    Some(format!(
        "invalid {what} name {name:?}: {why}; use words joined by `:` (`deploy:check`)"
    ))
}

/// A name both a stage and a task: `tether NAME` could mean either.
pub fn both_stage_and_task(name: &str) -> String {
    format!("`{name}` is both a stage and a task, so `tether {name}` could mean either: rename one")
}

/// Refuses a role name no target could name alone (stop 40 testers t34, t36): `all`, which
/// `on("all")` and `--roles all` read as every server, an empty or blank name (`--roles web,`
/// selected it), and one with a `,` (`--roles` splits on it).
pub fn role_name(role: &str) -> Fallible<()> {
    if role == "all" {
        return fail(
            "a role cannot be named `all`: on(\"all\") means every server, so the role could \
             never be named alone",
        );
    }
    if role.trim().is_empty() {
        return fail(format!(
            "a role name cannot be empty or blank, not {role:?}"
        ));
    }
    if role.contains(',') {
        return fail(format!(
            "a role name cannot hold `,` (--roles splits on it), not {role:?}"
        ));
    }
    // Listed as another role, which on() would then not reach (stop 41 tester t42: `web\u{200b}`
    // beside `web`).
    if role
        .chars()
        .any(|c| c.is_whitespace() || crate::chars::invisible(c))
    {
        return fail(format!(
            "a role name cannot hold whitespace, a control or an invisible character, which a \
             listing cannot show as typed, not {role:?}"
        ));
    }
    Ok(())
}
