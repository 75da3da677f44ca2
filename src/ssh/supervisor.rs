//! The supervisor: a few lines of POSIX sh, sent with every command that runs without a
//! pseudo-terminal (no agent to install), that let the command outlive its SSH connection.
//!
//! The exec's sh (see `exec/wrap.rs`, which sends it the same way under every login shell)
//! keeps the command's files in the user's private directory `${TMPDIR:-/tmp}/tether-$LOGNAME`
//! (made with mode 0700 and set back to 0700 before each command, so no other user can write
//! a status; it must be a real directory owned by the user), named by the command's id:
//! `ID.o.N` and `ID.e.N` (stdout and stderr from byte N on, in files of at most
//! [`SPOOL_CHUNK`] bytes, at most [`SPOOL_CHUNKS`] kept: see `spool`), `ID.o` (there while the
//! command's files are), `ID.c` (the command's own exit status), `ID.s` (the status to report),
//! `ID.p` (the process group), `ID.q` (how far the streaming got), `ID.x` (the pid of the
//! command's own shell, where `/proc` says it: see [`stop`]), `ID.f` (the spool writer's `dd`
//! or `wc` failed: see `follow`), every one created with mode
//! 0600, the claim `ID.claim` (0600, empty where the command's exec made it, a word where tether did:
//! see [`claim`]), and `ID.k`, the text of a command
//! too long for one exec request, staged there by a first exec (see [`stage`]). It runs
//! one pipeline: the supervisor ([`supervise`]), which runs the command in a shell of
//! its own (bash, else `/bin/sh`: see `command_shell.rs`) with the channel's stdin and its stdout and stderr going through pipes into those
//! files, then writes the status; and the streaming loop (`follow`), which passes both files
//! to the channel as they grow (every 0.2 s; at once when the supervisor ends), and on a silent
//! stretch of about 0.4 s (2 s where `sleep` takes whole seconds only) writes a tick frame on
//! stderr (31 bytes), which keeps sshd's `ChannelTimeout` from closing the channel, with a
//! margin under load against one of a few seconds, and which tether strips. Both are in the exec's
//! sh's process group, which sshd made for the session: the connection's death does not
//! signal it (sshd sends no signal to a session without a terminal, and nothing writes to the
//! dead channel but the streaming loop, which ignores SIGPIPE), and stopping it reaches every
//! process of the command. When both ended, the exec's sh reports the status (`FINISH`).
//! Every frame carries the exec's frame key (see `exec/frames.rs`), so no output of the
//! command can pass for one. The files stay until tether has read the command's result (the
//! connection may die after the status was written and before it arrived): a later command
//! on that host removes them, with others ([`REMOVE_BATCH`]), and at the end of a run one last exec removes what is left
//! ([`clean`]).
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

/// The frame the supervisor writes on stderr during a silent stretch (stripped by tether),
/// for the command run with frame key `key` (see `exec/frames.rs`: a command cannot print a
/// frame by chance).
pub fn tick(key: &str) -> Vec<u8> {
    format!("\x1etether-tick:{key}\x1e").into_bytes()
}

/// The frame a resume with frame key `key` writes on stderr when the command's directory is
/// gone.
pub fn gone(key: &str) -> Vec<u8> {
    format!("\x1etether-gone:{key}\x1e").into_bytes()
}

/// The frame the streaming loop with frame key `key` writes on stderr when a program of the
/// host's that passes the output on (`head`, `dd`, `wc`) fails: the bytes were not passed on, and
/// the exec ends with status 124 and no status marker (see `follow`).
pub fn broken(key: &str) -> Vec<u8> {
    format!("\x1etether-broken:{key}\x1e").into_bytes()
}

/// The start of the frame the exec's sh with frame key `key` writes on stderr, before its
/// start marker, when it runs the command directly; the reason follows, then `\x1e`.
pub fn direct(key: &str) -> Vec<u8> {
    format!("\x1etether-direct:{key}:").into_bytes()
}

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

/// How many commands' files a command removes at most, and at least: tether passes the ids
/// of commands whose results it read once it holds this many (a command with ids to remove
/// starts one `rm`, a fork and an exec, at a warm command's cost of a few milliseconds: a
/// batch shares it). What is left goes at the end of the run ([`clean`]).
pub const REMOVE_BATCH: usize = 8;

/// How long a stopped command's process group has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The default bound on re-attaching after a lost connection (`--reattach`).
pub const DEFAULT_REATTACH: Duration = Duration::from_secs(60);

/// Where the files of the command `$1` are: `_tether_d` is their common prefix (`.o` stdout,
/// `.e` stderr, `.c` the command's own status, `.s` the status to report, `.p` the process
/// group) in the user's private directory `_tether_b`.
const DIR: &str = r#"_tether_b=${TMPDIR:-/tmp}/tether-${LOGNAME:-$USER}; _tether_d=$_tether_b/$1"#;

/// Makes the user's private directory `_tether_b` if need be (mode 0700) and sets it back to
/// 0700 (another may have opened it since); its status says whether it is usable: a real
/// directory, not a symlink, owned by the user.
const PRIVATE: &str = r#"{ [ -d "$_tether_b" ] || mkdir -m 700 "$_tether_b" 2>/dev/null; [ -d "$_tether_b" ] && [ ! -h "$_tether_b" ] && [ -O "$_tether_b" ] && chmod 700 "$_tether_b" 2>/dev/null; }"#;

/// The supervisor: the first element of the exec's sh's pipeline (a subshell, not an
/// asynchronous list, so the command gets SIGINT and SIGQUIT as sshd gave them, not ignored).
/// It runs the command in a shell of its own (`bash -c`, else `/bin/sh -c`: see
/// `command_shell.rs`; so the command's `$$` is its own shell, as under sshd, and `kill $$`
/// ends the command, not tether's streaming; after a space, so that a command beginning with
/// `-` or `+` is its own words, never that shell's options), with its
/// stdout and stderr going through pipes to the spool writers (see [`spool`]): the streams end
/// when every writer has closed them (a background child that keeps them open is waited for,
/// as sshd waits for the channel's EOF; one that let go of them is not). Then it writes the
/// status to report (a status above 128 that names a signal which ends a process and which
/// sshd names, OpenSSH's `sig2name`: HUP INT QUIT ILL ABRT FPE KILL USR1 SEGV USR2 PIPE ALRM
/// TERM, as sh reports a command killed by it, is that signal's name; any other is the number,
/// never a signal [`FINISH`] would stop or ignore its own shell with; a command that handled a
/// signal to its group reports its own status, as sshd would) in one `write(2)`. The files of
/// `$_tether_done` (one `rm` for all of them; no process at all when there are none: a warm
/// command's cost is the forks and execs of its supervisor) are removed in the background
/// while the command runs, with no end of the pipe to the streaming loop: a warm command's
/// result does not wait for an `rm` (a fork and exec, 2 ms on a loaded host). Its own
/// stderr goes nowhere (see [`boot`]), nor does the shell's word on a command killed by a
/// signal (`Killed`: sshd's login shell, killed itself, says nothing).
///
/// A SIGTERM, SIGHUP or SIGINT to the process group (a stop: see [`stop`]) ends the command
/// as the command chooses, and nothing of tether's before it: the spool writers ignore them
/// and the shell that waits for both writers catches them (a caught signal is the default
/// again in the command's own shell), so a command that cleans up on SIGTERM keeps its output
/// and its time until the SIGKILL after [`STOP_GRACE`], and the status is written only once
/// the command and both writers ended. A stop that comes after the exec's sh said its process
/// group but before the command's own shell was forked meets only shells that catch it: the
/// stop first makes `ID.t`, and the command's shell, once forked (with SIGTERM at its default
/// again), runs nothing when it finds it there (status 143: TERM).
fn supervise() -> String {
    [
        SUPERVISE_START,
        &crate::ssh::command_shell::by_bash("_tether_cmd", " 2>&4 4>&-"),
        SUPERVISE_END,
    ]
    .concat()
}

