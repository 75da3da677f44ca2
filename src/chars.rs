//! Characters that show as nothing where tether shows text: what a name may not hold, and what
//! a shown command spells out; and bytes that are not UTF-8, spelt out ([`shown`]).

/// A line's bytes as text: bytes that are not UTF-8 as `\xNN` (lowercase hex), as Python's
/// `backslashreplace` writes them, so that lines of other bytes never read alike (or fold into
/// one line) as they would with U+FFFD for every one; the result keeps every byte.
pub fn shown(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.into();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.into()
}

/// Whether `text` may show what a host's line had in other characters: bytes that are not
/// UTF-8 or control characters (`\xNN`, see [`shown`]), or a character that shows as nothing
/// (`\u{200b}`, see `report::visible`). A line that printed those characters itself reads
/// the same, so such lines are never folded into one with another host's, lest two hosts'
/// different lines be printed as one (stop 67 tester t112: a zero-width space and the text
/// `\u{200b}` folded into one; tester t116: failure texts of the byte 0xff and of the text
/// `\xff`).
pub fn shows_escapes(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| match b.get(i..i + 2) {
        Some(br"\x") => b
            .get(i + 2..i + 4)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        Some(br"\u") => {
            let hex = b.get(i + 3..).unwrap_or_default();
            let digits = hex.iter().take_while(|c| c.is_ascii_hexdigit()).count();
            b.get(i + 2) == Some(&b'{') && digits > 0 && hex.get(digits) == Some(&b'}')
        }
        _ => false,
    })
}

/// A control character, or one of Unicode's format characters that show as nothing (zero
/// width, direction marks and overrides, the byte-order mark, soft hyphen): a name holding one
/// is listed as another name (stop 41 tester t40: `e\u{200b}f` listed as `ef`, which `tether
/// ef` does not run).
pub fn invisible(c: char) -> bool {
    // Unicode's Default_Ignorable_Code_Point, the other format characters (Cf) and the blank
    // fillers that render as nothing (stop 41 tester t42: a variation selector, tag
    // characters, Hangul fillers, a blank Braille cell).
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                // The line and paragraph separators: a new line to some terminals and
                // viewers (stop 46 tester t62).
                | '\u{2028}'..='\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// What tether puts before each further line of a multi-line command it shows (the shell's
/// continuation prompt, `PS2`): such a line never begins as one of tether's own does (stop 46
/// tester t61: a command's `\n▶ deploy` line passed for a task's start).
pub const CONTINUED: &str = "> ";

/// `command` with each of its lines after the first behind [`CONTINUED`].
pub fn continued(command: &str) -> std::borrow::Cow<'_, str> {
    match command.contains('\n') {
        true => command.replace('\n', &format!("\n{CONTINUED}")).into(),
        false => command.into(),
    }
}

/// How long a failed host's line names its command at most, in characters.
const FAILED_NAMED: usize = 500;

/// How many lines of a command a failure names at most.
const FAILED_LINES: usize = 12;

/// `command` as a failure names it (a failed host's line, a timeout, a lost connection, a
/// stop): whole, each further line behind [`CONTINUED`] (stop 47 tester t64: a timeout's and a
/// lost connection's lines were flush left), up to [`FAILED_NAMED`] characters and
/// [`FAILED_LINES`] lines; a longer one
/// (a stdlib step's script of a kilobyte or two) by its start and its length, so the reason
/// that follows is not buried (stop 47 tester t63: 1,700 characters of script before the words
/// that said why). `-v` and JSON give it whole.
pub fn command_named(command: &str) -> String {
    let count = command.chars().count();
    if count <= FAILED_NAMED && command.lines().count() <= FAILED_LINES {
        return continued(command).into_owned();
    }
    // Its first FAILED_LINES lines, and of those its first FAILED_NAMED characters (stop 47
    // tester t65: 250 lines of two characters each passed the cut).
    let lines: Vec<&str> = command.split('\n').take(FAILED_LINES).collect();
    let start: String = lines.join("\n").chars().take(FAILED_NAMED).collect();
    format!(
        "{}… ({count} characters in all: -v shows it whole)",
        continued(&start)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_shown_apart() {
        assert_eq!(shown(b"plain"), "plain");
        assert_eq!(shown("x\u{fffd}y".as_bytes()), "x\u{fffd}y");
        assert_eq!(shown(b"x\xffy"), "x\\xffy");
        assert_eq!(shown(b"x\xfey"), "x\\xfey");
        assert_eq!(shown(b"x\xc3"), "x\\xc3");
        assert_eq!(shown(b"\xe2\x82"), "\\xe2\\x82");
        assert_eq!(shown("é\u{1F600}".as_bytes()), "é\u{1F600}");
    }
}
