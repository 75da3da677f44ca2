//! The exec request string every login shell reads alike: `exec /bin/sh -c 'BOOT' sh 'ARG'...`
//! (see the `exec` module documentation), the sh program BOOT with its start and status
//! markers, and the words it is made of.

use super::frames::Key;

/// The longest exec request string sent as is: libssh2 refuses to send a packet of 35000
/// bytes or more (`MAX_SSH_PACKET_LEN`, less 256 for its framing, less the request's own
/// fields). A longer command is staged in a file on the host first.
pub const MAX_EXEC: usize = 32 * 1024;
/// The longest word (as written, quotes included) given to the login shell: bsd-csh refuses
/// words from about 8190 bytes on (`Word too long.`).
pub(super) const MAX_WORD: usize = 4000;
/// The sh program the login shell starts (`/bin/sh -c BOOT sh ARG...`): it joins its
/// arguments, expands them as the inside of a double-quoted string (a newline is written
/// `${_tether_nl}`, taken from the default `IFS`: space, tab, newline), prints the start
/// marker (on stdout, and on stderr unless `pty`; with `pty` after the frame that says its
/// process group, see `pty_stop.rs`), runs the result in a subshell, by bash where the host
/// has one (see `command_shell.rs`), else by `eval`, with no positional parameters, and
/// reports its status. Written with `"` and `\` only where the
/// login shell sees them outside its quotes (see [`shell_word`]).
///
/// The first argument is the command's frame key (see `frames.rs`). With `supervised` (never
/// with `pty`) the command runs under the supervisor (see `supervisor.rs`): with
/// [`Supervised::Now`] the second argument is the command's id, followed by the ids of
/// directories to remove (space-separated), the third how many naps of 0.2 s its spool writers
/// wait for a reader that gets no further (see `supervisor::spool_writer`); with
/// [`Supervised::Standby`] the second is the command's id, and the rest comes on stdin, as one
/// [`standby_line`], once the supervisor has made ready (see `standby.rs`).
pub(super) fn boot(pty: bool, supervised: Option<Supervised>) -> String {
    let start = r#"printf "\036tether-start\036""#;
    let start_err = if pty {
        String::new()
    } else {
        format!(" {start} >&2;")
    };
    let decode = DECODE;
    let markers = format!("{start};{start_err}");
    match supervised {
        Some(Supervised::Now) => {
            return format!(
                r#"_tether_key=$1; _tether_id=${{2%% *}}; _tether_done=${{2#"$_tether_id"}}; _tether_wn=$3; shift 3; {decode} {} {}"#,
                crate::ssh::command_shell::say_no_bash(false),
                crate::ssh::supervisor::boot(&markers, "")
            )
        }
        // A stdin that ends before a whole line (the standby closed unused, its connection
        // lost) runs nothing: nothing was claimed or written yet.
        Some(Supervised::Standby) => {
            return format!(
                r#"_tether_key=$1; _tether_id=$2; shift 2; {} {}"#,
                crate::ssh::command_shell::say_no_bash(false),
                crate::ssh::supervisor::boot(
                    &markers,
                    &format!(
                        r#"IFS= read -r _tether_line || exit 0; _tether_h=${{_tether_line%%:*}}; set -- "${{_tether_line#*:}}"; _tether_wn=${{_tether_h%% *}}; _tether_done=${{_tether_h#"$_tether_wn"}}; unset _tether_line _tether_h; {decode}"#
                    )
                )
            )
        }
        None => {}
    }
    // On a PTY the exec's sh says its process group, so that a stop reaches the command, and
    // outlives the stop's SIGTERM: its own stderr goes nowhere from then on (its word on the
    // command that SIGTERM killed, `Terminated`, is not the command's), the terminal being
    // fd 4 for the command and the status marker.
    let (announce, announced, open, err) = match pty {
        true => (
            super::pty_stop::ANNOUNCE,
            " _tether_g _tether_v",
            "exec 4>&2 2>/dev/null; (exec 2>&4 4>&-; ",
            "4",
        ),
        false => ("", "", "(", "2"),
    };
    let bash = crate::ssh::command_shell::by_bash("_tether_cmd", "");
    let nobash = crate::ssh::command_shell::say_no_bash(pty);
    format!(
        r#"_tether_key=$1; shift; {decode} {announce} {nobash} {start};{start_err} {open}{bash}eval "unset _tether_cmd _tether_key{announced}; $_tether_cmd"); _tether_s=$?; printf "\036tether-exit:%s:%d\036" "$_tether_key" "$_tether_s" >&{err}; exit "$_tether_s""#
    )
}