/// [`supervise`] up to the command's shell (see `command_shell.rs`), which the `/bin/sh -c`
/// that begins [`SUPERVISE_END`] is where the host has no bash.
const SUPERVISE_START: &str = r#"if [ -n "$_tether_done" ]; then (set --; for _tether_x in $_tether_done; do set -- "$@" "$_tether_b/$_tether_x".? "$_tether_b/$_tether_x".?.* "$_tether_b/$_tether_x.claim" "$_tether_b/$_tether_x.stop"; done; rm -f "$@")>&2& fi; trap : TERM HUP INT; { trap : TERM HUP INT; { trap : TERM HUP INT; ([ -e "$_tether_d.t" ] && exit 143; read -r _tether_y _tether_v </proc/self/stat 2>/dev/null && echo "$_tether_y" >"$_tether_d.x"; PATH=$_tether_P; "#;
const SUPERVISE_END: &str = r#"exec /bin/sh -c " $_tether_cmd" sh 2>&4 4>&-); echo $? >"$_tether_d.c"; } 2>/dev/null | { trap "" TERM HUP INT; _tether_w o; } >/dev/null 2>&1 4>&-; } 4>&1 2>/dev/null | { trap "" TERM HUP INT; _tether_w e; } >/dev/null 2>&1; _tether_s=; read -r _tether_s <"$_tether_d.c"; if [ -n "$_tether_s" ] && [ "$_tether_s" -gt 128 ]; then _tether_x=$(kill -l $((_tether_s-128)) 2>/dev/null); case $_tether_x in HUP|INT|QUIT|ILL|ABRT|FPE|KILL|USR1|SEGV|USR2|PIPE|ALRM|TERM) _tether_s=$_tether_x;; esac; fi; echo "${_tether_s:-?}" >"$_tether_d.s""#;

/// How many bytes of a stream one spool file holds at most (`ID.o.N`, `ID.e.N`), unless the host's
/// environment sets `TETHER_SPOOL_CHUNK` (tests set a small one; taken down to a multiple of
/// 64 KiB, and at least 64 KiB, the most one `dd` read holds: smaller, a file held more than a
/// chunk, and the writer removed bytes not yet passed on); [`SPOOL_CHUNKS`] of them are
/// kept per stream.
pub const SPOOL_CHUNK: u64 = 16 * 1024 * 1024;

/// The spool's bound per stream, in [`SPOOL_CHUNK`]s: at most `SPOOL_CHUNKS` x [`SPOOL_CHUNK`]
/// bytes (64 MiB) kept, and the file being written.
pub const SPOOL_CHUNKS: u64 = 4;

/// The spool writer `_tether_w x`, a shell function (defined once, called for stream `x`, `o`
/// or `e`): its stdin into files named by the offset of their first byte, `ID.x.0`,
/// `ID.x.N`..., each written by one `dd` of at most `$_tether_r` reads of 64 KiB (so at most
/// [`SPOOL_CHUNK`] bytes, and fewer when reads from the pipe are short; `dd` passes each read
/// on at once, where `head -c` would hold small output back). A `dd` that read fewer than
/// `$_tether_r` times met the end of its input: its own count (`W+P records in`, whole and
/// partial reads, which POSIX has it print on stderr, after GNU's warning of a partial read;
/// under `LC_ALL=C`) says so, and no `dd` more is started; otherwise one more makes the next file, which is empty
/// at the end (a count the writer cannot read is taken as not the end). No
/// program is started for an empty file (`[ -s ]` first): a quick command starts few. The
/// bound is counted in bytes, not files: before it starts a file while the files kept hold
/// [`SPOOL_CHUNKS`] x the chunk size, it removes the oldest, but only once the streaming loop
/// (its progress per stream is in `ID.q`) has passed on `SPOOL_CHUNKS - 2` chunk sizes beyond
/// it: those bytes are the slack for what is on its way when a connection dies (at most the
/// channel's window, 2 MiB, and a few buffers), so a resume finds every byte it needs. (A wait
/// can always end: the files after the oldest hold at least `SPOOL_CHUNKS - 1` chunk sizes,
/// as no file holds more than one.) Should a resume still need a removed byte, it says how
/// many it skips (a keyed `tether-lost` frame). So the spool stays bounded, and a command
/// that writes faster than its output reaches tether, or while no connection carries it,
/// waits in its `write(2)`, as it would under sshd when the channel's window is full. Not
/// forever: a wait in which the streaming got no further for `$_tether_wn` naps of 0.2 s (or
/// 1 s where `sleep` takes whole seconds only: longer, never shorter) means that nothing will
/// read the command's output any more (its run was killed, or gave up re-attaching): the
/// writer ends, and the command's next write fails (SIGPIPE), as under sshd once its
/// connection is gone (see [`Supervision::spool_wait`](crate::ssh::exec::Supervision)). A `dd`,
/// `wc` or `sleep` that fails (one first in the login shell's PATH; a `sleep` that fails at
/// once would count the naps out in no time, and end a command whose output was merely behind:
/// stop 46 tester t61) ends it after making `ID.f`, which the streaming loop reports (see
/// `follow`).
fn spool_writer() -> String {
    format!(
        r#"_tether_w() {{ umask 077; _tether_wb=0; _tether_wk=; while :; do while [ -n "$_tether_wk" ] && [ $((_tether_wb-${{_tether_wk%% *}})) -ge $((_tether_c*{n})) ]; do _tether_wo=${{_tether_wk%% *}}; _tether_wk=${{_tether_wk#* }}; _tether_wl=${{_tether_wk%% *}}; _tether_wi=0; _tether_wv=; while :; do _tether_qo=0; _tether_qe=0; read -r _tether_qo _tether_qe <"$_tether_d.q"; eval "_tether_qv=\${{_tether_q$1:-0}}"; [ "$_tether_qv" -ge $((_tether_wl+_tether_c*{s})) ] && break; [ "$_tether_qv" = "$_tether_wv" ] || _tether_wi=0; _tether_wv=$_tether_qv; _tether_wi=$((_tether_wi+1)); [ $_tether_wi -gt $_tether_wn ] && return; sleep 0.2 2>/dev/null || sleep 1 2>/dev/null || {{ : >"$_tether_d.f"; return; }}; done; rm -f "$_tether_d.$1.$_tether_wo"; done; _tether_z=$(LC_ALL=C dd bs=65536 count=$_tether_r of="$_tether_d.$1.$_tether_wb" 2>&1) || {{ : >"$_tether_d.f"; return; }}; [ -s "$_tether_d.$1.$_tether_wb" ] || break; _tether_z=${{_tether_z%%" records in"*}}; case ${{_tether_z##*[!0-9+]}} in [0-9]*+[0-9]*) _tether_z=${{_tether_z##*[!0-9+]}}; [ $((${{_tether_z%+*}}+${{_tether_z#*+}})) -lt $_tether_r ] && break;; esac; _tether_z=$(wc -c <"$_tether_d.$1.$_tether_wb") || {{ : >"$_tether_d.f"; return; }}; _tether_wk="$_tether_wk$_tether_wb "; _tether_wb=$((_tether_wb+_tether_z)); done; }}"#,
        n = SPOOL_CHUNKS,
        s = SPOOL_CHUNKS - 2,
    )
}

