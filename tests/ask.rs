//! `ask(key, default)` as Capistrano's: asked on a terminal the first time the variable is
//! fetched (Enter takes the default, asked once), refused without a terminal unless `-s` set
//! it, and with `echo: false` not echoed and masked as a secret.

use crate::support;

use std::time::Duration;

use support::pty::{self, Pty};
use support::recipe::RecipeDir;

const WAIT: Duration = Duration::from_secs(60);

const RECIPE: &str = r#"ask("branch", "main");
ask("token", "t0", #{ echo: false });
task("show", "prints what was asked", || {
    print(`branch=${fetch("branch")}`);
    print(`again=${fetch("branch")}`);
});
task("secret", "prints the secret", || {
    print(`token=${fetch("token")}`);
});
"#;

#[test]
fn without_a_terminal_asking_is_a_recipe_error_unless_set_on_the_command_line() {
    let r = RecipeDir::new("ask-no-tty", RECIPE);
    r.tether().arg("show").run().status(4).stderr_contains(
        "deploy.rhai:4:21: ask(\"branch\") at deploy.rhai:1:1: no terminal to ask on \
             (stdin is not a terminal); set it with -s branch=VALUE",
    );
    r.tether()
        .args(&["show", "-s", "branch=feature"])
        .run()
        .status(0)
        .stdout_contains("branch=feature")
        .stdout_contains("again=feature")
        .stderr_lacks("Please enter");
    // Nothing fetched, nothing asked: listing tasks needs no terminal.
    r.tether()
        .arg("tasks")
        .run()
        .status(0)
        .stdout_contains("show");
    // -s with echo: false: that value is the secret.
    r.tether()
        .args(&["secret", "-s", "token=sek-42"])
        .run()
        .status(0)
        .stdout_contains("token=********")
        .stdout_lacks("sek-42");
}

fn on_terminal(r: &RecipeDir, task: &str) -> (Pty, std::process::Child) {
    let pty = Pty::new(100, 30);
    let child = pty.spawn(r.tether().arg(task).command());
    (pty, child)
}

#[test]
fn on_a_terminal_the_answer_is_used_once_asked_and_enter_takes_the_default() {
    let r = RecipeDir::new("ask-tty", RECIPE);
    let (pty, mut child) = on_terminal(&r, "show");
    pty.wait_for("Please enter branch (main): ", WAIT);
    pty.type_text("feature\n");
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    let out = pty.output();
    assert!(out.contains("branch=feature"), "{out}");
    assert!(out.contains("again=feature"), "{out}");
    assert_eq!(out.matches("Please enter").count(), 1, "{out}");

    let (pty, mut child) = on_terminal(&r, "show");
    pty.wait_for("Please enter branch (main): ", WAIT);
    pty.type_text("\n");
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    assert!(pty.output().contains("branch=main"), "{}", pty.output());
}

#[test]
fn a_secret_answer_is_not_echoed_and_is_masked() {
    let r = RecipeDir::new("ask-secret", RECIPE);
    let (pty, mut child) = on_terminal(&r, "secret");
    pty.wait_for("Please enter token (Enter for the default): ", WAIT);
    pty.type_text("hush-hush\n");
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    let out = pty.output();
    assert!(out.contains("token=********"), "{out}");
    assert!(!out.contains("hush-hush"), "{out}");
}
