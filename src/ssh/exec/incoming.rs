//! Both output streams of one command on their way in: the preamble split off, the frames
//! stripped, the bytes kept and the lines shown.

use super::frames::{Key, StderrFilter};
use super::options::{Drain, ExecOptions};
use super::outcome::KeptStderr;
use super::preamble::StartFilter;
use crate::chars::shown;
use crate::event::Stream;

/// The longest line shown as one, in bytes: a longer one (a dump with no newline) is shown in
/// pieces this long, so that what waits for its newline stays bounded.
pub(super) const MAX_LINE: usize = 1024 * 1024;

/// How a line shown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// At a newline (its `\r`s before it dropped: a CRLF ending), or at the stream's end.
    Newline,
    /// Cut at [`MAX_LINE`]: the line goes on in the next piece (JSON says `"cut": true`).
    Cut,
    /// At a `\r` that the command drew its next state over (the progress of git, npm, curl):
    /// shown when the next state starts, not when the line ends (a terminal draws it in the
    /// status line, a log and JSON give it a line of its own).
    Redrawn,
    /// Not ended: the line so far, which has not grown for [`PENDING_AFTER`] (a prompt such as
    /// `Password: `, a progress state before its `\r`): only a terminal's status line shows it;
    /// the line is shown again, as any other, when it ends.
    Pending,
}

/// How long a line waits for its end, not growing, before it is shown as
/// [`LineEnd::Pending`].
pub(super) const PENDING_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Splits a byte stream into lines for display while keeping every byte for the result: a
/// line ends at a newline, and each state a command draws over with `\r` is shown apart
/// ([`LineEnd::Redrawn`]; an empty one is not shown).
#[derive(Default)]
pub(super) struct Lines {
    pub(super) partial: Vec<u8>,
}

impl Lines {
    pub(super) fn push(&mut self, data: &[u8], mut emit: impl FnMut(&str, LineEnd)) {
        // The lines are cut out of the buffer once all are emitted: cutting each as it goes
        // moved the rest of the buffer once a line. What is left holds no newline and no
        // `\r` but at its end (one whose next byte had not come: CRLF or a redraw?), so the
        // search starts there.
        let mut from = self.partial.len();
        while from > 0 && self.partial[from - 1] == b'\r' {
            from -= 1;
        }
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.partial[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let at = from + i;
            // A run of `\r`s: a line's end when a newline follows it, else a redraw.
            let mut after = at;
            while self.partial.get(after) == Some(&b'\r') {
                after += 1;
            }
            match self.partial.get(after) {
                None => break,
                Some(b'\n') => {
                    emit_cut(&self.partial[start..at], LineEnd::Newline, &mut emit);
                    start = after + 1;
                }
                Some(_) => {
                    if at > start {
                        emit_cut(&self.partial[start..at], LineEnd::Redrawn, &mut emit);
                    }
                    start = after;
                }
            }
            from = start;
        }
        self.partial.drain(..start);
        // A line of MAX_LINE bytes may end with the next byte: only a longer one is cut.
        while self.partial.len() > MAX_LINE {
            let n = piece_len(&self.partial);
            emit(&shown(&self.partial[..n]), LineEnd::Cut);
            self.partial.drain(..n);
        }
    }

    /// At the stream's end: the last line, without its `\r`s, if it shows anything.
    pub(super) fn finish(&mut self, mut emit: impl FnMut(&str, LineEnd)) {
        let mut end = self.partial.len();
        while end > 0 && self.partial[end - 1] == b'\r' {
            end -= 1;
        }
        if end > 0 {
            emit(&shown(&self.partial[..end]), LineEnd::Newline);
        }
        self.partial.clear();
    }
}

/// Emits `line`, which ended as `end`, in pieces of at most [`MAX_LINE`] bytes, each but the
/// last [`LineEnd::Cut`]: wherever its end arrived, a line is cut at the same points (stop 42
/// tester t47: a line of 1,048,600 bytes whose end came with its last bytes was one piece).
fn emit_cut(line: &[u8], end: LineEnd, emit: &mut impl FnMut(&str, LineEnd)) {
    let mut rest = line;
    while rest.len() > MAX_LINE {
        let n = piece_len(rest);
        emit(&shown(&rest[..n]), LineEnd::Cut);
        rest = &rest[n..];
    }
    emit(&shown(rest), end);
}