/// The streaming loop, from `_tether_o` and `_tether_e` bytes on, until the status is written
/// and every byte before it was passed on (see the module documentation). A ticker subshell
/// wakes it every 0.2 s (1 s where `sleep` takes whole seconds only) with SIGUSR1 (to its own
/// pid, read from `/proc/self`, or from a child's `$PPID`); it waits for `_tether_wp` (a child
/// that ends when the supervisor does) or the ticker, so a command that ends is seen at once.
/// With `_tether_p` (a resume: the command's process group), a group found gone without a
/// status (killed from outside) ends the loop too, and the exec reports no status; with
/// `resume`, the command's directory found gone ends the loop at once (tether then stops the
/// command), where a command's own loop goes on until the command ends (its exec's sh says
/// the directory is gone then). In a
/// command's own exec, a stop's SIGTERM, SIGHUP or SIGINT to the process group ends none of it
/// (the loop's shell ignores them, and so the programs it passes the output on with, which
/// are not the command's, as do the ticker and the reader of the supervisor's end; the ticker
/// is ended with SIGKILL): it passes on what the command prints while it cleans up, and its
/// last bytes (stop 51 tester t78: a `head` the SIGTERM killed mid-pass lost them, a
/// `Terminated` line in their place).
/// Nothing it runs writes on the command's streams but the bytes of the spool files and the
/// keyed tick frame. A file is passed on from its start by `head -c` (by `cat` on the last
/// pass, when it is its stream's only file, the end known), from further on by a `dd`
/// that moves the offset of the file's open description (`skip` on a regular file is an
/// `lseek`, `count=0` reads nothing) and a `head -c` that reads from there: no pipe, so every
/// program's failure is its own status (a `tail | head`, the `tail` ignoring SIGPIPE as
/// the loop does, failed the same way when the file grew past what `head` passed on as when it
/// could not run). A `wc`, `dd`, `head` or `cat` that fails (or the spool writer's `dd` or `wc`:
/// `ID.f` says so) ends the loop with the keyed broken frame (see [`broken`]) and status 124:
/// the bytes were not passed on, and the command fails saying so rather than succeed with its
/// output lost (a `head` that fails as the channel closed says so to nobody). Not where the
/// command's files were removed (`ID.o` gone): a program fails then because its file went,
/// and the loop goes on to the end that says so (stop 67 tester t113: `echo a; rm -rf
/// "$TMPDIR"/tether-*` was said, 1 run in 19, to have failed as on a full filesystem). (stop 45 tester
/// t58: with a failing `tail` first in the login shell's PATH, every command printed nothing
/// and was ok, and a deploy's lock step, whose output was lost, took another deploy's lock for
/// its own; then a command printing while it ran lost all but its first output.)
fn follow(resume: bool) -> String {
    // Passes on stream `x` (`o`, `e`: to fd 1, 2) from byte `$_tether_A`, whose spool file
    // begins at `$_tether_B`; both moved on as it goes (not on the last pass, `$_tether_x`,
    // which passes a file none of which was passed yet, when it is the stream's only one,
    // with one `cat`: no `wc` needed where nothing follows). One function for both streams.
    let pass = |x: &str, at: &str, fd: u8| {
        let base = format!("_tether_{x}b");
        format!(
            r#"_tether_A=${at}; _tether_B=${base}; _tether_P {x} {fd}; {at}=$_tether_A; {base}=$_tether_B; "#
        )
    };
    let pass_fn = r#"_tether_P() { while [ -s "$_tether_d.$1.$_tether_B" ]; do _tether_f="$_tether_d.$1.$_tether_B"; if [ -n "$_tether_x" ] && [ $_tether_A = $_tether_B ]; then _tether_m=0; for _tether_j in "$_tether_d.$1".*; do _tether_m=$((_tether_m+1)); done; if [ $_tether_m = 1 ]; then cat "$_tether_f" >&$2 2>/dev/null || _tether_broken=1; break; fi; fi; _tether_z=$(wc -c 2>/dev/null <"$_tether_f") || { _tether_broken=1; break; }; _tether_z=${_tether_z:-0}; _tether_r=$((_tether_A-_tether_B)); if [ $_tether_z -gt $_tether_r ]; then if [ $_tether_r -eq 0 ]; then head -c $_tether_z "$_tether_f" >&$2 2>/dev/null || _tether_broken=1; else { dd ibs=1 skip=$_tether_r count=0 2>/dev/null && head -c $((_tether_z-_tether_r)) >&$2 2>/dev/null; } <"$_tether_f" || _tether_broken=1; fi; _tether_A=$((_tether_B+_tether_z)); _tether_n=1; fi; [ -z "$_tether_broken" ] && [ $_tether_z -gt 0 ] && [ -f "$_tether_d.$1.$((_tether_B+_tether_z))" ] || break; _tether_B=$((_tether_B+_tether_z)); done; }; "#;
    // Where a resume starts in the spool of stream `x`: the file holding byte `at`, or, when
    // it was removed, the oldest file kept, after a lost frame saying how many bytes it skips.
    let seek = |x: &str, at: &str| {
        let base = format!("_tether_{x}b");
        format!(
            r#"{base}=; _tether_lo=; for _tether_f in "$_tether_d".{x}.[0-9]*; do [ -f "$_tether_f" ] || continue; _tether_v=${{_tether_f##*.}}; [ $_tether_v -le ${at} ] && {{ [ -z "${base}" ] || [ $_tether_v -gt ${base} ]; }} && {base}=$_tether_v; {{ [ -z "$_tether_lo" ] || [ $_tether_v -lt $_tether_lo ]; }} && _tether_lo=$_tether_v; done; if [ -z "${base}" ]; then if [ -n "$_tether_lo" ]; then printf "\036tether-lost:%s:{x}:%s\036" "$_tether_key" $((_tether_lo-{at})) >&2; {at}=$_tether_lo; {base}=$_tether_lo; else {base}=${at}; fi; fi; "#
        )
    };
    format!(
        r#"{pass_fn}if [ -z "$_tether_ob" ]; then {seek_out}{seek_err}fi; trap : USR1; _tether_me=; [ -r /proc/self/stat ] && read -r _tether_me _tether_v </proc/self/stat; [ -n "$_tether_me" ] || _tether_me=$(exec /bin/sh -c "echo \$PPID"); (trap "" TERM HUP INT; while kill -USR1 $_tether_me 2>/dev/null; do sleep 0.2 2>/dev/null || sleep 1; done) </dev/null >/dev/null 2>&1 & _tether_k=$!; trap "" PIPE; _tether_q=0; _tether_x=; while :; do [ -s "$_tether_d.s" ] && _tether_x=1; [ -n "$_tether_p" ] && ! kill -0 -"$_tether_p" 2>/dev/null && _tether_x=1; _tether_n=; _tether_broken=; [ -f "$_tether_d.f" ] && _tether_broken=1; {out}{err}[ -n "$_tether_broken" ] && [ -f "$_tether_d.o" ] && {{ kill -9 $_tether_k 2>/dev/null; printf "\036tether-broken:%s\036" "$_tether_key" >&2; exit 124; }}; [ -n "$_tether_n" ] && echo "$_tether_o $_tether_e" 2>/dev/null >"$_tether_d.q"; [ -n "$_tether_x" ] && break; {gone} if [ -n "$_tether_n" ]; then _tether_q=0; else _tether_q=$((_tether_q+1)); if [ $_tether_q -ge 2 ]; then printf "\036tether-tick:%s\036" "$_tether_key" >&2; _tether_q=0; fi; fi; if [ -n "$_tether_wp" ]; then wait $_tether_wp; [ $? -lt 128 ] && _tether_wp= && _tether_x=1; else wait $_tether_k; fi; done; kill -9 $_tether_k 2>/dev/null"#,
        // A resume ends at once where the directory is gone; a command's own loop goes on.
        gone = match resume {
            true =>
                r#"[ -f "$_tether_d.o" ] || { kill -9 $_tether_k; printf "\036tether-gone:%s\036" "$_tether_key" >&2; exit 125; }; "#,
            false => "",
        },
        out = pass("o", "_tether_o", 1),
        err = pass("e", "_tether_e", 2),
        seek_out = seek("o", "_tether_o"),
        seek_err = seek("e", "_tether_e"),
    )
}

