//! Secrets the user gave tether (the sudo password, `set_secret`, `secret_env`), and masking
//! them in everything tether prints: every event (masked as it is sent, so text, JSON, logs
//! and the timeline never hold one), the failures a recipe catches, tether's own lines and
//! errors. Values a recipe reads (`capture`) keep the real bytes: masking them would have the
//! recipe write the mask back to a host.
//!
//! The sudo password comes from `TETHER_SUDO_PASSWORD` or, with `--ask-sudo-password`, from a
//! prompt on the terminal. It is never put in a command line (which the reporter shows and
//! `ps` on the server lists): it travels on the command's stdin (see
//! [`crate::command::CommandContext::render`]).

use std::borrow::Cow;
use std::io::IsTerminal as _;
use std::sync::{Arc, RwLock};

/// What a masked secret is replaced with.
pub const MASK: &str = "********";

/// The environment variable holding the sudo password.
pub const SUDO_PASSWORD_ENV: &str = "TETHER_SUDO_PASSWORD";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static SUDO_PASSWORD: RwLock<Option<Arc<str>>> = RwLock::new(None);

/// Masks `secret` from now on (empty secrets are ignored), in the forms tether itself writes
/// it in too: shell-quoted (`quote()`, `with_env`: each `'` as `'\''`), escaped as a
/// recipe's `debug()` shows a string (`"` as `\"`, a tab as `\t`), and each of its lines on
/// its own, and each part a `\r` ends (output is shown a line at a time, and a state a `\r`
/// draws over on its own: stop 46 tester t60, a secret with a `\r` inside was shown).
pub fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let quoted = secret.replace('\'', "'\\''");
    let debugged = format!("{secret:?}");
    // `"..."`: the quotes are the format's, not the secret's.
    let escaped = &debugged[1..debugged.len() - 1];
    let forms = [secret, quoted.as_str(), escaped]
        .into_iter()
        .flat_map(|form| std::iter::once(form).chain(form.split(['\n', '\r'])))
        .map(|form| form.trim_end_matches('\r'))
        .filter(|form| !form.is_empty());
    let mut secrets = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !secrets.iter().any(|s| s == form) {
            secrets.push(form.to_string());
        }
    }
    // Longest first, so a secret containing another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Whether any secret is registered (nothing to mask otherwise).
pub fn any() -> bool {
    !SECRETS.read().unwrap_or_else(|p| p.into_inner()).is_empty()
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    match mask_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // A secret is whole UTF-8 and so matches at character boundaries only: this is
        // always valid.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// A secret (or form of one) shorter than this is masked only where it stands alone, not
/// inside a word: masking every `a` of the output for a one-letter password would garble
/// everything and hide nothing.
const SHORT: usize = 4;

/// Where `needle` occurs in `data` at `at` as a match to mask: anywhere for a secret of
/// [`SHORT`] bytes or more, else only with no letter or digit right before or after it.
fn matches_at(data: &[u8], at: usize, needle: &[u8]) -> bool {
    if !data[at..].starts_with(needle) {
        return false;
    }
    if needle.len() >= SHORT {
        return true;
    }
    let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b >= 0x80);
    !word(at.checked_sub(1).and_then(|i| data.get(i))) && !word(data.get(at + needle.len()))
}

/// `data` with every registered secret replaced by [`MASK`] (a short one where it stands
/// alone: see [`SHORT`]).
pub fn mask_bytes(data: &[u8]) -> Cow<'_, [u8]> {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    // Every place any secret occurs in `data` as it is, then one mask for each run of places
    // that overlap or touch: masking one secret after another let the part of a second that
    // overlapped the first's mask go unmasked, and so the rest of it shown (stop 41 tester t40:
    // `abcd1234wxyz` for `abcd1234` and `1234wxyz` printed `********wxyz`).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for s in secrets.iter() {
        let needle = s.as_bytes();
        spans.extend(
            (0..data.len())
                .filter(|&at| matches_at(data, at, needle))
                .map(|at| (at, at + needle.len())),
        );
    }
    // A secret split by terminal escape sequences (colour) is whole on a terminal, or once
    // they are dropped: found in the text without them, and masked from its first byte to
    // its last, the sequences inside too (stop 44 testers t54, t55: `Hunter2\e[1mZebra`).
    if !secrets.is_empty() && data.contains(&0x1b) {
        let (visible, at_raw) = without_escapes(data);
        for s in secrets.iter() {
            let needle = s.as_bytes();
            spans.extend(
                (0..visible.len())
                    .filter(|&at| matches_at(&visible, at, needle))
                    .map(|at| (at_raw[at], at_raw[at + needle.len() - 1] + 1)),
            );
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(data);
    }
    spans.sort_unstable();
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end)) = spans.next() {
        while let Some(&(next, next_end)) = spans.peek() {
            if next > end {
                break;
            }
            end = end.max(next_end);
            spans.next();
        }
        // Merged, the next place starts after the last one ended.
        out.extend_from_slice(&data[at..start]);
        out.extend_from_slice(MASK.as_bytes());
        at = end;
    }
    out.extend_from_slice(&data[at..]);
    Cow::Owned(out)
}