/// How long the first piece of `line` (longer than [`MAX_LINE`]) is: [`MAX_LINE`] bytes, less
/// what may be the start of a secret (see `secret::held_back`: masking sees each piece alone)
/// and less the start of a character the cut would split (each piece is text of its own).
fn piece_len(line: &[u8]) -> usize {
    let head = &line[..MAX_LINE];
    let mut n = MAX_LINE - crate::secret::held_back(head);
    // At most 3 bytes back: a UTF-8 character is 4 at most; invalid bytes are cut anywhere.
    let least = n.saturating_sub(3);
    while n > least && line[n] & 0xC0 == 0x80 {
        n -= 1;
    }
    if n == 0 {
        MAX_LINE
    } else {
        n
    }
}

/// One output stream on its way in: the start filter (the login shell's preamble), then, where
/// the status marker may arrive, the marker filter, then the bytes kept and the lines shown.
pub(super) struct Incoming {
    pub(super) stream: Stream,
    pub(super) start: StartFilter,
    pub(super) status: Option<StderrFilter>,
    pub(super) bytes: Vec<u8>,
    pub(super) lines: Lines,
    /// Where the stream's bytes go instead of `bytes` and `lines` ([`ExecOptions::stdout_to`]).
    pub(super) drain: Option<Drain>,
    /// How many of the command's bytes went on (to `bytes` or the drain): under the
    /// supervisor, where a resume continues the stream.
    pub(super) kept: u64,
    /// The most of the stream's last bytes `bytes` keeps ([`ExecOptions::keep`]).
    pub(super) keep_last: Option<usize>,
    /// The unended line's length, since when it has had it, and whether it was shown as
    /// pending at that length (see [`Incoming::pending`]).
    pend: Option<(usize, std::time::Instant, bool)>,
}

impl Incoming {
    pub(super) fn new(stream: Stream, start: StartFilter, status: Option<StderrFilter>) -> Self {
        Incoming {
            stream,
            start,
            status,
            bytes: Vec::new(),
            lines: Lines::default(),
            drain: None,
            kept: 0,
            keep_last: None,
            pend: None,
        }
    }

    /// The unended line (without the `\r`s it ends with: its last state; see [`Lines`]: what is
    /// left holds no other), once it has not grown for [`PENDING_AFTER`] at `now`, and once per
    /// length: see [`LineEnd::Pending`].
    pub(super) fn pending(&mut self, now: std::time::Instant) -> Option<String> {
        let partial = &self.lines.partial;
        if partial.is_empty() {
            self.pend = None;
            return None;
        }
        match &mut self.pend {
            Some((len, since, said)) if *len == partial.len() => {
                if *said || now.saturating_duration_since(*since) < PENDING_AFTER {
                    return None;
                }
                *said = true;
                let mut end = partial.len();
                while end > 0 && partial[end - 1] == b'\r' {
                    end -= 1;
                }
                // Not the start of a secret that has not all come (a prompt is shown up to it).
                end -= crate::secret::held_back(&partial[..end]);
                (end > 0).then(|| shown(&partial[..end]).into_owned())
            }
            _ => {
                self.pend = Some((partial.len(), now, false));
                None
            }
        }
    }

    /// Takes bytes as they arrived; an error when writing them to the drain failed.
    pub(super) fn push(
        &mut self,
        data: &[u8],
        on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    ) -> std::io::Result<()> {
        let data = self.start.push(data);
        let shown = match &mut self.status {
            Some(filter) => filter.push(&data),
            None => data,
        };
        self.keep(&shown, on_line)
    }

