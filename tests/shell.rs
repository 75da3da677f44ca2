//! `tether ssh HOST|ROLE [-- CMD]` against real sshd, driven on a pseudo-terminal the test
//! holds (`support/pty.rs`): the shell starts in `current`, the exit status passes through, a
//! command gets a terminal of the window size the test set (and a resize reaches it), the
//! local terminal is back in cooked mode afterwards, and it works through a jump host.

use crate::support;

use std::fs;
use std::time::Duration;

use support::lab::Lab;
use support::pty::{self, Pty};
use support::recipe::lab_recipe;
use support::site::Site;
use support::tether::Tether;

const WAIT: Duration = Duration::from_secs(60);

/// `tether ARGS` on a new terminal of 100x30.
fn on_terminal(tether: &Tether) -> (Pty, std::process::Child) {
    let pty = Pty::new(100, 30);
    let mut cmd = tether.command();
    cmd.env("TERM", "xterm-256color");
    let child = pty.spawn(cmd);
    (pty, child)
}

/// A lab host with /srv/app/releases/1 and `current` pointing at it.
fn deployed(lab: &Lab, host: &str) {
    let root = &lab.host(host).root_dir;
    fs::create_dir_all(root.join("app/releases/1")).unwrap();
    std::os::unix::fs::symlink("releases/1", root.join("app/current")).unwrap();
}

#[test]
fn an_interactive_shell_starts_in_current_and_its_exit_status_is_tethers() {
    let lab = Lab::builder().names(&["web1", "web2", "db1"]).start();
    deployed(&lab, "web2");
    let recipe = lab_recipe(&lab, "ssh-shell", "set(\"deploy_to\", \"/srv/app\");\n");
    // A role names its first server; web2 is picked by name here to have `current`.
    let (pty, mut child) = on_terminal(&recipe.tether().args(&["ssh", "web2"]));
    pty.type_text("echo \"at:$(pwd -P):$TERM:$(tty)\"; exit 3\n");
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 3, "{out}");
    assert!(
        out.contains("at:/srv/app/releases/1:xterm-256color:/dev/pts/"),
        "{out}"
    );
    assert!(!out.contains("does not exist"), "{out}");
    assert!(pty.is_cooked(), "the terminal was left in raw mode:\n{out}");
}

/// `tether ssh` with a `deploy_to` runs a command in `current`, by bash as `tether run` does,
/// or opens the user's own login shell there, whatever that shell is (stop 59 tester t94: fish
/// and csh read the `cd`'s sh syntax as errors, and a fish user's command never ran, exit 0).
#[test]
fn a_command_and_a_shell_start_in_current_under_every_login_shell() {
    let users = crate::shells::ShellUsers::create();
    let lab = Lab::builder().names(&["host1"]).start();
    deployed(&lab, "host1");
    fs::write(lab.host("host1").root_dir.join("app/releases/1/IN_ONE"), "").unwrap();
    let mut recipe = support::recipe::RecipeDir::new(
        "ssh-shells",
        &format!(
            "{}set(\"deploy_to\", \"/srv/app\");\n",
            users.servers("app")
        ),
    );
    recipe.ssh_config = Some(lab.ssh_config());
    for (shell, user) in &users.users {
        let (pty, mut child) = on_terminal(&recipe.tether().args(&[
            "ssh",
            &format!("{user}@host1"),
            "--",
            "echo \"at:$(pwd -P)\" {1..2}; exit 3",
        ]));
        let status = pty::wait(&mut child, WAIT, &pty);
        let out = pty.output();
        assert_eq!(status, 3, "{shell}: {out}");
        assert!(
            out.contains("at:/srv/app/releases/1 1 2\r\n"),
            "{shell}: {out}"
        );
        // No command: the user's own login shell, in `current`.
        let (pty, mut child) =
            on_terminal(&recipe.tether().args(&["ssh", &format!("{user}@host1")]));
        pty.type_text("ls; exit 4\n");
        let status = pty::wait(&mut child, WAIT, &pty);
        let out = pty.output();
        assert_eq!(status, 4, "{shell}: {out}");
        assert!(out.contains("IN_ONE"), "{shell}: {out}");
        assert!(!out.contains("does not exist"), "{shell}: {out}");
    }
    drop(users);
}