/// The exec request string that runs the sh program `script` with `args` (none may hold a
/// newline; each is one [`shell_word`]), and `key` (see `frames.rs`) in `$_tether_key`, its
/// programs found in `command::SYSTEM_PATH` first.
pub(super) fn wrap_script(script: &str, key: &Key, args: &[&str]) -> String {
    let script = format!(
        "_tether_key=$1; shift; {}{script}",
        crate::command::system_programs_first()
    );
    let mut out = format!(
        "exec /bin/sh -c {} sh {}",
        shell_word(&script),
        shell_word(key.as_str())
    );
    for arg in args {
        out.push(' ');
        out.push_str(&shell_word(arg));
    }
    out
}

/// The start markers of a resume or stop exec (without a PTY).
pub(super) fn start_markers() -> String {
    let start = r#"printf "\036tether-start\036""#;
    format!("{start}; {start} >&2;")
}

/// `text` as one word that sh, dash, bash, zsh, ksh, fish, tcsh and csh all read as `text`:
/// single-quoted, with `'`, `\` and `!` written outside the quotes, backslash-escaped. `text`
/// must not hold a newline (csh cannot quote one alike).
pub(super) fn shell_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    let mut open = false;
    for c in text.chars() {
        if matches!(c, '\'' | '\\' | '!') {
            if open {
                out.push('\'');
                open = false;
            }
            out.push('\\');
        } else if !open {
            out.push('\'');
            open = true;
        }
        out.push(c);
    }
    if open {
        out.push('\'');
    } else if text.is_empty() {
        out.push_str("''");
    }
    out
}

/// sh that joins its arguments into `$_tether_cmd`, expanding them as the inside of a
/// double-quoted string (see [`boot`]), and leaves no positional parameters.
const DECODE: &str = r#"_tether_ifs=$IFS; _tether_nl=${_tether_ifs#??}; IFS=; eval "_tether_cmd=\"$*\""; IFS=$_tether_ifs; unset _tether_ifs _tether_nl; set --;"#;

/// The exec request string of `tether ssh` (on a PTY, no markers), which every login shell
/// reads alike: `script` (sh, one line without a newline: the `cd`), then `command` run as
/// any command is (by bash where the host has one: see `command_shell.rs`), or, without one, a
/// login shell, the user's own (`exec "${SHELL:-/bin/sh}" -l`, as Deployer's `dep ssh`) (stop
/// 59 tester t94: the `cd`'s sh syntax, sent as it was, was a syntax error to fish and csh, and
/// a fish user's `tether ssh` exited 0 without running the command).
pub fn interactive(script: &str, command: &str) -> String {
    let run = match command.is_empty() {
        true => r#"exec "${SHELL:-/bin/sh}" -l"#.to_string(),
        // Said on the terminal, as `tether run` says it once per host (stop 59 tester t95).
        false => format!(
            r#"command -v bash >/dev/null 2>&1 || printf 'tether: %s\n' "the login shell's PATH finds no bash: the command runs by /bin/sh" >&2; {}eval "unset _tether_cmd; $_tether_cmd""#,
            crate::ssh::command_shell::by_bash("_tether_cmd", "")
        ),
    };
    let mut out = format!(
        "exec /bin/sh -c {} sh",
        shell_word(&format!("{DECODE} {script} {run}"))
    );
    for word in command_words(command) {
        out.push(' ');
        out.push_str(&word);
    }
    out
}

/// What `c` costs in a [`shell_word`] at most (a quote closed and opened again around it).
pub(super) fn word_cost(c: char) -> usize {
    if matches!(c, '\'' | '\\' | '!') {
        4
    } else {
        c.len_utf8()
    }
}

/// `command` escaped as the inside of a double-quoted sh string, in pieces that each make a
/// [`shell_word`] of at most [`MAX_WORD`] bytes (no escape is split).
pub(super) fn command_words(command: &str) -> Vec<String> {
    chunks(command.chars().map(escaped), MAX_WORD)
        .iter()
        .map(|chunk| shell_word(chunk))
        .collect()
}

/// `c` as the inside of a double-quoted sh string writes it, a newline as `${_tether_nl}` (sh's
/// default `IFS` holds one: see [`boot`]).
fn escaped(c: char) -> std::borrow::Cow<'static, str> {
    match c {
        '\n' => "${_tether_nl}".into(),
        '\\' | '$' | '`' | '"' => format!("\\{c}").into(),
        _ => c.to_string().into(),
    }
}

