//! `tether definitions DIR`: Rhai definition files for every registered function and the stdlib
//! modules, for the Rhai language server.

use crate::support;

use support::tether::Tether;

#[test]
fn definitions_name_the_recipe_functions_and_the_stdlib() {
    let temp = tempfile::Builder::new()
        .prefix("tether-definitions-")
        .tempdir()
        .unwrap();
    let dir = temp.path().join("editor/defs");
    Tether::new()
        .args(&["definitions", dir.to_str().unwrap()])
        .run()
        .status(0)
        .stdout_contains("__static__.d.rhai")
        .stdout_contains("deploy.d.rhai");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let registered = read("__static__.d.rhai");
    for signature in [
        "fn on(_: ?, _: string) -> ?;",
        "fn on(_: ?, _: map, _: Fn) -> ?;",
        "fn run(_: string) -> ?;",
        "fn upload(_: string, _: string) -> ?;",
        "fn task(_: string, _: string, _: Fn) -> ?;",
        "fn set_secret(",
    ] {
        assert!(registered.contains(signature), "lacks {signature}");
    }
    assert!(!registered.contains("EvalAltResult"), "{registered}");
    assert!(read("__builtin__.d.rhai").contains("fn print("));
    let deploy = read("deploy.d.rhai");
    assert!(deploy.starts_with("module deploy;\n"), "{deploy}");
    assert!(
        deploy.contains("/// A variable as a string (`-s revision=1234` arrives as a number).\nfn str(key: ?) -> ?;"),
        "{deploy}"
    );
    assert!(!deploy.contains("anon$"), "{deploy}");
    for module in ["rails", "node", "php", "systemd"] {
        assert!(read(&format!("{module}.d.rhai")).starts_with(&format!("module {module};\n")));
    }
    // Written again over the same files.
    Tether::new()
        .args(&["definitions", dir.to_str().unwrap()])
        .run()
        .status(0);
}

#[test]
fn definitions_refuse_a_file() {
    let temp = tempfile::Builder::new()
        .prefix("tether-definitions-")
        .tempdir()
        .unwrap();
    let file = temp.path().join("defs");
    std::fs::write(&file, "mine\n").unwrap();
    Tether::new()
        .args(&["definitions", file.to_str().unwrap()])
        .run()
        .status(2)
        .stderr_contains("defs is not a directory");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");
}