/// The end of the exec's sh of a command or a resume: the status written, as the status
/// marker keyed `$_tether_key` and the exit status, or, for a signal, the exec's sh killing
/// itself with it (sshd then reports it as it would the command's). No status (the files
/// removed) is no marker and status 125.
const FINISH: &str = r#"_tether_s=; read -r _tether_s <"$_tether_d.s" 2>/dev/null; [ -n "$_tether_s" ] || read -r _tether_s <"$_tether_d.c" 2>/dev/null; case $_tether_s in ""|"?") exit 125;; *[!0-9]*) trap - "$_tether_s" 2>/dev/null; kill -"$_tether_s" $$; exit 1;; esac; printf "\036tether-exit:%s:%d\036" "$_tether_key" "$_tether_s" >&2; exit "$_tether_s""#;

/// Whether the supervisor can run on this host, found before anything is claimed: sets
/// `_tether_ok` (the private directory `_tether_b` is ready) or `_tether_why`, the reason
/// `exec::incoming::direct_words` says (1 neither `LOGNAME` nor `USER`; 6 a program of
/// [`PROGRAMS`] missing, named in `_tether_need`; 2 or 5 no private directory). The exec's sh
/// and [`claim`] find the same reasons in the same order: a command that runs directly leaves
/// no claim file, and a claim that took that for a command never run would send it again.
fn usable() -> String {
    format!(
        r#"_tether_why=; _tether_ok=; _tether_need=; if [ -z "${{LOGNAME:-$USER}}" ]; then _tether_why=1; else for _tether_x in {PROGRAMS}; do command -v $_tether_x >/dev/null 2>&1 || _tether_need=${{_tether_need:+$_tether_need }}$_tether_x; done; if [ -n "$_tether_need" ]; then _tether_why=6; else _tether_why=2; {PRIVATE} && _tether_ok=1; [ -n "$_tether_ok" ] || [ -e "$_tether_b" ] || [ -h "$_tether_b" ] || _tether_why=5; fi; fi;"#
    )
}

/// The part of the exec's sh that runs `$_tether_cmd` (id in `$_tether_id`, frame key in
/// `$_tether_key`) under the supervisor, or directly (saying why) where it cannot; `start`
/// prints the start markers. It first claims the command (see [`claim`]): where tether claimed
/// it first, after losing the connection before the start marker, it exits (125) without
/// running it. Its start markers are written with SIGPIPE ignored (a login shell that
/// started after its connection died must still run the command it claimed and write its
/// status; the command gets SIGPIPE as sshd gave it). Every file is created 0600 (in a subshell with `umask 077`: the
/// command keeps the user's umask). The files of the commands named in `$_tether_done` (whose
/// result tether has read) are removed by the supervisor once the command has ended. The
/// process group to stop is the exec's sh's own (sshd starts every session in a new one, whose
/// leader the login shell `exec`s into): where `/proc` says it leads none, the command runs
/// directly. The supervisor and the streaming loop are one pipeline: the loop learns that the
/// supervisor ended from the end of its stdout (a subshell that reads it to its end: no program started), and the exec's sh reports the
/// status once both ended; it catches a stop's SIGTERM, SIGHUP and SIGINT to do so (its
/// subshells get them at their defaults again), and so leads its group until the end. The
/// streaming loop killed on the host (its status a signal's) leaves bytes unsent: the exec's
/// sh then kills itself with SIGKILL, without a status, and tether resumes the command from
/// the bytes it has (see `exec::run_wrapped`); the shell's word on the killed loop (`Killed`)
/// goes nowhere, its stderr being the channel's only for the loop. The command's files
/// removed under it (by the command: `rm -rf /tmp/*`) are said with the keyed gone frame (see
/// [`gone`]) and status 125 once the command has ended: no status can be known, and nothing
/// was killed. The loop goes on ticking until then, so the connection is not taken for a hung
/// one (stop 39 tester t29: a silent command was reported lost after 15 s).
///
/// `read` (sh, empty for a command given in the exec's arguments) runs once the process group
/// is read, before the private directory is made ready (set back to 0700 after whatever ran
/// meanwhile: stop 49 tester t69) and before anything is claimed or written: a standby's wait
/// for its command (see `exec/wrap.rs`).
pub fn boot(start: &str, read: &str) -> String {
    format!(
        r#"_tether_P=$PATH; {system}set -- "$_tether_id"; {DIR}; set --; _tether_c=${{TETHER_SPOOL_CHUNK:-{SPOOL_CHUNK}}}; case $_tether_c in ""|*[!0-9]*|0) _tether_c={SPOOL_CHUNK};; esac; _tether_g=$$; [ -r /proc/$$/stat ] && read -r _tether_v _tether_v _tether_v _tether_v _tether_g _tether_v </proc/$$/stat; {read} {usable} if [ -n "$_tether_ok" ]; then (umask 077; set -C; true >"$_tether_d.claim" || exit 3; set +C; : >"$_tether_d.o" && : >"$_tether_d.c" && : >"$_tether_d.s" && : >"$_tether_d.p" && : >"$_tether_d.x" && echo "0 0" >"$_tether_d.q") 2>/dev/null; case $? in 0) _tether_why=;; 3) [ -e "$_tether_d.claim" ] && exit 125;; *) _tether_why=4;; esac; fi; if [ -z "$_tether_why" ]; then [ "$_tether_g" = $$ ] || {{ rm -f "$_tether_d".? "$_tether_d".?.*; _tether_why=3; }}; fi; if [ -n "$_tether_why" ]; then printf "\036tether-direct:%s:%s:%s\036" "$_tether_key" $_tether_why "${{_tether_need:-$_tether_b}}" >&2; {start} (PATH=$_tether_P; {bash}eval "unset _tether_cmd _tether_key _tether_id _tether_b _tether_d _tether_why _tether_ok _tether_done _tether_g _tether_v _tether_c _tether_wn _tether_need _tether_x _tether_P; $_tether_cmd"); _tether_s=$?; printf "\036tether-exit:%s:%d\036" "$_tether_key" "$_tether_s" >&2; exit "$_tether_s"; fi; echo $$ >"$_tether_d.p"; trap "" PIPE; printf "\036tether-sup:%s:%s\036" $$ "$_tether_d" >&2; {start} trap - PIPE; _tether_o=0; _tether_e=0; _tether_ob=0; _tether_eb=0; _tether_p=; _tether_r=$((_tether_c/65536)); [ $_tether_r -gt 0 ] || _tether_r=1; _tether_c=$((_tether_r*65536)); {writer}; trap : TERM HUP INT; exec 5>&2 2>/dev/null; {{ {supervise}; }} 5>&- | {{ trap "" TERM HUP INT; exec 3<&0; (trap "" TERM HUP INT; while read -r _tether_v; do :; done) <&3 & _tether_wp=$!; exec 3<&-; {follow}; }} 2>&5 5>&-; _tether_v=$?; exec 2>&5 5>&-; [ $_tether_v = 124 ] && exit 124; [ -f "$_tether_d.o" ] || {{ printf "\036tether-gone:%s\036" "$_tether_key" >&2; exit 125; }}; [ $_tether_v -lt 128 ] && [ -s "$_tether_d.s" ] || kill -9 $$; {FINISH}"#,
        system = crate::command::system_programs_first(),
        usable = usable(),
        follow = follow(false),
        supervise = supervise(),
        bash = crate::ssh::command_shell::by_bash("_tether_cmd", ""),
        writer = spool_writer(),
    )
}