/// `pieces` joined, in chunks that each make a [`shell_word`] of at most `limit` bytes (no
/// piece split).
fn chunks<'a>(
    pieces: impl Iterator<Item = std::borrow::Cow<'a, str>>,
    limit: usize,
) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    let mut cost = 2;
    for piece in pieces {
        let piece_cost: usize = piece.chars().map(word_cost).sum();
        if cost + piece_cost > limit && !chunk.is_empty() {
            chunks.push(std::mem::take(&mut chunk));
            cost = 2;
        }
        chunk.push_str(&piece);
        cost += piece_cost;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// The exec request string for `command` (without a PTY): the same in every login shell (see
/// the module documentation).
pub fn wrap(command: &str) -> String {
    wrap_for(command, false, None, &Key::new())
}

/// [`wrap`], for a command on a PTY when `pty` (the start marker only on stdout), under the
/// supervisor with `supervised`: the id (followed by the ids of commands whose files to
/// remove) and how many naps its spool writers wait for a reader (see [`boot`]); its frames
/// carry `key`.
pub(super) fn wrap_for(
    command: &str,
    pty: bool,
    supervised: Option<(&str, u64)>,
    key: &Key,
) -> String {
    let mut out = match supervised {
        Some(_) => supervised_boot(Supervised::Now).to_string(),
        None => format!("exec /bin/sh -c {} sh", shell_word(&boot(pty, None))),
    };
    out.push(' ');
    out.push_str(&shell_word(key.as_str()));
    if let Some((id, naps)) = supervised {
        out.push(' ');
        out.push_str(&shell_word(id));
        out.push(' ');
        out.push_str(&naps.to_string());
    }
    for word in command_words(command) {
        out.push(' ');
        out.push_str(&word);
    }
    out
}

/// The exec request string of a standby (see `standby.rs`): the supervised [`boot`] for the
/// command `id`, whose frames carry `key`, which reads the command from stdin.
pub(super) fn wrap_standby(id: &str, key: &Key) -> String {
    format!(
        "{} {} {}",
        supervised_boot(Supervised::Standby),
        shell_word(key.as_str()),
        shell_word(id)
    )
}

/// The line a standby reads on stdin (see [`boot`]): how many naps its spool writers wait for
/// a reader, the ids of directories to remove (each after a space), `:`, and `command` escaped
/// as the inside of a double-quoted sh string (a newline as `${_tether_nl}`), then a newline.
pub(super) fn standby_line(command: &str, done: &[String], naps: u64) -> Vec<u8> {
    let mut line = naps.to_string();
    for id in done {
        line.push(' ');
        line.push_str(id);
    }
    line.push(':');
    line.extend(command.chars().map(escaped));
    line.push('\n');
    line.into_bytes()
}

/// How a command runs under the supervisor: its exec's sh given the command now, in its
/// arguments, or as a standby that reads it from stdin (see `standby.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Supervised {
    Now,
    Standby,
}

