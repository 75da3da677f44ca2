//! Taps: writers that receive every event of a run as the JSON lines `--format json` prints
//! (the same objects, serialised once by `json.rs`), whatever the format on stdout. The
//! timeline of `--timeline` is drawn from one; a run log can append them to a file.

use std::io::Write;

/// A writer of JSON lines: each event's objects, one per line, each ending in `\n`.
pub type Tap = Box<dyn Write + Send>;

/// The reporter's taps. A tap whose write fails is dropped after one warning on stderr, so a
/// full disk or a closed pipe never stops the run it records.
pub struct Taps {
    writers: Vec<(usize, Tap)>,
}

impl Taps {
    /// These taps, numbered in the order given (for warnings).
    pub fn new(taps: Vec<Tap>) -> Self {
        Taps {
            writers: taps.into_iter().enumerate().collect(),
        }
    }

    /// Whether no tap is listening (the JSON lines need not be made for them).
    pub fn is_empty(&self) -> bool {
        self.writers.is_empty()
    }

    /// Writes `lines` (JSON objects without their newline) to every tap.
    pub fn write(&mut self, lines: &[String]) {
        self.writers.retain_mut(|(n, tap)| {
            let result = lines.iter().try_for_each(|line| {
                tap.write_all(line.as_bytes())?;
                tap.write_all(b"\n")
            });
            keep(*n, result)
        });
    }

    /// Flushes every tap (at a barrier, and when the run ends).
    pub fn flush(&mut self) {
        self.writers.retain_mut(|(n, tap)| keep(*n, tap.flush()));
    }
}

fn keep(n: usize, result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            crate::errln!(
                "warning: event tap {}: {e}; it records nothing more of this run",
                n + 1
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_tap_gets_every_line_and_a_broken_one_is_dropped() {
        let a = Shared::default();
        let mut taps = Taps::new(vec![Box::new(Broken), Box::new(a.clone())]);
        taps.write(&[r#"{"type":"a"}"#.into(), r#"{"type":"b"}"#.into()]);
        assert_eq!(taps.writers.len(), 1);
        taps.write(&[r#"{"type":"c"}"#.into()]);
        taps.flush();
        assert_eq!(
            String::from_utf8(a.0.lock().unwrap().clone()).unwrap(),
            "{\"type\":\"a\"}\n{\"type\":\"b\"}\n{\"type\":\"c\"}\n"
        );
    }
}