/// The programs the supervisor runs (the rest are sh builtins), found in [`crate::command::SYSTEM_PATH`]
/// first, then in the login shell's `PATH`: where one is not found, commands run directly,
/// the reason naming every one missing (stop 59 tester t95: without `mkdir` or `chmod` the
/// private directory was said to be none of the user's own, without `head`, `dd` or `wc` a
/// program was said to have failed, and without `rm` every command's files stayed).
/// `command -v` walks `PATH` in the exec's sh: no program started.
pub const PROGRAMS: &str = "mkdir chmod rm dd wc head cat sleep";

/// The exec's sh of a resume: `$1` the command's id, `$2` and `$3` the bytes of stdout and
/// stderr tether has, the frame key in `$_tether_key`; `start` prints the start markers. A
/// missing directory is the keyed gone frame (see [`gone`]) and status 125; a process group
/// gone without a status is no marker and status 125.
pub fn resume(start: &str) -> String {
    format!(
        r#"{DIR}; _tether_o=$2; _tether_e=$3; set --; {start} if [ ! -f "$_tether_d.o" ] || [ -h "$_tether_b" ] || [ ! -O "$_tether_d.o" ]; then printf "\036tether-gone:%s\036" "$_tether_key" >&2; exit 125; fi; _tether_p=; read -r _tether_p <"$_tether_d.p" 2>/dev/null; _tether_ob=; _tether_eb=; _tether_wp=; {follow}; [ $? = 124 ] && exit 124; {FINISH}"#,
        follow = follow(true)
    )
}

