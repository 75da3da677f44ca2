//! A throwaway local account without root's rights, for tests that need a login that cannot
//! read what root can (an sshd config of mode 0600, as `/etc/ssh/sshd_config.d/*.conf` often
//! is). The lab's hosts accept it with the lab's client key (their `authorized_keys` is shared
//! and `StrictModes` is off). Created with `useradd`, removed with `userdel` on drop: drop the
//! [`Lab`](super::lab::Lab) first (declare the user before it), so that none of its
//! processes remain.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One local account; see the module docs.
pub struct PlainUser {
    /// Its name (`tplainPID_N`).
    pub name: String,
}

fn sh(script: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PlainUser {
    /// A new account with `/bin/sh` as login shell, no home and no password (`*`: not locked,
    /// which sshd would refuse).
    pub fn create() -> PlainUser {
        let name = format!(
            "tplain{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        sh(&format!(
            "useradd -M -d /nonexistent -s /bin/sh {name} && usermod -p '*' {name}"
        ))
        .unwrap();
        PlainUser { name }
    }

    /// `NAME@host`: the host reached as this user.
    pub fn at(&self, host: &str) -> String {
        format!("{}@{host}", self.name)
    }
}

impl Drop for PlainUser {
    fn drop(&mut self) {
        let _ = sh(&format!("userdel {}", self.name));
    }
}
