//! The supervisor: a few lines of POSIX sh, sent with every command that runs without a
//! pseudo-terminal (no agent to install), that let the command outlive its SSH connection.
//!
//! The exec's sh (see `exec/wrap.rs`, which sends it the same way under every login shell) keeps
//! the command's files in the user's private directory `${TMPDIR:-/tmp}/tether-$LOGNAME`
//! (made with mode 0700 and set back to 0700 before each command, so no other user can write a status; it must be a real directory owned by the user), named by the
//! command's id: `ID.o` and `ID.e` (stdout and stderr, created with mode 0600), `ID.s` (the
//! exit status), `ID.p` (the process group), `ID.w` (the pid to wake). It starts the
//! supervisor, a subshell (a fork: no program started, so a quick command costs little more
//! than before), with the channel's stdin and its output going to those files. The process
//! group is the exec's sh's own, which sshd made for the session: the connection's death does
//! not signal it (sshd sends no signal to a session without a terminal, and nothing writes to
//! the dead channel but the exec's sh, which ignores SIGPIPE), and stopping it reaches every
//! process of the command. When the command ends its exit status is written in one
//! `write(2)` (a reader sees the whole line or nothing), and the exec's sh is woken (SIGUSR1).
//! Meanwhile the exec's sh streams both files to the channel as they grow (every 0.2 s; at
//! once when the command ends), and on a silent stretch of about a second writes a tick frame
//! on stderr, which keeps sshd's `ChannelTimeout` from closing the channel and which tether
//! strips. The files stay until tether has read the command's result (the connection may die
//! after the status was written and before it arrived): the next command on that host removes
//! them, and at the end of a run one last exec removes what is left ([`clean`]).
//!
//! When the connection dies, tether connects again and sends [`resume`]: the same streaming
//! from the byte counts it received per stream, then the real exit status. [`stop`] sends the
//! command's process group SIGTERM, then SIGKILL after a grace period, and removes the
//! files. Where the supervisor cannot run (no usable private directory, `LOGNAME` and `USER`
//! unset, an exec's sh that leads no process group of its own) the exec's sh says why in a
//! frame before its start marker and runs the command directly; where it runs, a frame there
//! says the process group and the files' prefix ([`PLACED`]), which tether names when it
//! cannot stop a command left running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The frame the supervisor writes on stderr during a silent stretch (stripped by tether).
pub const TICK: &[u8] = b"\x1etether-tick\x1e";
/// The frame a resume writes on stderr when the command's directory is gone.
pub const GONE: &[u8] = b"\x1etether-gone\x1e";
/// The start of the frame the exec's sh writes on stderr, before its start marker, when it
/// runs the command directly; the reason follows, then `\x1e`.
pub const DIRECT: &[u8] = b"\x1etether-direct:";

/// The start of the frame the exec's sh writes on stderr, before its start marker, when it
/// runs the command under the supervisor: `PGID:SPOOL` follows (the process group, and the
/// common prefix of the command's files on the host), then `\x1e`. tether keeps it to say
/// what was left running where when it cannot stop a command (see [`Placement`]).
pub const PLACED: &[u8] = b"\x1etether-sup:";

/// Where a supervised command runs on its host, as its exec's sh said ([`PLACED`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its process group (a number, as the host's `kill -- -PGID` takes it).
    pub pgid: String,
    /// The common prefix of its files: `SPOOL.o` stdout, `SPOOL.e` stderr, `SPOOL.s` status.
    pub spool: String,
}

/// The [`PLACED`] frame in `preamble` (what came before the start marker on stderr): its byte
/// range, to cut it out, and what it says.
pub fn placement(preamble: &[u8]) -> Option<(std::ops::Range<usize>, Placement)> {
    let from = preamble.windows(PLACED.len()).position(|w| w == PLACED)?;
    let text = from + PLACED.len();
    let end = text + preamble[text..].iter().position(|&b| b == 0x1e)?;
    let said = String::from_utf8_lossy(&preamble[text..end]);
    let (pgid, spool) = said.split_once(':')?;
    Some((
        from..end + 1,
        Placement {
            pgid: pgid.to_string(),
            spool: spool.to_string(),
        },
    ))
}

/// How long a stopped command's process group has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The default bound on re-attaching after a lost connection (`--reattach`).
pub const DEFAULT_REATTACH: Duration = Duration::from_secs(60);

/// Where the files of the command `$1` are: `_tether_d` is their common prefix (`.o` stdout,
/// `.e` stderr, `.s` status, `.p` process group, `.w` the exec's sh to wake) in the user's
/// private directory `_tether_b`.
const DIR: &str = r#"_tether_b=${TMPDIR:-/tmp}/tether-${LOGNAME:-$USER}; _tether_d=$_tether_b/$1"#;

