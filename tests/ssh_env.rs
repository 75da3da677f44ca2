//! `SetEnv` and `SendEnv` as ssh sends them (fresh-eyes finding: tether dropped both, so a
//! command saw none of the variables `ssh` gives it). Each case is run with `ssh` and with
//! tether against the same lab hosts, one whose sshd has `AcceptEnv` for the names, one
//! without (sshd's default: nothing is applied, and the command still runs). The server
//! decides; both clients must print the same.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::lab::Lab;
use support::pty::{self, Pty};
use support::recipe::RecipeDir;
use support::tether::Tether;

/// Prints the variables of the cases, each in brackets (an unset one as `<>`).
const PRINT: &str = "printf '<%s>' \"$FOO\" \"$SP\" \"$BOTH\" \"$LC_T7\" \"$XT_A\" \"$Z\"; echo";

/// The client's environment: what `SendEnv` may send.
const LOCAL: &[(&str, &str)] = &[
    ("LC_T7", "hello"),
    ("BOTH", "local"),
    ("XT_A", "removed"),
    // Not matched by any SendEnv pattern: never sent.
    ("FOO", "local-foo"),
];

/// The first SetEnv line wins as a whole (its first `FOO` too); SendEnv patterns add up and
/// `-XT_*` removes the earlier `XT_*`; a name in both is sent from the environment first,
/// then from SetEnv, which the server applies last.
const CLIENT: &str = "Host *\n  SetEnv FOO=bar \"SP=a b  c\" BOTH=set FOO=second\n  \
                      SetEnv Z=ignored\n  SendEnv LC_* XT_*\n  SendEnv BOTH\n  SendEnv -XT_*\n";

/// What a host with `AcceptEnv` for every name prints; one without prints nothing between
/// the brackets.
const ACCEPTED: &str = "<bar><a b  c><set><hello><><>";
const REFUSED: &str = "<><><><><><>";

fn lab() -> Lab {
    let lab = Lab::builder().names(&["acc", "plain"]).start();
    lab.reconfigure("acc", "AcceptEnv FOO SP BOTH Z LC_* XT_*");
    lab
}

/// `lines` before the lab's own ssh config, written beside it.
fn config(lab: &Lab, name: &str, lines: &str) -> PathBuf {
    let path = lab.dir().join(name);
    let lab_config = fs::read_to_string(lab.ssh_config()).unwrap();
    fs::write(&path, format!("{lines}{lab_config}")).unwrap();
    path
}

/// `ssh -F config [-tt] host command` with the client environment of the cases: its stdout.
fn ssh(config: &Path, host: &str, pty: bool, command: &str) -> String {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F").arg(config).args(["-o", "BatchMode=yes"]);
    if pty {
        cmd.arg("-tt");
    }
    cmd.args([host, command]).envs(LOCAL.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ssh {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

fn tether(config: &Path) -> Tether {
    LOCAL
        .iter()
        .fold(Tether::new().ssh_config(config), |t, (k, v)| t.env(k, v))
}

#[test]
fn set_env_and_send_env_reach_commands_as_ssh_sends_them() {
    let lab = lab();
    let cfg = config(&lab, "env_config", CLIENT);
    for (host, want) in [("acc", ACCEPTED), ("plain", REFUSED)] {
        for pty in [false, true] {
            let by_ssh = ssh(&cfg, host, pty, PRINT);
            assert_eq!(by_ssh.trim_end(), want, "ssh {host} (pty {pty})");
            let mut args = vec!["run", "--hosts", host];
            if pty {
                args.push("--pty");
            }
            args.extend(["--", PRINT]);
            let out = tether(&cfg).args(&args).run();
            out.status(0).stderr_lacks("refused").stderr_lacks("env");
            assert_eq!(
                out.host_lines(host, '|'),
                vec![want.to_string()],
                "tether {host} (pty {pty})\n{:?}",
                out
            );
        }
    }
}

/// A refusal is remembered for the session: later commands on it still get what the server
/// accepts, and nothing of what it refused.
#[test]
fn later_commands_of_a_session_get_what_the_server_accepts() {
    let lab = Lab::builder().names(&["acc"]).start();
    lab.reconfigure("acc", "AcceptEnv FOO");
    let cfg = config(&lab, "env_config", CLIENT);
    let mut r = RecipeDir::new(
        "env-session",
        &format!(
            "server(\"acc\", #{{ roles: [\"web\"] }});\ntask(\"t\", || {{\n  \
             for i in 0..3 {{ on(\"acc\", {PRINT:?}); }}\n}});\n"
        ),
    );
    r.ssh_config = Some(cfg.clone());
    let by_ssh = ssh(&cfg, "acc", false, PRINT);
    assert_eq!(by_ssh.trim_end(), "<bar><><><><><>");
    let out = LOCAL
        .iter()
        .fold(r.tether(), |t, (k, v)| t.env(k, v))
        .args(&["t"])
        .run();
    out.status(0);
    assert_eq!(
        out.host_lines("acc", '|')
            .iter()
            .filter(|l| !l.starts_with('$'))
            .collect::<Vec<_>>(),
        vec!["<bar><><><><><>"; 3],
        "{:?}",
        out
    );
}

/// `tether ssh` sends them too, and a SetEnv `TERM` is the terminal type ssh asks for (the
/// host has no AcceptEnv: the terminal's type is not an environment request).
#[test]
fn the_shell_gets_them_and_set_env_term_names_the_terminal() {
    let lab = lab();
    // TERM in the first SetEnv line: a later one would be ignored as a whole.
    let client = CLIENT.replacen("SetEnv ", "SetEnv TERM=vt100 ", 1);
    let cfg = config(&lab, "env_config", &client);
    for (host, want) in [("acc", "<bar><a b  c><set><hello><><>"), ("plain", REFUSED)] {
        let command = format!("echo \"$TERM\"; {PRINT}");
        let by_ssh = ssh(&cfg, host, true, &command);
        assert_eq!(by_ssh, format!("vt100\n{want}\n"), "ssh {host}");
        let pty = Pty::new(100, 30);
        let mut cmd = tether(&cfg).args(&["ssh", host, "--", &command]).command();
        cmd.env("TERM", "xterm-256color");
        let mut child = pty.spawn(cmd);
        let status = pty::wait(&mut child, std::time::Duration::from_secs(60), &pty);
        let out = pty.output();
        assert_eq!(status, 0, "{out}");
        assert!(
            out.contains(&format!("vt100\r\n{want}\r\n")),
            "{host}: {out}"
        );
    }
}