/// What `tether ssh` cannot send is refused before it connects, naming what: a command over
/// one exec request (stop 59 tester t95: "the server refused the session"), a deploy_to with a
/// newline (csh's `Unmatched` quotes). Where it lands is said as it is: a `current` the user
/// cannot enter is not said missing; a host whose login shell's PATH has no bash says its
/// command runs by /bin/sh.
#[test]
fn what_tether_ssh_cannot_send_is_refused_and_where_it_lands_is_said_as_it_is() {
    let lab = Lab::builder().names(&["web1", "web2", "db1"]).start();
    let long = format!("echo {} | wc -c", "y".repeat(40_000));
    let recipe = lab_recipe(&lab, "ssh-limits", "set(\"deploy_to\", \"/srv/app\");\n");
    let (pty, mut child) = on_terminal(&recipe.tether().args(&["ssh", "web1", "--", &long]));
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 2, "{}", pty.output());
    assert!(
        pty.output()
            .contains("the command is too long for `tether ssh`"),
        "{}",
        pty.output()
    );
    let newline = lab_recipe(&lab, "ssh-newline", "set(\"deploy_to\", \"/srv/a\\nb\");\n");
    let (pty, mut child) = on_terminal(&newline.tether().args(&["ssh", "web1", "--", "pwd"]));
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 2, "{}", pty.output());
    assert!(pty.output().contains("holds a newline"), "{}", pty.output());
    assert_eq!(lab.accepted_logins("web1"), 0);

    // A `current` of root's, 0700: a plain user cannot enter it.
    let root = lab.host("web2").root_dir.clone();
    fs::create_dir_all(root.join("app/current")).unwrap();
    fs::set_permissions(
        root.join("app/current"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let user = support::users::PlainUser::create();
    let mut plain = support::recipe::RecipeDir::new(
        "ssh-plain",
        &format!(
            "server(\"{}\", #{{ roles: [\"plain\"] }});\nset(\"deploy_to\", \"/srv/app\");\n",
            user.at("web2")
        ),
    );
    plain.ssh_config = Some(lab.ssh_config());
    let (pty, mut child) =
        on_terminal(&plain.tether().args(&["ssh", &user.at("web2"), "--", "pwd"]));
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    let out = pty.output();
    assert!(
        out.contains("/srv/app/current cannot be entered by this user: in /srv/app"),
        "{out}"
    );
    assert!(!out.contains("does not exist"), "{out}");

    // No bash in the login shell's PATH.
    lab.without_bash("db1");
    let (pty, mut child) =
        on_terminal(
            &recipe
                .tether()
                .args(&["ssh", "db1", "--", "echo {1..2} $0"]),
        );
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    let out = pty.output();
    assert!(
        out.contains("tether: the login shell's PATH finds no bash: the command runs by /bin/sh"),
        "{out}"
    );
    assert!(out.contains("{1..2} sh\r\n"), "{out}");
}

#[test]
fn without_current_the_shell_says_where_it_is_and_a_role_is_its_first_server() {
    let lab = Lab::builder().names(&["web1", "web2", "db1"]).start();
    fs::create_dir_all(lab.host("web1").root_dir.join("app")).unwrap();
    let recipe = lab_recipe(&lab, "ssh-role", "set(\"deploy_to\", \"/srv/app\");\n");
    let (pty, mut child) = on_terminal(&recipe.tether().args(&["ssh", "web"]));
    pty.type_text("echo \"at:$(pwd)\"; exit\n");
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("role web: web1, the first of web1, web2"),
        "{out}"
    );
    assert!(
        out.contains("/srv/app/current does not exist (not deployed yet?): in /srv/app"),
        "{out}"
    );
    assert!(out.contains("at:/srv/app\r\n"), "{out}");

    // No deploy_to directory at all: the home directory, said so.
    let (pty, mut child) = on_terminal(&recipe.tether().args(&["ssh", "db1", "--", "pwd"]));
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 0, "{}", pty.output());
    let out = pty.output();
    assert!(
        out.contains("/srv/app does not exist: in the home directory"),
        "{out}"
    );
    let home = lab.host("db1").home.display().to_string();
    assert!(out.contains(&format!("{home}\r\n")), "{home} in {out}");
}