/// The exec's sh that stops the command `$1`, claiming it first (as [`claim`] does, the
/// private directory made first if need be), so that an exec of it that has not started yet
/// never runs it: that prints `never`; where the supervisor cannot run on the host (see
/// `usable`), it claims nothing and prints `unusable WHY:DIR`, as [`claim`] does (the command
/// ran directly, if at all). Where the command has ended by itself (its own shell,
/// whose pid its command's subshell wrote to `ID.x` from `/proc` before it became that shell,
/// gone, or its own status written; then its status to report written within a second, as its
/// spool writers end), nothing is signalled, its detached children included, as sshd leaves
/// those of a command that ended, and, while its exec's sh is still there to pass on its last
/// bytes and report its status, its files stay for that exec's sh and for the clean-up of any
/// command whose result tether read: that prints `gone`, and the command keeps its own result (stop 37 tester t25: a
/// command that printed its last line and ended as the stop came was reported stopped by a
/// SIGTERM that reached only its supervisor). Where the command's exec claimed it first, its
/// process group is waited for (its exec's sh says it right after the claim, its files made; two
/// seconds at most, as a loaded host may take a while between the two), then
/// sent SIGTERM (after making `ID.t`, which keeps a command not yet forked from starting: see
/// [`supervise`], and holds when, in `date +%s` seconds), SIGKILL after `$2` seconds if the
/// command has not ended by then (its status written). A stop run again (its first one cut
/// short with its connection) finds `ID.t` and sends no second SIGTERM: a command's clean-up
/// on SIGTERM runs once, to its end (stop 48 tester t66: the second SIGTERM cut the first
/// clean-up short and ran it again); it waits for what is left of the `$2` seconds counted
/// from the first (all of them where `ID.t` holds no time), and a command that ended within
/// them ended by that SIGTERM (`TERM`, not `gone`). A stop that goes on on the host after its
/// connection was lost (nothing ends it) writes what it printed to `ID.stop` where the
/// printing failed (the channel's reader gone; written whole, by a rename, and only where no
/// other stop wrote it first), before the command's other files are removed
/// (so that a stop run again that waits for them to go finds it; the name is outside their
/// `ID.?`, `ID.?.*`); the stop run again then prints that, having waited for it, and leaves it for the
/// removal of the command's files (a stop run again may be cut short in turn, and the next one
/// must find it too: stop 68 tester t119); where it finds none (a print into a channel the
/// server closed may not fail), a group gone `$2` seconds or more after the first one's SIGTERM
/// took its SIGKILL (`KILL`, not `TERM`: tester t119, several hosts under `ChannelTimeout
/// session:*=1s`) (the grace period and two
/// seconds at most, while the command's files are there; then it goes on as the first would). Where the command ended with its exec's sh
/// already gone (its connection lost), the files are removed half a second later: a resume
/// passing on the last bytes (at 0.2 s ticks) gets them first. After the SIGTERM, SIGKILL goes to
/// whatever of its group is left once the exec's sh (the group's leader, which outlives the
/// SIGTERM) has ended after it, `$2` seconds at most: the streaming
/// loop passes on the last bytes meanwhile (on a loaded host a second was not always enough,
/// and what the command printed as it ended was lost). The leader is waited for, not the group: a group
/// of zombies counts as alive, and an init that is slow to reap them must not cost the grace
/// period; nor is a leader that is a zombie (`/proc` says `Z`), which its sshd, frozen or
/// gone, has not reaped: it runs nothing any more (stop 58 tester t93: the grace period was
/// waited for such a leader after the sshd of a command was stopped). Then its files are
/// removed (its claim too when it had started: its exec is past the claim). SIGCONT follows the SIGTERM, as systemd sends it: a stopped process of the
/// group (`kill -STOP`, the exec's sh frozen with its sshd) gets the SIGTERM, where it waited
/// the grace period for the SIGKILL (stop 58 tester t93: 5 s more for a stop of a command
/// whose sshd was stopped). Prints `TERM` or `KILL` (the signal that ended it), `gone` (nothing of it was
/// left), or `unknown` (no process group was ever said: the command runs without the
/// supervisor, or its files were removed); `start` prints the start markers. With a third
/// argument (not empty) the files are kept, for a resume to read what the command printed
/// while it stopped (a stop over a second connection: see `worker/reattach.rs`).
pub fn stop(start: &str) -> String {
    format!(
        r#"{system}{DIR}; _tether_g=$2; _tether_k=$3; set --; {start} umask 077; trap "" PIPE; {NAP} _tether_up() {{ kill -0 "$_tether_p" 2>/dev/null || return 1; _tether_v=; read -r _tether_v <"/proc/$_tether_p/stat" 2>/dev/null || return 0; _tether_v=${{_tether_v##*) }}; [ "${{_tether_v%% *}}" != Z ]; }}; _tether_late() {{ case $_tether_t0 in ""|*[!0-9]*) return;; esac; _tether_now=$(date +%s) || return; case $_tether_now in ""|*[!0-9]*) return;; esac; [ $((_tether_now-_tether_t0)) -ge "$_tether_g" ] && _tether_r=KILL; }}; _tether_p=; _tether_l=; _tether_rm=; _tether_r=TERM; if [ -s "$_tether_d.stop" ] && [ ! -h "$_tether_b" ] && read -r _tether_r <"$_tether_d.stop"; then :; elif {usable} [ -z "$_tether_ok" ]; then _tether_r="unusable $_tether_why:${{_tether_need:-$_tether_b}}"; elif {{ (umask 077; set -C; echo tether >"$_tether_d.claim") 2>/dev/null || [ -s "$_tether_d.claim" ]; }}; then _tether_r=never; rm -f "$_tether_d.k"; else _tether_i=0; while :; do [ -f "$_tether_d.o" ] && [ ! -h "$_tether_b" ] && read -r _tether_p <"$_tether_d.p" 2>/dev/null; {{ [ -n "$_tether_p" ] || [ $_tether_i -ge 40 ]; }} && break; _tether_nap; _tether_i=$((_tether_i+1)); done; _tether_a=; _tether_t0=; [ -s "$_tether_d.t" ] && _tether_a=1 && read -r _tether_t0 <"$_tether_d.t"; if [ -z "$_tether_p" ]; then _tether_r=unknown; elif [ -n "$_tether_a" ] && {{ _tether_i=0; while [ -f "$_tether_d.o" ] && [ ! -s "$_tether_d.stop" ] && [ $_tether_i -lt $(((_tether_g+2)*20)) ]; do _tether_nap; _tether_i=$((_tether_i+1)); done; [ -s "$_tether_d.stop" ] || [ ! -f "$_tether_d.o" ]; }}; then read -r _tether_r <"$_tether_d.stop" 2>/dev/null || {{ _tether_r=TERM; _tether_late; }}; elif _tether_y=; read -r _tether_y <"$_tether_d.x" 2>/dev/null; if {{ [ -n "$_tether_y" ] && ! kill -0 "$_tether_y" 2>/dev/null; }} || [ -s "$_tether_d.c" ]; then _tether_i=0; while [ ! -s "$_tether_d.s" ] && [ $_tether_i -lt 20 ]; do _tether_nap; _tether_i=$((_tether_i+1)); done; fi; [ -s "$_tether_d.s" ]; then _tether_r=ended; elif ! {{ _tether_i=0; if [ -n "$_tether_a" ]; then _tether_t=; read -r _tether_t <"$_tether_d.t"; _tether_now=$(date +%s); case $_tether_t:$_tether_now in *[!0-9:]*|:*|*:) ;; *) [ "$_tether_now" -gt "$_tether_t" ] && _tether_i=$(((_tether_now-_tether_t)*20));; esac; kill -0 -"$_tether_p"; else date +%s >"$_tether_d.t" || echo - >"$_tether_d.t"; kill -TERM -"$_tether_p" && {{ kill -CONT -"$_tether_p"; :; }}; fi; }} 2>/dev/null; then _tether_r=gone; else while [ ! -s "$_tether_d.s" ] && kill -0 -"$_tether_p" 2>/dev/null; do if [ $_tether_i -ge $((_tether_g*20)) ]; then kill -KILL -"$_tether_p" 2>/dev/null; _tether_r=KILL; break; fi; _tether_nap; _tether_i=$((_tether_i+1)); done; [ -n "$_tether_a" ] && [ $_tether_r = TERM ] && _tether_late; _tether_up || _tether_l=1; _tether_i=0; while [ $_tether_r = TERM ] && [ $_tether_i -lt $((_tether_g*20)) ] && _tether_up; do _tether_nap; _tether_i=$((_tether_i+1)); done; kill -0 -"$_tether_p" 2>/dev/null && kill -KILL -"$_tether_p" 2>/dev/null; {OTHERS}; [ -n "$_tether_l" ] && _tether_nap 10; fi; if [ $_tether_r = ended ] && _tether_up; then _tether_r=gone; else [ $_tether_r = ended ] && _tether_r=gone; _tether_rm=1; fi; [ "$_tether_a$_tether_r" = 1gone ] && _tether_r=TERM; fi; _tether_sv() {{ [ -n "$_tether_rm" ] && [ ! -s "$_tether_d.stop" ] && echo "$_tether_r" >"$_tether_d.stop.$$" && mv -f "$_tether_d.stop.$$" "$_tether_d.stop"; }} 2>/dev/null; echo "$_tether_r" 2>/dev/null || _tether_sv; [ -n "$_tether_rm" ] && [ -z "$_tether_k" ] && rm -f "$_tether_d".? "$_tether_d".?.* ${{_tether_p:+"$_tether_d.claim"}}; printf "\036tether-exit:%s:0\036" "$_tether_key" >&2"#,
        system = crate::command::system_programs_first(),
        usable = usable()
    )
}

