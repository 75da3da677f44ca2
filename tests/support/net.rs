//! What the network-namespace test hosts (`netns.rs`, `site.rs`) share: running `ip` and
//! friends, claiming a free /30 for a veth pair, signalling processes by pid.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;

pub const SIGKILL: i32 = 9;

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Sends `sig` to `pid` (never to pid 0 or 1).
pub fn signal(pid: u32, sig: i32) {
    if pid > 1 && pid <= i32::MAX as u32 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            kill(pid as i32, sig);
        }
    }
}

/// A loopback port nothing listens on (bound, then let go at once): a connection to it is
/// refused.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` and returns its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Loads nftables `rules` (`nft -f` syntax) in network namespace `netns`; panics with nft's
/// words when it refuses them.
pub fn nft_load(netns: &str, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(rules.as_bytes())
        .expect("write nft rules");
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SUBNET: Mutex<()> = Mutex::new(());

/// A /30 in `10.<octet>.0.0/16` none of whose addresses is on an interface here; the host side
/// (`.1`) is added to `veth` while the lock is held, so parallel tests never pick the same one.
/// Returns (host side, namespace side).
pub fn claim_subnet(octet: u8, veth: &str, seed: usize) -> (String, String) {
    let _guard = SUBNET.lock().unwrap_or_else(|p| p.into_inner());
    let used = ip(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    for i in 0..16384 {
        let base = ((seed + i) % 16384) * 4;
        let prefix = format!("10.{octet}.{}.", base >> 8);
        let low = base & 0xff;
        let taken = used.lines().any(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.strip_prefix(&prefix))
                .and_then(|last| last.parse::<usize>().ok())
                .is_some_and(|last| last / 4 == low / 4)
        });
        if taken {
            continue;
        }
        let host = format!("{prefix}{}", low + 1);
        let peer = format!("{prefix}{}", low + 2);
        ip(&["addr", "add", &format!("{host}/30"), "dev", veth]).unwrap_or_else(|e| panic!("{e}"));
        return (host, peer);
    }
    panic!("no free /30 in 10.{octet}.0.0/16");
}