    pub(super) fn keep(
        &mut self,
        shown: &[u8],
        on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    ) -> std::io::Result<()> {
        self.kept += shown.len() as u64;
        if let Some(drain) = &self.drain {
            return drain
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(shown);
        }
        self.bytes.extend_from_slice(shown);
        if let Some(last) = self.keep_last {
            // Cut once twice the bound is held: a cut moves what is kept, not once a read.
            if self.bytes.len() > last.saturating_mul(2) {
                self.bytes.drain(..self.bytes.len() - last);
            }
        }
        let stream = self.stream;
        self.lines.push(shown, |l, end| on_line(stream, l, end));
        Ok(())
    }

    /// How many of the stream's bytes came before those `bytes` holds and were not kept.
    pub(super) fn cut(&self) -> u64 {
        self.kept.saturating_sub(self.bytes.len() as u64)
    }

    /// The bytes kept, and how many before them were not (see [`KeptStderr`]).
    pub(super) fn kept_stderr(&self) -> KeptStderr {
        KeptStderr {
            bytes: self.bytes.clone(),
            cut: self.cut(),
        }
    }

    /// At end of stream: the rest goes out (but for the last partial line); the status from
    /// the marker, if it arrived here, and whether writing the rest to the drain worked.
    pub(super) fn end(
        &mut self,
        on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    ) -> (Option<i32>, std::io::Result<()>) {
        let held = self.start.finish();
        let (rest, code) = match &mut self.status {
            Some(filter) => {
                let mut shown = filter.push(&held);
                let (rest, code) = filter.finish();
                shown.extend_from_slice(&rest);
                (shown, code)
            }
            None => (held, None),
        };
        let kept = self.keep(&rest, on_line);
        (code, kept)
    }
}

/// Both output streams of one command on their way in.
pub(super) struct Streams {
    pub(super) out: Incoming,
    pub(super) err: Incoming,
    /// All of the command's stdin was sent (and EOF), or it has none: a command found started
    /// after a loss then has all of it (sshd ends a stdin it was still sending with the
    /// connection), and is resumed (stop 52 tester t79: `capture("echo 40")`, lost before its
    /// EOF was sent, was said to have "started on the host before all of its stdin was sent",
    /// and given up).
    pub(super) stdin_done: bool,
    /// The key of the exec's frames.
    pub(super) key: Key,
    /// When the last byte arrived while the supervisor ran the command, which writes one after
    /// every 0.4 s of silence: once the connection is lost, about when that happened (see
    /// [`Supervision::heard`](super::Supervision::heard)).
    pub(super) heard: Option<std::time::Instant>,
    /// Since when nothing has arrived on this channel while the supervisor runs its command
    /// and its output was read (not held back: see `sink::Backlog`); `None` while the
    /// supervisor is not known to run it. Its tick comes after every 0.4 s of silence (2 s
    /// where `sleep` takes whole seconds only), so seconds of this mean a hung connection.
    pub(super) unheard_since: Option<std::time::Instant>,
    /// What an exit at a second signal says of a PTY command (see
    /// [`ExecOptions::left_running`]), once registered.
    pub(super) left: Option<crate::interrupt::LeftBehind>,
}

impl Streams {
    pub(super) fn new(opts: &ExecOptions, key: &Key) -> Self {
        // With a PTY the status marker arrives in stdout (the server merges the streams), and
        // the start marker is printed there only.
        let out_status = opts.pty.then(|| StderrFilter::new(key));
        let mut out = Incoming::new(Stream::Stdout, StartFilter::default(), out_status);
        // A PTY merges stderr (and the status marker) into stdout: that stays in memory.
        out.drain = opts.stdout_to.clone().filter(|_| !opts.pty);
        let err_start = if opts.pty {
            StartFilter::open()
        } else {
            StartFilter::default()
        };
        out.keep_last = opts.keep;
        let mut err = Incoming::new(Stream::Stderr, err_start, Some(StderrFilter::new(key)));
        err.keep_last = opts.keep;
        Streams {
            out,
            err,
            stdin_done: opts.stdin.as_deref().unwrap_or_default().is_empty()
                && opts.stdin_from.is_none(),
            key: key.clone(),
            heard: None,
            unheard_since: None,
            left: None,
        }
    }