/// The supervisor: a subshell of the exec's sh (a fork, no program started) that runs the
/// command in a subshell of its own, writes its status, wakes the exec's sh that streams it
/// (SIGUSR1 to the pid in `w`) and removes the directories of `$_tether_done`. A SIGTERM
/// (HUP, INT) that reaches it while the command runs (its process group being stopped) is
/// written as the status instead.
const SUPERVISE: &str = r#"_tether_sig=; trap "_tether_sig=TERM" TERM; trap "_tether_sig=HUP" HUP; trap "_tether_sig=INT" INT; (eval "unset _tether_b _tether_d _tether_id _tether_done _tether_why _tether_sig _tether_g _tether_v; $_tether_cmd"); _tether_s=$?; echo "${_tether_sig:-$_tether_s}" >"$_tether_d.s"; read -r _tether_w <"$_tether_d.w" && kill -USR1 "$_tether_w" 2>/dev/null; for _tether_x in $_tether_done; do rm -f "$_tether_b/$_tether_x".*; done"#;

/// The streaming loop, from `_tether_o` and `_tether_e` bytes on; ends with the status marker
/// and the command's status (see the module documentation). A ticker subshell wakes it every
/// 0.2 s (1 s where `sleep` takes whole seconds only) with SIGUSR1; it waits for the
/// supervisor (`_tether_wp`, when it is its child) or the ticker, so a command that ends
/// is seen at once, and no program is started on the way of a quick command.
fn follow() -> String {
    let pass = |file: &str, at: &str, to: &str| {
        format!(
            r#"if [ -s "$_tether_d.{file}" ]; then _tether_z=$(wc -c <"$_tether_d.{file}"); if [ $_tether_z -gt ${at} ]; then tail -c +$(({at}+1)) "$_tether_d.{file}" | head -c $((_tether_z-{at})){to}; {at}=$_tether_z; _tether_n=1; fi; fi; "#
        )
    };
    format!(
        r#"(while kill -USR1 $$ 2>/dev/null; do sleep 0.2 2>/dev/null || sleep 1; done) </dev/null >/dev/null 2>&1 & _tether_k=$!; trap "" PIPE; _tether_q=0; _tether_x=; while :; do [ -s "$_tether_d.s" ] && _tether_x=1; _tether_n=; {out}{err}[ -n "$_tether_x" ] && break; [ -f "$_tether_d.o" ] || {{ kill $_tether_k; exit 125; }}; if [ -n "$_tether_n" ]; then _tether_q=0; else _tether_q=$((_tether_q+1)); if [ $_tether_q -ge 5 ]; then printf "\036tether-tick\036" >&2; _tether_q=0; fi; fi; if [ -n "$_tether_wp" ]; then wait $_tether_wp; [ $? -lt 128 ] && _tether_wp=; else wait $_tether_k; fi; done; kill $_tether_k 2>/dev/null; read -r _tether_s <"$_tether_d.s"; case $_tether_s in *[!0-9]*) trap - "$_tether_s"; kill -"$_tether_s" $$; exit 1;; esac; printf "\036tether-exit:%d\036" "$_tether_s" >&2; exit "$_tether_s""#,
        out = pass("o", "_tether_o", ""),
        err = pass("e", "_tether_e", " >&2"),
    )
}

/// The part of the exec's sh that runs `$_tether_cmd` (id in `$_tether_id`) under the
/// supervisor, or directly (saying why) where it cannot; `start` prints the start markers.
/// The directories named in `$_tether_done` (commands whose result tether has read) are
/// removed by the supervisor once the command has ended. The process group to stop is the
/// exec's sh's own (sshd starts every session in a new one, whose leader the login shell
/// `exec`s into): where `/proc` says it leads none, the command runs directly.
pub fn boot(start: &str) -> String {
    format!(
        r#"set -- "$_tether_id"; {DIR}; set --; _tether_why=; if [ -z "${{LOGNAME:-$USER}}" ]; then _tether_why="neither LOGNAME nor USER is set"; else [ -d "$_tether_b" ] || mkdir -m 700 "$_tether_b" 2>/dev/null; if [ -d "$_tether_b" ] && [ ! -h "$_tether_b" ] && [ -O "$_tether_b" ] && chmod 700 "$_tether_b" && (umask 077 && : >"$_tether_d.o" && : >"$_tether_d.e") 2>/dev/null; then :; else _tether_why="$_tether_b is not a writable directory of the user's own"; fi; fi; if [ -n "$_tether_why" ]; then printf "\036tether-direct:%s\036" "$_tether_why" >&2; {start} (eval "unset _tether_cmd _tether_id _tether_b _tether_d _tether_why _tether_done; $_tether_cmd"); _tether_s=$?; printf "\036tether-exit:%d\036" "$_tether_s" >&2; exit "$_tether_s"; fi; _tether_g=$$; [ -r /proc/$$/stat ] && read -r _tether_v _tether_v _tether_v _tether_v _tether_g _tether_v </proc/$$/stat; if [ "$_tether_g" != $$ ]; then rm -f "$_tether_d.o" "$_tether_d.e"; printf "\036tether-direct:%s\036" "the exec's sh does not lead its own process group" >&2; {start} (eval "unset _tether_cmd _tether_id _tether_b _tether_d _tether_why _tether_done _tether_g _tether_v; $_tether_cmd"); _tether_s=$?; printf "\036tether-exit:%d\036" "$_tether_s" >&2; exit "$_tether_s"; fi; echo $$ >"$_tether_d.p"; printf "\036tether-sup:%s:%s\036" $$ "$_tether_d" >&2; trap : USR1; echo $$ >"$_tether_d.w"; exec 3<&0; ({SUPERVISE}) <&3 >>"$_tether_d.o" 2>>"$_tether_d.e" 3<&- & _tether_wp=$!; exec 3<&-; {start} _tether_o=0; _tether_e=0; {follow}"#,
        follow = follow()
    )
}