/// A stop's nap, for its waits (`_tether_nap N`: N naps of 0.05 s; one of 1 s where `sleep`
/// takes whole seconds only), which writes a tick frame on stderr after every 0.4 s of naps
/// (after a nap of 1 s): a stop that waits out its grace period keeps its channel busy, which
/// a server's `ChannelTimeout` shorter than that closes (stop 68 tester t117: a stop that
/// stopped the command was said to have failed, "the server closed the stop's channel").
/// The scripts that nap ignore SIGPIPE: a tick written to a closed channel ends no stop.
pub(crate) const NAP: &str = r#"_tether_nap() { _tether_nj=${1:-1}; while [ "$_tether_nj" -gt 0 ]; do _tether_nj=$((_tether_nj-1)); if sleep 0.05 2>/dev/null; then _tether_nz=$((${_tether_nz:-0}+1)); [ "$_tether_nz" -lt 8 ] && continue; else sleep 1; _tether_nj=0; fi; _tether_nz=0; printf "\036tether-tick:%s\036" "$_tether_key" >&2; done; };"#;

/// The end of [`stop`] (and of a PTY command's stop, `exec/pty_stop.rs`) once the group
/// `$_tether_p` was signalled, with `$_tether_g` seconds of grace: processes of the group that run as
/// another user (`as_user`: sudo passes a signal on to its child only, and the command's own
/// children stay in the group) ignore the signals of this one, and `kill -0` takes a group of
/// only such processes for gone. They are counted from `/proc` (zombies aside: their real
/// uid is not this user's), and sent SIGTERM through `sudo -n -u '#UID'` (which needs no
/// password only where sudoers allows it), SIGKILL after the grace period; any still there
/// make the stop print `others:N:UID` instead of `TERM`/`KILL`. Without `/proc` nothing is
/// counted.
pub(crate) const OTHERS: &str = r##"_tether_n=0; _tether_u=; _tether_me=$(id -u); _tether_left() { _tether_n=0; for _tether_f in /proc/[0-9]*/stat; do _tether_v=; read -r _tether_v <"$_tether_f" 2>/dev/null || continue; _tether_v=${_tether_v##*) }; set -f; set -- $_tether_v; set +f; [ "$3" = "$_tether_p" ] && [ "$1" != Z ] || continue; _tether_o=; while read -r _tether_k _tether_o _tether_v; do [ "$_tether_k" = Uid: ] && break; _tether_o=; done <"${_tether_f%stat}status" 2>/dev/null; [ -n "$_tether_o" ] && [ "$_tether_o" != "$_tether_me" ] || continue; _tether_n=$((_tether_n+1)); _tether_u=$_tether_o; done; }; if [ -r /proc/self/stat ] && [ -n "$_tether_me" ]; then _tether_left; if [ $_tether_n -gt 0 ]; then sudo -n -u "#$_tether_u" kill -TERM -- -"$_tether_p" >/dev/null 2>&1; _tether_i=0; while [ $_tether_n -gt 0 ] && [ $_tether_i -lt $((_tether_g*4)) ]; do _tether_nap 5; _tether_i=$((_tether_i+1)); _tether_left; done; [ $_tether_n -gt 0 ] && sudo -n -u "#$_tether_u" kill -KILL -- -"$_tether_p" >/dev/null 2>&1; _tether_nap 2; _tether_left; fi; [ $_tether_n -gt 0 ] && _tether_r="others:$_tether_n:$_tether_u"; fi"##;

/// The exec's sh that claims the command `$1`, lost with its connection before its start
/// marker arrived: it creates the claim file `ID.claim` with `set -C` (noclobber: `O_CREAT|O_EXCL`, atomic,
/// and a shell builtin: no program started), which the command's own exec's sh creates the
/// same way (empty) before it runs the command, and runs nothing when it finds it there. A
/// claim of tether's holds a word: one found there is an earlier claim of tether's whose
/// answer was lost with its connection, and wins again (stop 52: a second loss during the
/// claim took tether's own claim for the command's, and its files were then "gone"). Prints `won` (the command never ran and never will: it may be sent again), `taken`
/// (the exec's sh claimed it first: resume it) or `unusable WHY:DIR` (the supervisor cannot
/// run there, found as the exec's sh finds it, see `usable`: nothing can be known, and the
/// command ran directly if at all; `WHY` and `DIR` as the exec's sh says them, see
/// `exec::incoming::direct_words`); `start` prints the start markers. `$2`, when not empty, is the file a long
/// command was written to (see `exec::run_reporting`), removed when the claim wins: the exec
/// that would have read and removed it never runs the command; and where the supervisor
/// cannot run too: an exec that read it removed it already, and one that has not (never
/// started, or starting late) then runs nothing (tester t111: the file stayed in TMPDIR).
pub fn claim(start: &str) -> String {
    format!(
        r#"{system}{DIR}; _tether_f=$2; set --; {start} {usable} if [ -n "$_tether_ok" ]; then if (umask 077; set -C; echo tether >"$_tether_d.claim") 2>/dev/null || [ -s "$_tether_d.claim" ]; then [ -z "$_tether_f" ] || rm -f -- "$_tether_f"; rm -f "$_tether_d.k"; echo won; else echo taken; fi; else [ -z "$_tether_f" ] || rm -f -- "$_tether_f"; echo "unusable $_tether_why:${{_tether_need:-$_tether_b}}"; fi; printf "\036tether-exit:%s:0\036" "$_tether_key" >&2"#,
        system = crate::command::system_programs_first(),
        usable = usable()
    )
}

/// The exec's sh that writes a command too long for one exec request (its stdin) to a file on
/// the host and prints the file's path: `ID.k` in the user's private directory (made first if
/// need be, and set back to 0700 as a command's exec does: the file is run from there), for
/// the supervised command `id`, so that what removes the command's files removes it too (a
/// claim or a stop that wins, [`clean`], [`EXPIRE`]); a private temporary file (`mktemp`,
/// mode 0600, in `$TMPDIR`, else in `/tmp` (where `$TMPDIR` is unset or no writable
/// directory), named `tether-cmd.TAG.XXXXXX`) without an id, or where
/// that directory is unusable. [`unstage`] removes either, by `id` and `tag`, when the
/// command is not to run (a stop or a deadline that came while it was written). A file that
/// does not hold all `len` bytes when its stdin ends (the channel closed part-way: a deadline,
/// a lost connection) is removed by the exec's sh itself, however late it started.
pub fn stage(id: Option<&str>, tag: &str, len: usize) -> String {
    let private = match id {
        Some(id) => format!(
            r#"_tether_i={id}; _tether_b=${{TMPDIR:-/tmp}}/tether-${{LOGNAME:-$USER}}; if [ -n "${{LOGNAME:-$USER}}" ]; then if {PRIVATE}; then f=$_tether_b/$_tether_i.k; (set -C; : >"$f") 2>/dev/null || f=; fi; fi; "#,
            id = crate::command::quote(id)
        ),
        None => String::new(),
    };
    format!(
        r#"{system}umask 077; f=; {private}[ -n "$f" ] || f=$(mktemp "${{TMPDIR:-/tmp}}/tether-cmd.{tag}.XXXXXX" 2>/dev/null || mktemp "/tmp/tether-cmd.{tag}.XXXXXX") || exit; cat >"$f" && {{ n=$(wc -c 2>/dev/null <"$f") || {{ printf 'its bytes could not be counted in the file: the wc of the host failed\n' >&2; false; }}; }} && {{ [ "$n" -eq {len} ] 2>/dev/null || {{ printf 'only %s of its %s bytes reached the file: something on the host read them first (a start-up file of the login shell that reads its standard input?)\n' "$n" {len} >&2; false; }}; }} && printf %s "$f" || {{ s=$?; rm -f "$f"; exit "$s"; }}"#,
        system = crate::command::system_programs_first(),
        tag = crate::command::quote(tag)
    )
}