    /// Whether the exec's sh has started the command under the supervisor: its start marker
    /// came on stderr, without the frame that says it runs the command directly before it.
    pub(super) fn supervised(&self) -> bool {
        self.err.start.open && direct_reason(&self.err.start.preamble, &self.key).is_none()
    }
}

/// The reason in the supervisor's "runs directly" frame (with `key`) in `preamble`, if there
/// is one: the frame's start and end, and the reason in words (the frame says `N:DIR`, the
/// reason's number and the private directory: see `supervisor::boot`).
pub(super) fn direct_reason(preamble: &[u8], key: &Key) -> Option<(usize, usize, String)> {
    let direct = crate::ssh::supervisor::direct(key.as_str());
    let from = preamble
        .windows(direct.len())
        .position(|w| w == direct.as_slice())?;
    let text = from + direct.len();
    let end = text + preamble[text..].iter().position(|&b| b == 0x1e)?;
    let said = String::from_utf8_lossy(&preamble[text..end]);
    Some((from, end + 1, direct_words(&said)))
}

/// Why a command runs directly, from what the exec's sh (or a claim, `supervisor::claim`)
/// said: `WHY:DIR`, a code and the private directory (or, for 6, the missing programs).
pub(super) fn direct_words(said: &str) -> String {
    let (why, dir) = said.split_once(':').unwrap_or((said, ""));
    match why {
        "1" => "neither LOGNAME nor USER is set".to_string(),
        "2" => format!("{dir} is not a writable directory of the user's own"),
        "3" => "the exec's sh does not lead its own process group".to_string(),
        // Its claim made, the files after it could not be written (stop 58 tester t92: a full
        // /tmp was said to be no writable directory of the user's own).
        "4" => format!("its files could not be written in {dir} (a full filesystem?)"),
        // Not there, and not made (stop 58 tester t93: a filesystem out of inodes was said
        // to hold no writable directory of the user's own); something else there is reason 2
        // (stop 59 tester t94: a file there was said not made).
        "5" => format!(
            "{dir} could not be made (a full filesystem, or its parent missing or not writable by \
             the user?)"
        ),
        // `dir` is the missing programs' names here, space-separated (see
        // `supervisor::PROGRAMS`).
        "6" => format!(
            "neither {} nor the login shell's PATH has {}; the supervisor runs {}",
            crate::command::SYSTEM_PATH.replace(':', ", "),
            dir.split(' ')
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::ssh::supervisor::PROGRAMS.replace(' ', ", ")
        ),
        other => format!("the supervisor said `{other}`"),
    }
}