/// The exec's sh of a resume: `$1` the command's id, `$2` and `$3` the bytes of stdout and
/// stderr tether has; `start` prints the start markers. A missing directory is the
/// [`GONE`] frame and status 125.
pub fn resume(start: &str) -> String {
    format!(
        r#"{DIR}; _tether_o=$2; _tether_e=$3; set --; {start} if [ ! -f "$_tether_d.o" ] || [ -h "$_tether_b" ] || [ ! -O "$_tether_d.o" ]; then printf "\036tether-gone\036" >&2; exit 125; fi; trap : USR1; echo $$ >"$_tether_d.w"; _tether_wp=; {follow}"#,
        follow = follow()
    )
}

/// The exec's sh that stops the command `$1`: SIGTERM to its process group, SIGKILL after
/// `$2` seconds if the command has not ended by then (its status written), and SIGKILL to
/// whatever of its group is left when it has (a group of zombies only counts as alive, and
/// an init that is slow to reap them must not cost the grace period), then its directory
/// removed. Prints `TERM` or `KILL`
/// (the signal that ended it), or `gone` (nothing of it was left); `start` prints the start
/// markers.
pub fn stop(start: &str) -> String {
    format!(
        r#"{DIR}; _tether_g=$2; set --; {start} _tether_p=; _tether_r=TERM; [ -f "$_tether_d.o" ] && [ ! -h "$_tether_b" ] && read -r _tether_p <"$_tether_d.p"; if [ -z "$_tether_p" ] || ! kill -TERM -"$_tether_p" 2>/dev/null; then _tether_r=gone; else _tether_i=0; while [ ! -s "$_tether_d.s" ] && kill -0 -"$_tether_p" 2>/dev/null; do if [ $_tether_i -ge $((_tether_g*20)) ]; then kill -KILL -"$_tether_p" 2>/dev/null; _tether_r=KILL; break; fi; sleep 0.05 2>/dev/null || sleep 1; _tether_i=$((_tether_i+1)); done; kill -KILL -"$_tether_p" 2>/dev/null; fi; rm -f "$_tether_d".*; echo "$_tether_r"; printf "\036tether-exit:0\036" >&2"#
    )
}

/// The exec's sh that removes the directories of the commands named in its arguments.
pub fn clean() -> String {
    r#"_tether_b=${TMPDIR:-/tmp}/tether-${LOGNAME:-$USER}; for _tether_x; do rm -f "$_tether_b/$_tether_x".*; done"#.to_string()
}

/// A new command id: unique on the host for this user (time, pid, and a counter).
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What [`stop`] printed, as a sentence for the user.
pub fn stop_report(stdout: &[u8], grace: Duration) -> String {
    match String::from_utf8_lossy(stdout).trim() {
        "TERM" => "its process group was sent SIGTERM and ended".into(),
        "KILL" => format!(
            "its process group was sent SIGTERM, and SIGKILL after {} s",
            grace.as_secs()
        ),
        "gone" => "nothing of it was left running".into(),
        other => format!("stopping it failed ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placement_frame_is_read_and_its_range_cut() {
        let preamble = b"Welcome\n\x1etether-sup:4242:/tmp/tether-deploy/1a-2b-0\x1e";
        let (range, place) = placement(preamble).expect("a frame");
        assert_eq!(&preamble[..range.start], b"Welcome\n");
        assert_eq!(range.end, preamble.len());
        assert_eq!(
            place,
            Placement {
                pgid: "4242".into(),
                spool: "/tmp/tether-deploy/1a-2b-0".into(),
            }
        );
        // Unfinished or absent: nothing.
        assert_eq!(placement(b"\x1etether-sup:4242:/tmp/x"), None);
        assert_eq!(placement(b"Welcome\n"), None);
    }
}
