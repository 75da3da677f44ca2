//! A local ssh-agent for a test: started in the foreground on its own socket, killed (by the
//! child handle) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running ssh-agent.
pub struct Agent {
    child: Child,
    /// Its socket (`SSH_AUTH_SOCK`).
    pub sock: PathBuf,
}

impl Agent {
    /// An agent on `dir/agent.sock` holding `key`.
    pub fn start(dir: &Path, key: &Path) -> Agent {
        let agent = Agent::empty(dir, "agent.sock");
        agent.add(key);
        agent
    }

    /// An agent without keys on `dir/NAME`.
    pub fn empty(dir: &Path, name: &str) -> Agent {
        let sock = dir.join(name);
        // No askpass: a key added with `ssh-add -c` is refused at every use.
        let child = Command::new("ssh-agent")
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let agent = Agent { child, sock };
        // The socket exists from its bind(2), before ssh-agent listens on it: until then a
        // connection is refused (seen at six tests at a time: `ssh-add: Error connecting to
        // agent: Connection refused`). Ready is when one is accepted.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::os::unix::net::UnixStream::connect(&agent.sock).is_err() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// Adds `key` (an unencrypted private key file) to the agent.
    pub fn add(&self, key: &Path) {
        self.add_with(key, &[]);
    }

    /// Adds `key` as [`add`](Self::add) does, with `ssh-add` options `options` (`-c`: to be
    /// confirmed at each use, which this agent, without askpass, refuses).
    pub fn add_with(&self, key: &Path, options: &[&str]) {
        let out = Command::new("ssh-add")
            .args(options)
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The agent's keys, as `ssh-add -l` lists them (in the order they are offered).
    pub fn list(&self) -> Vec<String> {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.sock)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