#[test]
fn a_command_gets_a_terminal_of_the_window_size_and_a_resize_reaches_it() {
    let lab = Lab::start(1);
    let tether = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["ssh", "host1", "--"])
        .arg("test -t 0 && test -t 1 && echo tty-yes; stty size; read _; stty size; exit 7");
    let (pty, mut child) = on_terminal(&tether);
    pty.wait_for("30 100", WAIT);
    pty.resize(132, 43);
    // Give the resize time to travel before the command reads the size again.
    std::thread::sleep(Duration::from_millis(500));
    pty.type_text("\n");
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 7, "{out}");
    assert!(out.contains("tty-yes"), "{out}");
    assert!(out.contains("43 132"), "{out}");
    assert!(pty.is_cooked(), "{out}");
}

#[test]
fn an_unknown_host_or_role_is_named_with_the_usage_exit_code() {
    let lab = Lab::builder().names(&["web1", "web2", "db1"]).start();
    let recipe = lab_recipe(&lab, "ssh-unknown", "");
    recipe
        .tether()
        .args(&["ssh", "wbe", "--", "true"])
        .run()
        .status(2)
        .stderr_contains("`wbe` is neither a server nor a role of deploy.rhai; did you mean");
    // -n connects to nothing and says what would be opened.
    recipe
        .tether()
        .args(&["-n", "ssh", "web", "--", "uptime"])
        .run()
        .status(0)
        .stdout_is("web1: would open `uptime` on a pseudo-terminal\n");
    assert_eq!(lab.accepted_logins("web1"), 0);
    // Without a recipe, a name the ssh config cannot reach is unreachable (exit 3).
    Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["ssh", "nosuch.invalid", "--", "true"])
        .run()
        .status(3)
        .stderr_contains("nosuch.invalid");
}

/// A `deploy_to` that is no path is a recipe error naming where it was set, before any
/// connection: an empty one landed the shell in the home directory saying
/// "/current does not exist (not deployed yet?): in " (nothing).
#[test]
fn a_deploy_to_that_is_no_path_is_named_where_it_was_set() {
    for (value, says) in [
        ("5", "deploy_to (set at deploy.rhai:2:1): a string, not i64"),
        (
            "|| [1]",
            "deploy_to (set at deploy.rhai:2:1): a string, not array",
        ),
        ("\"\"", "deploy_to (set at deploy.rhai:2:1): an empty path"),
    ] {
        let recipe = support::recipe::RecipeDir::new(
            "ssh-deploy-to",
            &format!("server(\"127.0.0.1:1\");\nset(\"deploy_to\", {value});\n"),
        );
        recipe
            .tether()
            .args(&["ssh", "127.0.0.1:1", "--", "true"])
            .run()
            .status(4)
            .stderr_contains(says);
    }
}

#[test]
fn through_a_jump_host_and_a_proxy_command_with_a_pty_and_the_exit_status() {
    let site = Site::start(1, false, &[]);
    let config = site.config_with("jump_config", "Host inner*\n  ProxyJump bastion\n");
    let tether = Tether::new()
        .ssh_config(&config)
        .args(&["ssh", "inner1", "--", "tty && exit 5"]);
    let (pty, mut child) = on_terminal(&tether);
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 5, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(site.accepted_logins("bastion"), 1);
    assert_eq!(site.accepted_logins("inner1"), 1);

    // The same host through a ProxyCommand (OpenSSH's client as the byte stream).
    let proxied = site.config_with(
        "proxy_config",
        &format!(
            "Host inner*\n  ProxyCommand ssh -F {} -o BatchMode=yes -W %h:%p bastion\n",
            site.ssh_config().display()
        ),
    );
    let tether = Tether::new()
        .ssh_config(&proxied)
        .args(&["ssh", "inner1", "--", "tty && exit 6"]);
    let (pty, mut child) = on_terminal(&tether);
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 6, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(site.accepted_logins("bastion"), 2);
    assert_eq!(site.accepted_logins("inner1"), 2);
}

#[test]
fn sigterm_and_a_lost_connection_leave_the_terminal_cooked() {
    let lab = Lab::start(1);
    let session = || {
        Tether::new().ssh_config(&lab.ssh_config()).args(&[
            "ssh",
            "host1",
            "--",
            "echo ready; sleep 30",
        ])
    };
    // SIGTERM: tether ends the session and exits 128+15.
    let (pty, mut child) = on_terminal(&session());
    pty.wait_for("ready", WAIT);
    support::net::signal(child.id(), libc::SIGTERM);
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 143, "{}", pty.output());
    assert!(pty.is_cooked(), "{}", pty.output());

    // The server goes away mid-session: exit 1, the host and the reason said.
    let (pty, mut child) = on_terminal(&session());
    pty.wait_for("ready", WAIT);
    lab.kill_connections("host1");
    let status = pty::wait(&mut child, WAIT, &pty);
    let out = pty.output();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("host1: the session ended: reading output: the server closed the connection"),
        "{out}"
    );
    assert!(pty.is_cooked(), "{out}");
}

