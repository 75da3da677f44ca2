//! A private view of this machine for comparing tether with OpenSSH's own `ssh`: commands run
//! in a mount namespace of their own (`unshare --mount`) where a temp dir is bind-mounted
//! over `/root` (ssh takes `~` from the password database, so HOME alone would not move it),
//! and, when a test asks, temp files over `/etc/hosts` and a temp dir over `/etc/ssh`. The
//! real files are never touched; dropping the sandbox removes its dir.
//!
//! ```ignore
//! let sb = Sandbox::new("x");
//! sb.write(".ssh/config", "Host a\n  Port 2\n");   // seen as /root/.ssh/config
//! let ssh = sb.run("ssh", &["-G", "a"]);
//! let ours = sb.tether(&["hosts", "-G", "a"]);
//! ```
//!
//! Needs root and `unshare`, `mount`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a sandboxed command did.
#[derive(Debug)]
pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// See the module docs.
pub struct Sandbox {
    dir: PathBuf,
    etc_hosts: Option<PathBuf>,
    etc_ssh: Option<PathBuf>,
}

/// The home of root inside the sandbox.
pub const HOME: &str = "/root";

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tether-sandbox-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home/.ssh")).unwrap();
        Sandbox {
            dir,
            etc_hosts: None,
            etc_ssh: None,
        }
    }

    /// The directory seen as `/root` inside.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// Writes `rel` under the sandbox home (`.ssh/config` is `/root/.ssh/config` inside);
    /// returns the path as seen inside.
    pub fn write(&self, rel: &str, text: &str) -> String {
        let path = self.home().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        format!("{HOME}/{rel}")
    }

    /// Replaces `/etc/hosts` inside with the real one plus `lines`.
    pub fn hosts(&mut self, lines: &str) {
        let mut text = fs::read_to_string("/etc/hosts").unwrap_or_default();
        text.push_str(lines);
        let path = self.dir.join("etc_hosts");
        fs::write(&path, text).unwrap();
        self.etc_hosts = Some(path);
    }

    /// Replaces `/etc/ssh` inside with a dir holding `ssh_config` and the given files
    /// (relative names); returns its path outside.
    pub fn etc_ssh(&mut self, ssh_config: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.dir.join("etc_ssh");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ssh_config"), ssh_config).unwrap();
        for (rel, text) in files {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        self.etc_ssh = Some(dir.clone());
        dir
    }

    /// Runs `program args` inside, with HOME=/root, SHELL=/bin/sh and no agent.
    pub fn run(&self, program: &str, args: &[&str]) -> Ran {
        let mut script = String::from("set -e; mount --bind \"$HOMEDIR\" /root; ");
        if self.etc_hosts.is_some() {
            script.push_str("mount --bind \"$ETCHOSTS\" /etc/hosts; ");
        }
        if self.etc_ssh.is_some() {
            script.push_str("mount --bind \"$ETCSSH\" /etc/ssh; ");
        }
        script.push_str("cd /; exec \"$@\"");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sandbox",
        ])
        .arg(program)
        .args(args)
        .env("HOMEDIR", self.home())
        .env("HOME", HOME)
        .env("SHELL", "/bin/sh")
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("TETHER_SSH_CONFIG")
        .stdin(Stdio::null());
        if let Some(h) = &self.etc_hosts {
            cmd.env("ETCHOSTS", h);
        }
        if let Some(s) = &self.etc_ssh {
            cmd.env("ETCSSH", s);
        }
        let out = cmd.output().expect("run unshare");
        Ran {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the tether binary inside, with `--no-fold` (the tests read each host's own lines,
    /// as the `Tether` harness does).
    pub fn tether(&self, args: &[&str]) -> Ran {
        let mut all = vec!["--no-fold"];
        all.extend_from_slice(args);
        self.run(env!("CARGO_BIN_EXE_tether"), &all)
    }

    /// The sandbox dir (outside view).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("TETHER_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