/// `exec /bin/sh -c 'eval "${1}${2}..."' sh 'PART'...`: the supervised [`boot`], too long for
/// one word bsd-csh reads (it refuses one of about 8 KB), in words of at most [`MAX_WORD`]
/// bytes that the sh joins and `eval`s, after shifting them off its arguments (the key
/// follows them). The same for every command: made once per process and kind.
fn supervised_boot(kind: Supervised) -> &'static str {
    static NOW: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static STANDBY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let words = match kind {
        Supervised::Now => &NOW,
        Supervised::Standby => &STANDBY,
    };
    words.get_or_init(|| {
        // The shift goes in front once the count is known: every chunk keeps room for it.
        let mut parts = chunks(
            boot(false, Some(kind))
                .chars()
                .map(|c| c.to_string().into()),
            MAX_WORD - 16,
        );
        parts[0] = format!("shift {}; {}", parts.len(), parts[0]);
        let joined: String = (1..=parts.len()).map(|i| format!("${{{i}}}")).collect();
        let words: Vec<String> = parts.iter().map(|part| shell_word(part)).collect();
        format!(
            "exec /bin/sh -c {} sh {}",
            shell_word(&format!("eval \"{joined}\"")),
            words.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::exec::frames::{Key, StderrFilter};

    fn key() -> Key {
        Key::fixed("K")
    }
    use crate::ssh::exec::preamble::StartFilter;

    /// The supervised BOOT is more than one word bsd-csh reads (about 8 KB), and more than
    /// [`MAX_WORD`]: it travels in several, joined again.
    #[test]
    fn the_supervised_boot_travels_in_words_bsd_csh_reads() {
        assert!(shell_word(&boot(false, Some(Supervised::Now))).len() > MAX_WORD);
        let wrapped = wrap_for("true", false, Some(("id", 300)), &key());
        assert!(
            wrapped.starts_with(r#"exec /bin/sh -c 'eval "${1}${2}"#),
            "{wrapped}"
        );
        assert!(wrapped.split(' ').all(|w| w.len() <= MAX_WORD));
    }

    /// The login shells [`wrap`] is written for, as Debian installs them.
    const LOGIN_SHELLS: [&str; 8] = [
        "/bin/sh",
        "/bin/dash",
        "/bin/bash",
        "/bin/zsh",
        "/bin/ksh93",
        "/usr/bin/fish",
        "/bin/tcsh",
        "/bin/bsd-csh",
    ];

    /// Runs `string` as sshd would, through `shell -c`, in an empty HOME; stdout, stderr, code.
    fn as_sshd(shell: &str, string: &str, stdin: &[u8]) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        use std::io::Write as _;
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(shell)
            .arg("-c")
            .arg(string)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{shell}: {e} (scripts/test installs the login shells tests use)")
            });
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (out.stdout, out.stderr, out.status.code())
    }

    #[test]
    fn every_login_shell_reads_the_wrapped_command_alike() {
        // Quotes of every kind, `$`, `!`, a backslash, newlines, a comment at the end, a tab,
        // non-ASCII text, a long line, and the command's own stdin.
        let long = "x".repeat(9000);
        let command = format!(
            "printf '%s|' \"it's\" '\"q\"' '$HOME' \"${{UNSET-d}}\" 'bang!' 'a\\b' `echo bt` '\té'\n\
             read -r line; echo \"[$line] $# $0\"\necho {{1..3}}; [[ a == a ]] && echo -e 'dbl\\tok'\n\
             printf %s {long} | wc -c\n\
             case x in x) echo multi\n;; esac; exit 3 # done"
        );
        let want = "it's|\"q\"|$HOME|d|bang!|a\\b|bt|\t\u{e9}|[from stdin] 0 bash\n1 2 3\ndbl\tok\n9000\nmulti\n";
        for shell in LOGIN_SHELLS {
            let wrapped = wrap_for(&command, false, None, &key());
            assert!(!wrapped.contains('\n'), "{wrapped}");
            for word in wrapped.split(' ') {
                assert!(
                    word.len() <= MAX_WORD,
                    "{shell}: a word of {} bytes",
                    word.len()
                );
            }
            let (stdout, stderr, code) = as_sshd(shell, &wrapped, b"from stdin\n");
            let mut start = StartFilter::default();
            let mut shown = start.push(&stdout);
            shown.extend(start.finish());
            assert_eq!(String::from_utf8_lossy(&shown), want, "{shell}");
            let mut start = StartFilter::default();
            let mut status = StderrFilter::new(&key());
            let mut err = status.push(&start.push(&stderr));
            let (rest, marker) = status.finish();
            err.extend(rest);
            assert_eq!(
                (String::from_utf8_lossy(&err).as_ref(), marker),
                ("", Some(3)),
                "{shell}"
            );
            assert_eq!(code, Some(3), "{shell}");
        }
    }

    #[test]
    fn words_are_safe_in_every_shells_single_quotes() {
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("it's!"), r"'it'\''s'\!");
        assert_eq!(shell_word(r"\x"), r"\\'x'");
        let words = command_words(&"ab'\n".repeat(2000));
        assert!(words.len() > 1);
        assert!(words
            .iter()
            .all(|w| w.len() <= MAX_WORD && !w.contains('\n')));
        assert!(
            wrap("true").starts_with("exec /bin/sh -c '_tether_key=$1; shift; _tether_ifs=$IFS; ")
        );
        assert!(wrap("true").ends_with("' 'true'"));
        assert!(wrap_for("true", false, None, &key()).ends_with(" sh 'K' 'true'"));
        // The supervised BOOT travels in such words too.
        assert!(wrap_for("true", false, Some(("id", 300)), &key())
            .split(' ')
            .all(|w| w.len() <= MAX_WORD));
    }
}