#[test]
fn the_agent_is_forwarded_when_the_config_says_so() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("ssh-agent-test");
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("deploy_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "deployer-key", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let agent = support::agent::Agent::start(&dir, &key);
    let forward = dir.join("forward_config");
    fs::write(
        &forward,
        format!(
            "Host host1\n  ForwardAgent yes\n{}",
            fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    let list = |config: &std::path::Path| {
        let tether = Tether::new()
            .ssh_config(config)
            .env("SSH_AUTH_SOCK", agent.sock.to_str().unwrap())
            .args(&["ssh", "host1", "--", "ssh-add -l"]);
        let (pty, mut child) = on_terminal(&tether);
        let status = pty::wait(&mut child, WAIT, &pty);
        (status, pty.output())
    };
    let (status, out) = list(&forward);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("deployer-key"), "{out}");
    // Without ForwardAgent the remote ssh-add finds no agent (its status 2 passes through).
    let (status, out) = list(&lab.ssh_config());
    assert_eq!(status, 2, "{out}");
    assert!(!out.contains("deployer-key"), "{out}");
}

/// A signal while `tether ssh` connects gives connecting up at once, as `ssh` does at Ctrl-C,
/// an interrupt (exit 130, as a run's connecting); one during the session ends it with 128+N,
/// SIGINT as SIGTERM (stop 46
/// tester t59: with a server that never sent its banner, Ctrl-C was waited out for the whole
/// `ConnectTimeout 30`, then exit 3).
#[test]
fn a_signal_while_connecting_or_in_the_session_ends_it_at_once() {
    let lab = Lab::start(1);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = lab.config_with(
        "with_silent",
        &format!(
            "Host silent\n  HostName 127.0.0.1\n  Port {}\n  ConnectTimeout 30\n",
            silent.local_addr().unwrap().port()
        ),
    );
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let (pty, mut child) =
            on_terminal(&Tether::new().ssh_config(&config).args(&["ssh", "silent"]));
        std::thread::sleep(Duration::from_millis(1500));
        let at = std::time::Instant::now();
        support::net::signal(child.id(), signal);
        assert_eq!(pty::wait(&mut child, WAIT, &pty), 130, "{}", pty.output());
        assert!(at.elapsed() < Duration::from_secs(5), "{}", pty.output());
        assert!(
            pty.output().contains("connecting was stopped by tether"),
            "{}",
            pty.output()
        );
        assert!(pty.is_cooked(), "{}", pty.output());
    }
    let (pty, mut child) = on_terminal(&Tether::new().ssh_config(&config).args(&[
        "ssh",
        "host1",
        "--",
        "echo ready; sleep 30",
    ]));
    pty.wait_for("ready", WAIT);
    support::net::signal(child.id(), libc::SIGINT);
    assert_eq!(pty::wait(&mut child, WAIT, &pty), 130, "{}", pty.output());
    assert!(pty.is_cooked(), "{}", pty.output());
    drop(silent);
}

/// `tether ssh` refuses `--format json`: its terminal's bytes are no JSON objects (stop 46
/// tester t59: a `connected` object, then the command's raw output).
#[test]
fn json_is_refused_before_anything_connects() {
    let lab = Lab::start(1);
    for args in [&["ssh", "host1", "--", "echo hi"][..], &["ssh", "host1"]] {
        let out = Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["--format", "json"])
            .args(args)
            .run();
        out.status(2);
        let lines = out.objects();
        assert_eq!(lines.len(), 1, "{}", out.stdout);
        assert_eq!(lines[0]["type"], "error", "{}", out.stdout);
        // Its words as written (stop 46 tester t61: two runs of 14 spaces).
        let said = lines[0]["error"].as_str().unwrap_or_default();
        assert!(!said.contains("  "), "{said:?}");
        assert_eq!(lab.accepted_logins("host1"), 0);
    }
}