/// `data` without its terminal escape sequences (ECMA-48: `ESC [` ... a final byte, `ESC ]`
/// ... BEL or `ESC \`, `ESC` and one byte), and for each byte kept, where it is in `data`.
fn without_escapes(data: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let (mut visible, mut at_raw) = (
        Vec::with_capacity(data.len()),
        Vec::with_capacity(data.len()),
    );
    let mut i = 0;
    while i < data.len() {
        if data[i] != 0x1b {
            visible.push(data[i]);
            at_raw.push(i);
            i += 1;
            continue;
        }
        i += 1;
        match data.get(i) {
            Some(b'[') => {
                i += 1;
                while i < data.len() && !(0x40..=0x7e).contains(&data[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                while i < data.len() && data[i] != 0x07 && !data[i..].starts_with(b"\x1b\\") {
                    i += 1;
                }
                i += if data.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            Some(_) => i += 1,
            None => {}
        }
    }
    (visible, at_raw)
}

/// How many of the last bytes of `data` could be the start of a registered secret (or form of
/// one) that goes on past it: a line shown in pieces holds them back for the next piece, so that
/// no secret is shown half in one and half in the next, neither half masked (stop 41 tester
/// t37: a secret across the 1 MiB cut of a long line was printed whole, in two lines). 0 where
/// none could.
pub fn held_back(data: &[u8]) -> usize {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    secrets
        .iter()
        .filter_map(|s| {
            let s = s.as_bytes();
            (1..s.len().min(data.len() + 1))
                .rev()
                .find(|&k| data.ends_with(&s[..k]))
        })
        .max()
        .unwrap_or(0)
}

/// Masks every registered secret in `data` in place; without one there, `data` is left as it
/// is (no copy of a command's whole output on every command).
pub fn mask_vec(data: &mut Vec<u8>) {
    let masked = match mask_bytes(data) {
        Cow::Owned(m) => Some(m),
        Cow::Borrowed(_) => None,
    };
    if let Some(m) = masked {
        *data = m;
    }
}

/// Sets the sudo password (and masks it from now on).
pub fn set_sudo_password(password: &str) {
    register(password);
    *SUDO_PASSWORD.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::from(password));
}

/// The sudo password, if one was given.
pub fn sudo_password() -> Option<Arc<str>> {
    SUDO_PASSWORD
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Takes the sudo password from `TETHER_SUDO_PASSWORD` (empty counts as unset), or, when
/// `ask`, from a prompt on the terminal. Err when asked to prompt without a terminal, and for
/// a password sudo would read otherwise than given: one holding a newline or a carriage return
/// (sudo's `getln` ends the password at either; the rest would reach the command's stdin: tester
/// t128) or, from the environment, one that is not UTF-8 (it would be sent changed). The
/// error never holds the password.
pub fn init_sudo_password(ask: bool) -> Result<(), String> {
    if let Some(p) = std::env::var_os(SUDO_PASSWORD_ENV) {
        let p = p.into_string().map_err(|_| {
            format!("{SUDO_PASSWORD_ENV} is not UTF-8: tether sends the sudo password as text")
        })?;
        if !p.is_empty() {
            read_as_given(&p, SUDO_PASSWORD_ENV)?;
            set_sudo_password(&p);
            return Ok(());
        }
    }
    if !ask {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(format!(
            "--ask-sudo-password needs a terminal to ask on; set {SUDO_PASSWORD_ENV} instead"
        ));
    }
    let p = rpassword::prompt_password("sudo password (for as_user): ")
        .map_err(|e| format!("cannot read the sudo password: {e}"))?;
    if p.is_empty() {
        return Err("empty sudo password".into());
    }
    read_as_given(&p, "the sudo password typed")?;
    set_sudo_password(&p);
    Ok(())
}

/// The characters a terminal's line editing takes as keys by default (termios `c_cc`: VINTR
/// ^C, VEOF ^D, VDISCARD ^O, VSTART ^Q, VREPRINT ^R, VSTOP ^S, VKILL ^U, VLNEXT ^V, VWERASE ^W,
/// VSUSP ^Z, VQUIT ^\, VERASE DEL), which sudo's prompt, reading a password on a terminal with
/// its echo off, leaves in force.
const TERMINAL_KEYS: [char; 12] = [
    '\u{3}', '\u{4}', '\u{f}', '\u{11}', '\u{12}', '\u{13}', '\u{15}', '\u{16}', '\u{17}',
    '\u{1a}', '\u{1c}', '\u{7f}',
];

/// Whether the sudo password, typed on a pseudo-terminal (where sudo reads it as keys, not
/// through its askpass), would reach sudo changed: it holds one of [`TERMINAL_KEYS`] (tester
/// t129: `ab\x7fc` was refused by sudo as a wrong password).
pub fn sudo_password_changed_on_terminal() -> bool {
    sudo_password().is_some_and(|p| p.contains(TERMINAL_KEYS))
}

/// The most bytes of a password sudo reads (`SUDO_CONV_REPL_MAX` of sudo 1.9; 255 in sudo
/// 1.8): it cuts a longer one there (tester t129: one of 1,100 characters was refused by sudo as
/// not the user's password).
const SUDO_PASSWORD_MAX: usize = 1023;

/// Err, naming `given` (where the password came from), when sudo would read `password`
/// otherwise than given: as more than one line, or cut short (for a terminal's keys, see
/// [`sudo_password_changed_on_terminal`]).
fn read_as_given(password: &str, given: &str) -> Result<(), String> {
    if password.contains(['\n', '\r']) {
        return Err(format!(
            "{given} holds a line break (a newline or carriage return): sudo reads the password \
             up to it, and what follows would reach the command's stdin; give it on one line"
        ));
    }
    if password.len() > SUDO_PASSWORD_MAX {
        return Err(format!(
            "{given} is {} bytes long: sudo reads at most {SUDO_PASSWORD_MAX} bytes of a \
             password (255 before sudo 1.9) and would take the rest for nothing",
            password.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret split by colour codes is masked whole, the codes inside too (stop 44 testers
    /// t54, t55: shown on a terminal, and in JSON, which keeps the codes).
    #[test]
    fn a_secret_split_by_escape_sequences_is_masked() {
        register("Hunter2Zebra");
        for (raw, want) in [
            (&b"x Hunter2\x1b[1mZebra y"[..], &b"x ******** y"[..]),
            (
                b"\x1b[31mHunter2\x1b[0mZebra\x1b[0m",
                b"\x1b[31m********\x1b[0m",
            ),
            (b"Hun\x1b[38;5;196mter2\x1b[mZebra", b"********"),
            (b"Hunter2\x1b]0;title\x07Zebra!", b"********!"),
            (b"Hunter2\x1b[1mZebr", b"Hunter2\x1b[1mZebr"),
        ] {
            assert_eq!(&*mask_bytes(raw), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn masks_text_and_bytes() {
        register("s3cr3t-pw");
        register("s3cr3t");
        assert_eq!(mask("a s3cr3t-pw b s3cr3t"), "a ******** b ********");
        assert_eq!(mask("nothing here"), "nothing here");
        assert_eq!(
            &*mask_bytes(b"x s3cr3t-pw\n\xffs3cr3t"),
            b"x ********\n\xff********".as_slice()
        );
        assert!(matches!(mask("plain"), Cow::Borrowed(_)));
        let mut out = b"pw s3cr3t end".to_vec();
        mask_vec(&mut out);
        assert_eq!(out, b"pw ******** end");
        let mut clean = b"nothing".to_vec();
        let before = clean.as_ptr();
        mask_vec(&mut clean);
        assert_eq!(
            clean.as_ptr(),
            before,
            "an output without secrets is not copied"
        );
    }

    /// Secrets that overlap in the output are masked as one: none of either is shown (stop 41
    /// tester t40: the part of the second beyond the first was).
    #[test]
    fn overlapping_secrets_are_masked_whole() {
        register("Ov3rlapA-1234");
        register("1234-Ov3rlapB");
        assert_eq!(mask("x Ov3rlapA-1234-Ov3rlapB y"), "x ******** y");
        assert_eq!(
            mask("1234-Ov3rlapB and Ov3rlapA-1234"),
            "******** and ********"
        );
        assert_eq!(mask("Ov3rlapA-12341234-Ov3rlapB"), "********");
    }

    /// A password of one to three characters is masked where it stands alone, not inside every
    /// word that holds it (fresh-eyes finding: a two-character sudo password masked those
    /// characters in every message).
    #[test]
    fn a_short_secret_is_masked_where_it_stands_alone() {
        register("Zq");
        register("Q");
        assert_eq!(mask("Zq"), "********");
        assert_eq!(
            mask("pw=Zq, again 'Zq'\nZq"),
            "pw=********, again '********'\n********"
        );
        assert_eq!(mask("aZqb ZqZq Zq1 xZq Zqé"), "aZqb ZqZq Zq1 xZq Zqé");
        assert_eq!(mask("Quiet QQ [Q]"), "Quiet QQ [********]");
        assert_eq!(
            &*mask_bytes(b"\xffZq \nZq\n"),
            b"\xffZq \n********\n".as_slice()
        );
        assert!(matches!(mask("Zqa"), Cow::Borrowed(_)));
    }

    /// A secret shown by `debug()` is escaped (fresh-eyes finding: `ab"cd` printed as
    /// `"ab\"cd"`, a tab as `\t`, unmasked).
    #[test]
    fn a_secret_escaped_as_debug_shows_it_is_masked() {
        register("dq\"x\\y\tz\u{1b}[0m");
        let shown = format!("{:?}", "dq\"x\\y\tz\u{1b}[0m");
        assert_eq!(mask(&format!("debug {shown}")), "debug \"********\"");
    }

    #[test]
    fn quoted_forms_and_lines_of_a_secret_are_masked() {
        register("it's-Q9");
        register("line-one-Q9\r\nline-two-Q9");
        assert_eq!(mask("echo 'it'\\''s-Q9'"), "echo '********'");
        assert_eq!(mask("web1 | line-two-Q9"), "web1 | ********");
        assert_eq!(mask("line-one-Q9\r"), "********\r");
    }
}
