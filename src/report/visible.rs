//! What text output shows of text that comes from hosts and recipes: control characters
//! spelt out, so a line cannot move the cursor, erase another host's line or hide itself.

/// A command's output line as text output shows it: control characters as `\xNN` (as bytes
/// that are not UTF-8 are, see `ssh::exec::incoming`), but for tabs and whole colour sequences
/// (`ESC [ ... m`), which a terminal draws and anstream strips from a log. Any other
/// escape sequence would be taken in by the terminal or by anstream's stripping, which reads an
/// unfinished one (`ESC ]` without its end) on into the next line and its newline: the line
/// would be lost, or glued to the next. A character that shows as nothing (a direction
/// override, a zero-width space, a line separator: see `chars::invisible`) is spelt
/// `\u{202e}`, as in a command's text (stop 46 tester t62: a failure's line showed U+202E
/// raw, reversing the rest of it). JSON keeps the line as it is.
pub fn visible(line: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c == '\t' || !crate::chars::invisible(c);
    if line.chars().all(plain) {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            if let Some(len) = csi_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        push_shown(&mut out, c, plain(c));
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

/// `text` with each of its lines as [`visible`] shows it: a failure's text in text output
/// (its stderr tail, a `fail()` message, a host's error), whose words come from hosts and
/// recipes as a command's output does.
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

/// A command's text as it is sent, every control character but a newline and a tab shown as
/// `\xNN` (colour sequences too: they are bytes of the command, not output): what the line
/// shows is what runs (stop 46 tester t60: `true '\x1b[2K\x1b[1Aspoof\r'` was shown as
/// `true 'spoof^M'`, its sequences stripped on the way out and its `\r` drawing back over the
/// line).
///
/// A character that shows as nothing (a direction override, a zero-width space: see
/// `chars::invisible`) is spelt `\u{202e}`, so two commands that differ never look alike (stop
/// 46 tester t61), and each line after the first comes behind `chars::CONTINUED`.
pub fn command_text(command: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c == '\t' || !crate::chars::invisible(c);
    if command.chars().all(plain) {
        return command.into();
    }
    let mut out = String::with_capacity(command.len() + 8);
    for c in command.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(crate::chars::CONTINUED);
            }
            c => push_shown(&mut out, c, plain(c)),
        }
    }
    out.into()
}

/// Pushes `c` onto `out` as it is where `plain`, else a control character as each of its
/// bytes, `\xNN`, and any other as `\u{NNNN}`.
fn push_shown(out: &mut String, c: char, plain: bool) {
    if plain {
        out.push(c);
    } else if c.is_control() {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    } else {
        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
    }
}

/// The length of the colour sequence `text` starts with (SGR: `ESC [`, parameters of digits,
/// `;` and `:`, then `m`), if it does. Only colour passes: any other CSI sequence moves the
/// cursor or erases (`ESC [ 1 A`, `ESC [ 2 K`), so a host's line could overwrite another's
/// on the screen and pass for it.
fn csi_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(1) != Some(&b'[') {
        return None;
    }
    let mut i = 2;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
    {
        i += 1;
    }
    (bytes.get(i) == Some(&b'm')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::{command_text, visible};

    #[test]
    fn a_command_is_shown_with_its_control_characters_escaped() {
        assert_eq!(
            command_text("true '\x1b[2K\x1b[1Aspoof\r' ; echo done\n\tx"),
            "true '\\x1b[2K\\x1b[1Aspoof\\x0d' ; echo done\n> \tx"
        );
        assert_eq!(command_text("echo ünï"), "echo ünï");
        assert_eq!(
            command_text("echo 'evil\u{202e}\u{200b}'"),
            "echo 'evil\\u{202e}\\u{200b}'"
        );
    }

    #[test]
    fn control_characters_are_shown_and_colours_kept() {
        assert_eq!(visible("plain\ttext"), "plain\ttext");
        assert_eq!(visible("\x1b[31mred\x1b[0m"), "\x1b[31mred\x1b[0m");
        assert_eq!(visible("A1\x1b^x"), "A1\\x1b^x");
        assert_eq!(visible("B1\x1b]0;t"), "B1\\x1b]0;t");
        assert_eq!(visible("C1\x06\x1fc"), "C1\\x06\\x1fc");
        // An unfinished CSI, a BEL, a NUL, DEL, a C1 control.
        assert_eq!(visible("x\x1b[31"), "x\\x1b[31");
        assert_eq!(visible("a\x07b\x00c\x7fd"), "a\\x07b\\x00c\\x7fd");
        assert_eq!(visible("e\u{9b}f"), "e\\xc2\\x9bf");
        // Sequences that move the cursor or erase are shown, not acted on (fresh-eyes finding:
        // a host's `ESC[1A ESC[2K` overwrote another host's line on the screen).
        assert_eq!(visible("\x1b[1A\x1b[2Kfake"), "\\x1b[1A\\x1b[2Kfake");
        assert_eq!(visible("a\x1b[1Gb\x1b[K"), "a\\x1b[1Gb\\x1b[K");
        assert_eq!(visible("\x1b[?25l"), "\\x1b[?25l");
        assert_eq!(
            visible("\x1b[38;5;196mred\x1b[m"),
            "\x1b[38;5;196mred\x1b[m"
        );
        assert_eq!(visible("\x1b[38:2:1:2:3mx"), "\x1b[38:2:1:2:3mx");
    }
}