/// `\r\n` -> `\n` (a terminal's line endings back to plain ones).
pub(super) fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command with no stdin of its own has all of it from the start: found started after
    /// a loss, it is resumed (see `settle`), whether or not its EOF went out first.
    #[test]
    fn a_command_without_stdin_has_all_of_it_from_the_start() {
        let key = Key::new();
        let none = ExecOptions::default();
        let empty = ExecOptions {
            stdin: Some(Vec::new()),
            ..ExecOptions::default()
        };
        let some = ExecOptions {
            stdin: Some(b"x".to_vec()),
            ..ExecOptions::default()
        };
        assert!(Streams::new(&none, &key).stdin_done);
        assert!(Streams::new(&empty, &key).stdin_done);
        assert!(!Streams::new(&some, &key).stdin_done);
    }

    #[test]
    fn lines_split_and_flush() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        l.push(b"a\r\nb", |s, _| got.push(s.to_string()));
        l.push(b"c\n", |s, _| got.push(s.to_string()));
        l.push(b"tail", |s, _| got.push(s.to_string()));
        l.finish(|s, _| got.push(s.to_string()));
        assert_eq!(got, ["a", "bc", "tail"]);
    }

    /// A line longer than [`MAX_LINE`] is shown in pieces, every byte once.
    #[test]
    fn a_line_without_end_is_shown_in_pieces() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        for _ in 0..5 {
            l.push(&vec![b'a'; MAX_LINE / 2 + 1], |s, end| {
                got.push((s.len(), end))
            });
        }
        l.push(b"\n", |s, end| got.push((s.len(), end)));
        assert_eq!(
            got.iter().map(|(n, _)| n).sum::<usize>(),
            5 * (MAX_LINE / 2 + 1)
        );
        assert!(got.iter().all(|&(n, _)| n <= MAX_LINE), "{got:?}");
        assert!(got.len() >= 2);
        // Every piece but the last says the line goes on (stop 36 tester t16: JSON could not
        // tell a piece from a line).
        let (last, pieces) = got.split_last().unwrap();
        assert!(
            pieces.iter().all(|(_, end)| *end == LineEnd::Cut),
            "{got:?}"
        );
        assert_eq!(last.1, LineEnd::Newline);
    }

    /// A line is cut at the same points however its bytes arrive, its end with its last bytes
    /// or after them (stop 42 tester t47: 1,048,600 bytes and a newline in one read were one
    /// piece); a line of exactly [`MAX_LINE`] bytes is not cut; nor is a character.
    #[test]
    fn a_long_line_is_cut_alike_however_it_arrives() {
        // A line, and the lengths and ends of its pieces.
        type Case = (Vec<u8>, Vec<(usize, LineEnd)>);
        let cases: [Case; 3] = [
            (
                vec![b'a'; MAX_LINE + 24],
                vec![(MAX_LINE, LineEnd::Cut), (24, LineEnd::Newline)],
            ),
            (vec![b'a'; MAX_LINE], vec![(MAX_LINE, LineEnd::Newline)]),
            (
                [vec![b'a'; MAX_LINE - 1], "éb".as_bytes().to_vec()].concat(),
                vec![(MAX_LINE - 1, LineEnd::Cut), (3, LineEnd::Newline)],
            ),
        ];
        for (line, want) in cases {
            for chunk in [line.len() + 1, 65536, 4096, 1000] {
                let mut data = line.clone();
                data.push(b'\n');
                let mut l = Lines::default();
                let mut got = Vec::new();
                for c in data.chunks(chunk) {
                    l.push(c, |s, end| got.push((s.len(), end)));
                }
                l.finish(|s, end| got.push((s.len(), end)));
                assert_eq!(got, want, "{} bytes in reads of {chunk}", line.len());
            }
        }
    }

    /// A secret that straddles a piece's cut is held back whole for the next piece, and an
    /// unended line is shown as pending up to it: masking sees each piece alone, and half a
    /// secret in each is masked in neither (stop 41 tester t37).
    #[test]
    fn a_secret_is_never_cut_in_two() {
        let secret = "Cut-Sup3rSecretValue42";
        crate::secret::register(secret);
        for split in 1..secret.len() {
            let mut l = Lines::default();
            let mut got = Vec::new();
            let mut head = vec![b'a'; MAX_LINE - split];
            head.extend_from_slice(&secret.as_bytes()[..split]);
            l.push(&head, |s, end| got.push((s.to_string(), end)));
            l.push(&secret.as_bytes()[split..], |s, end| {
                got.push((s.to_string(), end))
            });
            l.push(b"\n", |s, end| got.push((s.to_string(), end)));
            assert_eq!(got.len(), 2, "split {split}");
            assert_eq!(got[0].1, LineEnd::Cut);
            assert!(got[0].0.bytes().all(|b| b == b'a'), "split {split}");
            assert_eq!(got[1], (secret.to_string(), LineEnd::Newline));
        }
        let mut s = Incoming::new(Stream::Stdout, StartFilter::open(), None);
        s.keep(b"Password: Cut-Sup3r", &mut |_, _, _| {}).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(s.pending(t), None);
        assert_eq!(s.pending(t + PENDING_AFTER).as_deref(), Some("Password: "));
    }

    /// With a bound, a stream keeps its last bytes only (at most twice the bound), every line
    /// still shown and every byte counted.
    #[test]
    fn a_bounded_stream_keeps_its_last_bytes() {
        let mut s = Incoming::new(Stream::Stdout, StartFilter::open(), None);
        s.keep_last = Some(1000);
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let mut shown = 0;
        for piece in text.chunks(700) {
            s.keep(piece, &mut |_, _, _| shown += 1).unwrap();
            assert!(s.bytes.len() <= 2000);
        }
        assert_eq!(shown, 20_000);
        assert_eq!(s.kept, text.len() as u64);
        assert!(s.bytes.len() >= 1000);
        assert!(text.ends_with(&s.bytes));
    }

    /// However the bytes are cut into pushes, the same lines come out, each once and in order.
    #[test]
    fn lines_are_the_same_whatever_the_pushes() {
        let text: Vec<u8> = (0..300)
            .map(|i| format!("line {i}{}\n", if i % 7 == 0 { "\r" } else { "" }))
            .chain(["", "\n", "\n", "end"].map(String::from))
            .collect::<String>()
            .into_bytes();
        let mut want: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
        want.extend(["", "", "end"].map(String::from));
        for size in [1, 2, 3, 7, 64, 1000, text.len()] {
            let (mut l, mut got) = (Lines::default(), Vec::new());
            for piece in text.chunks(size) {
                l.push(piece, |s, _| got.push(s.to_string()));
            }
            l.finish(|s, _| got.push(s.to_string()));
            assert_eq!(got, want, "pushes of {size} bytes");
            assert!(l.partial.is_empty());
        }
    }

    /// Each state drawn over with `\r` is shown once the next one starts, whatever the
    /// pushes; a run of `\r`s before a newline (or the end) ends the line; empty states are
    /// not shown.
    #[test]
    fn states_drawn_over_with_carriage_returns_are_shown_as_they_come() {
        use LineEnd::{Newline, Redrawn};
        let text = b"a\r10%\r50%\r100%\ndone\r\n\rx 1\r\rx 2\r\nPassword: \r\r\nend\r\r";
        let want = [
            ("a", Redrawn),
            ("10%", Redrawn),
            ("50%", Redrawn),
            ("100%", Newline),
            ("done", Newline),
            ("x 1", Redrawn),
            ("x 2", Newline),
            ("Password: ", Newline),
            ("end", Newline),
        ];
        for size in 1..=text.len() {
            let (mut l, mut got) = (Lines::default(), Vec::new());
            for piece in text.chunks(size) {
                l.push(piece, |s, end| got.push((s.to_string(), end)));
            }
            l.finish(|s, end| got.push((s.to_string(), end)));
            let got: Vec<(&str, LineEnd)> = got.iter().map(|(s, e)| (s.as_str(), *e)).collect();
            assert_eq!(got, want, "pushes of {size} bytes");
        }
        // A state is shown as soon as the next one starts, before the line ends.
        let (mut l, mut got) = (Lines::default(), Vec::new());
        l.push(b"step 1\r", |s, end| got.push((s.to_string(), end)));
        assert!(got.is_empty(), "a CRLF's carriage return is not a redraw");
        l.push(b"s", |s, end| got.push((s.to_string(), end)));
        assert_eq!(got, [("step 1".to_string(), Redrawn)]);
    }

    /// A line left unended is pending once it has not grown for [`PENDING_AFTER`], once per
    /// length, without the `\r`s it ends with; an ended one is not.
    #[test]
    fn an_unended_line_is_pending_once_it_waited() {
        let mut s = Incoming::new(Stream::Stdout, StartFilter::open(), None);
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        s.keep(b"done\nPassword: ", &mut |_, _, _| {}).unwrap();
        assert_eq!(s.pending(t0), None);
        assert_eq!(s.pending(ms(400)), None);
        assert_eq!(s.pending(ms(600)).as_deref(), Some("Password: "));
        assert_eq!(s.pending(ms(2000)), None, "once per length");
        s.keep(b"x\r", &mut |_, _, _| {}).unwrap();
        assert_eq!(s.pending(ms(2000)), None, "it grew: waits again");
        assert_eq!(s.pending(ms(2600)).as_deref(), Some("Password: x"));
        s.keep(b"\n", &mut |_, _, _| {}).unwrap();
        assert_eq!(s.pending(ms(2600)), None);
        assert_eq!(s.pending(ms(9000)), None);
    }
}
