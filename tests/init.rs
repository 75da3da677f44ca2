//! `tether init`: every template writes a recipe and stage files that load, list their tasks
//! and dry-run a deploy; an existing file is never overwritten.

use crate::support;

use support::tether::Tether;

fn temp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tether-init-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn every_template_loads_and_dry_runs_a_deploy() {
    // (template, a task its module adds, a command only its deploy runs)
    for (template, task, command) in [
        ("rails", "deploy:assets:precompile", "assets:precompile"),
        ("node", "npm:install", "npm ci"),
        ("php", "deploy:vendors", "composer install"),
        ("static", "deploy:rollback", "git archive"),
    ] {
        let temp = temp(template);
        let dir = temp.path();
        Tether::new()
            .args(&["init", "--template", template])
            .current_dir(dir)
            .run()
            .status(0)
            .stdout_contains(
                "wrote deploy.rhai\nwrote deploy/production.rhai\nwrote deploy/staging.rhai\n",
            );
        let recipe = std::fs::read_to_string(dir.join("deploy.rhai")).unwrap();
        assert!(recipe.starts_with("// deploy.rhai"), "{recipe}");
        Tether::new()
            .args(&["tasks"])
            .current_dir(dir)
            .run()
            .status(0)
            .stdout_contains(task)
            .stdout_contains("stages: production, staging");
        for stage in ["production", "staging"] {
            let out = Tether::new()
                .args(&["-n", stage, "deploy"])
                .current_dir(dir)
                .run();
            out.status(0)
                .stdout_contains("▶ deploy:finished")
                .stdout_contains(command)
                .stderr_lacks("error");
            let host = if stage == "production" {
                "deploy@web1.example.com | "
            } else {
                "deploy@staging.example.com | "
            };
            out.stdout_contains(host);
        }
    }
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let temp = temp("refuse");
    let dir = temp.path();
    std::fs::create_dir(dir.join("deploy")).unwrap();
    std::fs::write(dir.join("deploy/staging.rhai"), "// mine\n").unwrap();
    Tether::new()
        .args(&["init", "--template", "node"])
        .current_dir(dir)
        .run()
        .status(2)
        .stderr_contains("deploy/staging.rhai exists");
    assert!(!dir.join("deploy.rhai").exists());
    assert!(!dir.join("deploy/production.rhai").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("deploy/staging.rhai")).unwrap(),
        "// mine\n"
    );
    // The default template, at another recipe path: stage files beside it.
    Tether::new()
        .args(&["-f", "site/app.rhai", "init"])
        .current_dir(dir)
        .run()
        .status(0)
        .stdout_contains("wrote site/deploy/production.rhai");
    Tether::new()
        .args(&["-f", "site/app.rhai", "init"])
        .current_dir(dir)
        .run()
        .status(2)
        .stderr_contains("site/app.rhai exists");
    Tether::new()
        .args(&["-f", "site/app.rhai", "-n", "production", "deploy"])
        .current_dir(dir)
        .run()
        .status(0);
}
