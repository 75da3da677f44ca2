//! The login shell's preamble: what its start-up files print before the command, split from the
//! command's output by the start marker.

use super::outcome::PtyGroup;

/// What the wrapper prints before the command (see [`Preamble`]).
pub(super) const START: &[u8] = b"\x1etether-start\x1e";

/// What the login shell printed before the command ran (its start-up files' chatter), per
/// stream; with a PTY everything is in `stdout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preamble {
    /// Bytes on stdout before the start marker.
    pub stdout: Vec<u8>,
    /// Bytes on stderr before the start marker.
    pub stderr: Vec<u8>,
    /// The exec's sh said the login shell's `PATH` has no bash: the command ran by `/bin/sh`
    /// (see `command_shell.rs`).
    pub no_bash: bool,
    /// A PTY command's process group, as its exec's sh said it, where the command's connection
    /// was lost ([`ExecError::Lost`](super::ExecError::Lost)): nothing re-attaches to a PTY
    /// command, and one that ignores the hangup its terminal gets runs on; this is what stops
    /// it over a new connection.
    pub pty_group: Option<PtyGroup>,
}

impl Preamble {
    /// Whether the login shell printed nothing.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

/// Holds a stream back until the start marker, which splits the login shell's preamble from
/// the command's output.
#[derive(Default)]
pub(super) struct StartFilter {
    pub(super) held: Vec<u8>,
    /// The marker was seen (or none is expected): everything passes.
    pub(super) open: bool,
    pub(super) preamble: Vec<u8>,
}

impl StartFilter {
    /// A filter for a stream that carries no start marker (stderr under a PTY).
    pub(super) fn open() -> Self {
        StartFilter {
            open: true,
            ..StartFilter::default()
        }
    }

    /// The bytes of `data` that are the command's.
    pub(super) fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.open {
            return data.to_vec();
        }
        // Only where the marker could end in the new bytes: held bytes were searched before
        // (a stream without the marker must not cost a search of everything per read).
        let from = self.held.len().saturating_sub(START.len() - 1);
        self.held.extend_from_slice(data);
        let found = self.held[from..]
            .windows(START.len())
            .position(|w| w == START);
        match found.map(|i| from + i) {
            Some(i) => {
                self.open = true;
                let rest = self.held.split_off(i + START.len());
                self.held.truncate(i);
                self.preamble = std::mem::take(&mut self.held);
                rest
            }
            None => Vec::new(),
        }
    }

    /// At end of stream: what is still held. Without a marker nothing tells the login shell's
    /// output from the command's, so all of it is shown (the login shell's own error, when it
    /// could not start the command).
    pub(super) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_marker_splits_the_preamble_from_the_output() {
        let mut f = StartFilter::default();
        let mut shown = f.push(b"Welcome to host1\n\x1etether-st");
        shown.extend(f.push(b"art\x1eout"));
        shown.extend(f.push(b"put\n"));
        shown.extend(f.finish());
        assert_eq!(shown, b"output\n");
        assert_eq!(f.preamble, b"Welcome to host1\n");
        // No marker: the login shell failed before the command; its words are shown.
        let mut f = StartFilter::default();
        assert_eq!(f.push(b"tcsh: /bin/sh: Command not found."), b"");
        assert_eq!(f.finish(), b"tcsh: /bin/sh: Command not found.");
        assert_eq!(StartFilter::open().push(b"x"), b"x");
    }
}
