//! The last lines of a command's stderr that a failure shows, each line cut to a length a
//! person reads: for a remote command, a local one (`run_locally`) and a check's probe alike.

use crate::host_text::HostText;

/// How many lines of stderr a failure shows.
pub const STDERR_TAIL: usize = 10;

/// The most of one line a failure's tail shows, in characters: a line of a megabyte (a
/// minified file, a dump) would bury the rest of the message.
pub const TAIL_LINE_CHARS: usize = 500;

/// The last `n` non-empty lines of stderr, each cut to [`TAIL_LINE_CHARS`] characters with
/// what was left out said (`… (123456 more bytes)`); bytes that are not UTF-8 as `\xNN`, as
/// the streamed lines show them (stop 50 tester t72: U+FFFD for each, two hosts' tails that
/// differ there folded into one failure).
pub fn stderr_tail(stderr: &[u8], n: usize) -> Vec<String> {
    tail_after(stderr, n, 0)
}

/// [`stderr_tail`] of the last bytes of a stream, `cut` bytes before them not kept (`tether
/// run` keeps a stream's last 64 KiB): the first line, whose start may be among those, begins
/// with `…`, and what it says it left out counts them (stop 51 tester t78: a line of 3 MB said
/// `… (65036 more bytes)`).
pub fn tail_after(stderr: &[u8], n: usize, cut: u64) -> Vec<String> {
    let text = crate::chars::shown(stderr);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|&(i, l)| {
            let before = if i == 0 { cut } else { 0 };
            let start = if before > 0 { "…" } else { "" };
            match l.char_indices().nth(TAIL_LINE_CHARS) {
                Some((at, _)) => format!(
                    "{start}{}… ({} more bytes)",
                    &l[..at],
                    before + (l.len() - at) as u64
                ),
                None if before > 0 => format!("{start}{l} ({before} more bytes)"),
                None => l.to_string(),
            }
        })
        .collect()
}

/// Appends the last [`STDERR_TAIL`] lines of `stderr` to the failure `text`, as every failed
/// command's text shows them (`\n  stderr (last lines):\n    LINE`...); nothing where it wrote
/// none: a command that failed and one that timed out alike; `cut` bytes before `stderr` were
/// not kept (see [`tail_after`]).
pub fn push_tail(text: &mut HostText, stderr: &[u8], cut: u64) {
    let tail = tail_after(stderr, STDERR_TAIL, cut);
    if !tail.is_empty() {
        text.push_str("\n  stderr (last lines):");
        for l in tail {
            text.push_str("\n    ");
            text.push_str(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure's tail cuts a long line, saying how much it left out (stop 35 tester t14: a
    /// line of 200 KB was shown whole, twice); short lines, and the last lines, are kept.
    #[test]
    fn a_long_line_in_a_tail_is_cut_and_says_so() {
        let long = "é".repeat(1000);
        let stderr = format!("first\n\n{long}\nlast\n");
        let tail = stderr_tail(stderr.as_bytes(), 2);
        assert_eq!(tail.len(), 2);
        assert_eq!(
            tail[0],
            format!("{}… (1000 more bytes)", "é".repeat(TAIL_LINE_CHARS))
        );
        assert_eq!(tail[1], "last");
        assert_eq!(stderr_tail(b"a\nb\n", 5), ["a", "b"]);
    }

    /// Bytes before the tail that were not kept count for its first line, which may have
    /// begun among them (stop 51 tester t78: `(65036 more bytes)` for 3 MB left out).
    #[test]
    fn a_line_whose_start_was_not_kept_says_so() {
        let long = "x".repeat(1000);
        assert_eq!(
            tail_after(format!("{long}\nlast\n").as_bytes(), 2, 2_999_000),
            [
                format!("…{}… (2999500 more bytes)", "x".repeat(TAIL_LINE_CHARS)),
                "last".to_string()
            ]
        );
        assert_eq!(
            tail_after(b"end\nlast\n", 5, 7),
            ["…end (7 more bytes)", "last"]
        );
        // The first line out of the tail: nothing to say.
        assert_eq!(tail_after(b"end\nlast\n", 1, 7), ["last"]);
    }
}
