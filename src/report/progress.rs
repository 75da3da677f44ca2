//! Progress output written with `\r` (git, npm, curl, pv): a program that redraws its line
//! sends one line whose segments, split at `\r`, are its successive states. Printed as it
//! came, a terminal would return to column 0 and draw each segment over tether's host prefix;
//! a log would keep one unreadable line. So the reporter splits such a line here: the JSON
//! view, the taps (run log, timeline) and text written to a file or pipe get one line per
//! segment, and text on a terminal gets the last segment only, after the prefix. Empty
//! segments (a `\r\n` line ending, `\r` twice) are dropped; a line that is nothing but `\r`
//! shows nothing.

use crate::event::{Event, EventKind};

/// The output lines `event` stands for: itself unless it is an output line holding `\r`, then
/// one copy per non-empty segment, in order (none when every segment is empty).
pub fn segments(event: Event) -> Vec<Event> {
    let (stream, line) = match &event.kind {
        EventKind::Output { stream, line, .. } if line.contains('\r') => (*stream, line),
        EventKind::LocalOutput { stream, line } if line.contains('\r') => (*stream, line),
        _ => return vec![event],
    };
    let local = matches!(event.kind, EventKind::LocalOutput { .. });
    line.split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| Event {
            host: event.host.clone(),
            at: event.at,
            kind: if local {
                EventKind::LocalOutput {
                    stream,
                    line: s.to_string(),
                }
            } else {
                EventKind::Output {
                    stream,
                    line: s.to_string(),
                    redrawn: false,
                    pending: false,
                    cut: false,
                }
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Stream;

    fn lines(line: &str) -> Vec<String> {
        let event = Event::now(
            "web1".into(),
            EventKind::Output {
                stream: Stream::Stderr,
                line: line.into(),
                redrawn: false,
                pending: false,
                cut: false,
            },
        );
        segments(event)
            .into_iter()
            .map(|e| match e.kind {
                EventKind::Output {
                    stream: Stream::Stderr,
                    line,
                    ..
                } => line,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_line_is_split_at_carriage_returns_without_empty_segments() {
        assert_eq!(lines("a\r10%\r50%\r100%"), ["a", "10%", "50%", "100%"]);
        assert_eq!(
            lines("\rReceiving 1%\r\rReceiving 2%\r"),
            ["Receiving 1%", "Receiving 2%"]
        );
        assert_eq!(lines("done"), ["done"]);
        assert_eq!(lines(""), [""]);
        assert!(lines("\r\r").is_empty());
    }
}