/// The exec's sh that removes what [`stage`] wrote for the command `$1` (an id, or empty) with
/// tag `$2`, wherever it was written.
pub fn unstage() -> String {
    r#"_tether_b=${TMPDIR:-/tmp}/tether-${LOGNAME:-$USER}; if [ -n "$1" ] && [ -d "$_tether_b" ] && [ ! -h "$_tether_b" ]; then rm -f "$_tether_b/$1.k"; fi; rm -f "${TMPDIR:-/tmp}/tether-cmd.$2".* "/tmp/tether-cmd.$2".*"#.into()
}

/// The exec's sh that removes the files of the commands named in its arguments after the first
/// (one `rm`), and those a run that ended without reading them left behind (killed with
/// SIGKILL, its machine gone) once they are a day old ([`EXPIRE`]). That sweep (two `find`s)
/// runs once a day per host and user: the first argument is the day ([`sweep_day`]), and the
/// private directory keeps a stamp of the last day swept (`.swept.DAY`, 0600), so that the
/// end of a run, but the day's first, costs a host one `rm` at most (stop 50 tester t73: two
/// `find`s per host at every run's end, 5 s from the last command to the summary at 180
/// sessions under load).
/// Without a private directory the sweep runs every time.
pub fn clean() -> String {
    format!(
        r#"_tether_b=${{TMPDIR:-/tmp}}/tether-${{LOGNAME:-$USER}}; _tether_day=$1; shift; _tether_n=$#; for _tether_x; do set -- "$@" "$_tether_b/$_tether_x".? "$_tether_b/$_tether_x".?.* "$_tether_b/$_tether_x.claim" "$_tether_b/$_tether_x.stop"; done; shift $_tether_n; [ $# -eq 0 ] || rm -f "$@"; _tether_swept=; [ -d "$_tether_b" ] && [ ! -h "$_tether_b" ] && [ -O "$_tether_b" ] && _tether_swept="$_tether_b/.swept.$_tether_day"; if [ -z "$_tether_swept" ] || [ ! -f "$_tether_swept" ]; then {EXPIRE}; [ -n "$_tether_swept" ] && {{ rm -f "$_tether_b"/.swept.*; (umask 077; : >"$_tether_swept"); }} 2>/dev/null; fi"#
    )
}

/// The day [`clean`] names its sweep by: whole days since the Unix epoch, by this machine's
/// clock (another machine's, or a clock set back, only sweeps once more).
pub fn sweep_day() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400).to_string()
}

/// Removes the files of commands nobody will read any more, found by one `find` (POSIX
/// `-prune`, `-mtime +0`: a day old or more) in the private directory (not a symlink): a
/// command whose status (`ID.s`) was written a day ago or more; one started that long ago
/// (`ID.o`) with no status whose process group (`ID.p`) is gone (its supervisor was killed);
/// a claim (`ID.claim`), a staged command (`ID.k`) or a stop's result (`ID.stop`) that old with
/// no files beside it; and, in
/// `$TMPDIR` and `/tmp`, a PTY command's staged text (`tether-cmd.*`) that old (in a sticky
/// `/tmp` only the user's own can go),
/// which a run that exited at a second signal left (stop 36 tester t21: nothing removed it).
/// A command still running, or that ended within the day (a run may still re-attach to it and
/// read its status), is left.
const EXPIRE: &str = r#"find "${TMPDIR:-/tmp}/." /tmp/. ! -name . -prune -name 'tether-cmd.*' -type f -mtime +0 -exec rm -f {} + 2>/dev/null; [ -d "$_tether_b" ] && [ ! -h "$_tether_b" ] && find "$_tether_b/." ! -name . -prune \( -name '*.s' -o -name '*.o' -o -name '*.claim' -o -name '*.k' -o -name '*.stop' \) -mtime +0 2>/dev/null | while read -r _tether_f; do _tether_i=${_tether_f%.*}; case $_tether_f in *.s) [ -s "$_tether_f" ] || continue;; *.o) [ -s "$_tether_i.s" ] && continue; _tether_p=; read -r _tether_p <"$_tether_i.p" 2>/dev/null; [ -n "$_tether_p" ] && kill -0 -"$_tether_p" 2>/dev/null && continue;; *) [ -e "$_tether_i.o" ] && continue;; esac; rm -f "$_tether_i".? "$_tether_i".?.* "$_tether_i.claim" "$_tether_i.stop"; done"#;

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

/// What a stop ([`stop`], or a PTY command's) found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopDone {
    /// Its process group was sent SIGTERM and ended within the grace period.
    Term,
    /// It was still there after the grace period: SIGKILL.
    Kill,
    /// Nothing of it was left running: it had ended by itself.
    Gone,
    /// It had not started on the host, and never will (its claim was taken first).
    Never,
    /// Its group was signalled, but `count` of its processes run as another user (`uid`:
    /// `as_user`), whom no signal of this one reaches and `sudo -n` could not stop: they may
    /// still be running.
    Others {
        /// How many were left.
        count: u32,
        /// Their user's id (the first one's).
        uid: u32,
    },
}

impl StopDone {
    /// What the stop printed (`TERM`, `KILL`, `gone`); `Err` says what else it printed.
    pub fn parse(stdout: &[u8]) -> Result<StopDone, String> {
        match String::from_utf8_lossy(stdout).trim() {
            "TERM" => Ok(StopDone::Term),
            "KILL" => Ok(StopDone::Kill),
            "gone" => Ok(StopDone::Gone),
            "never" => Ok(StopDone::Never),
            other if other.starts_with("others:") => {
                let mut parts = other.split(':').skip(1).map(str::parse::<u32>);
                match (parts.next(), parts.next()) {
                    (Some(Ok(count)), Some(Ok(uid))) => Ok(StopDone::Others { count, uid }),
                    _ => Err(format!("stopping it failed ({other})")),
                }
            }
            "unknown" => Err("the host never said its process group: it may run without \
                              tether's supervisor, or its files were removed"
                .into()),
            other => Err(format!("stopping it failed ({other})")),
        }
    }

    /// As a sentence for the user, with the grace period before SIGKILL.
    pub fn words(self, grace: Duration) -> String {
        match self {
            StopDone::Term => "its process group was sent SIGTERM and ended".into(),
            StopDone::Kill => format!(
                "its process group was sent SIGTERM, and SIGKILL after {} s",
                grace.as_secs()
            ),
            StopDone::Gone => "nothing of it was left running".into(),
            StopDone::Never => "it had not started on the host, and never will".into(),
            StopDone::Others { count, uid } => format!(
                "its process group was sent SIGTERM and SIGKILL, but {count} of its processes \
                 run as another user (uid {uid}, as_user), whom neither those signals nor \
                 `sudo -n kill` reach: they may still be running"
            ),
        }
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
