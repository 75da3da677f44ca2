//! The live status line on a terminal: the task in progress with its time, the busy hosts,
//! and the idle ones with how long they have been idle and whether they are kept alive.

use std::os::fd::AsRawFd as _;
use std::time::Instant;

use anstyle::Style;

use super::paint::paint;
use super::state::{clear_status, raw, HostStats, Look, State};
use super::visible::visible;
use crate::duration::format as format_duration;

pub fn draw_status(st: &mut State, look: Look) {
    match status_line(st, Instant::now()) {
        Some(line) => draw(st, look, &line),
        None => clear_status(st, look),
    }
}

/// The status line at `now`: the task in progress and its time, busy hosts, hosts whose dead
/// session is being replaced (`reconnecting: web2`: not kept alive, stop 58 tester t93), hosts
/// left without a session (`disconnected: web3`), idle ones, and the state a command drew
/// last; `None` where there is nothing to show.
fn status_line(st: &State, now: Instant) -> Option<String> {
    // The state a command drew last, over which it will draw the next (a progress line).
    let drawing = st
        .drawing
        .as_ref()
        .map(|(host, text)| format!("{host} › {}", visible(text)));
    // Without a task (`tether run`), that state is all the line shows.
    let Some((step, since)) = st.tasks.last() else {
        return drawing;
    };
    let busy: Vec<&str> = st
        .order
        .iter()
        .filter(|n| st.hosts.get(*n).is_some_and(|h| h.busy))
        .map(String::as_str)
        .collect();
    let idle: Vec<(&str, &HostStats)> = st
        .order
        .iter()
        .filter_map(|n| st.hosts.get(n).map(|h| (n.as_str(), h)))
        .filter(|(_, h)| !h.busy && !h.reconnecting && h.connected_at.is_some())
        .collect();
    let reconnecting: Vec<&str> = st
        .order
        .iter()
        .filter(|n| st.hosts.get(*n).is_some_and(|h| !h.busy && h.reconnecting))
        .map(String::as_str)
        .collect();
    // No session, and none on its way: it never connected, or its connection was lost and
    // could not be replaced (a later command may still try).
    let disconnected: Vec<&str> = st
        .order
        .iter()
        .filter(|n| {
            st.hosts.get(*n).is_some_and(|h| {
                !h.busy && !h.reconnecting && h.connected_at.is_none() && h.failed.is_some()
            })
        })
        .map(String::as_str)
        .collect();
    let mut line = format!("{step} {}", format_duration(now - *since));
    if !busy.is_empty() {
        line.push_str(&format!(" · busy: {}", crate::host_text::set(&busy)));
    }
    if !reconnecting.is_empty() {
        line.push_str(&format!(
            " · reconnecting: {}",
            crate::host_text::set(&reconnecting)
        ));
    }
    if !disconnected.is_empty() {
        line.push_str(&format!(
            " · disconnected: {}",
            crate::host_text::set(&disconnected)
        ));
    }
    if !idle.is_empty() {
        let names: Vec<&str> = idle.iter().map(|(n, _)| *n).collect();
        let longest = idle
            .iter()
            .filter_map(|(_, h)| h.idle_since)
            .map(|t| now - t)
            .max()
            .unwrap_or_default();
        let kept = if idle.iter().any(|(_, h)| h.last_heartbeat.is_some()) {
            ", kept alive"
        } else {
            ""
        };
        line.push_str(&format!(
            " · {} idle {}{kept}",
            crate::host_text::set(&names),
            format_duration(longest)
        ));
    }
    if let Some(state) = drawing {
        line.push_str(&format!(" · {state}"));
    }
    Some(line)
}

/// Draws `line` as the status line, cut to the terminal's width.
fn draw(st: &mut State, look: Look, line: &str) {
    let style = if look.dim {
        Style::new().dimmed()
    } else {
        Style::new()
    };
    let columns = crate::terminal::window_size(std::io::stdout().as_raw_fd()).map(|w| w.cols);
    let line = clamp(line, columns);
    raw(&format!("\r\x1b[2K{}", paint(style, &line)));
    st.status_shown = true;
}

/// `line` cut to fit one row of a terminal `columns` wide (None: width unknown, kept whole),
/// ending with `…` when cut: a line that wrapped would leave rows `\r\x1b[2K` cannot clear.
/// The last column stays free, as some terminals wrap on writing it.
fn clamp(line: &str, columns: Option<u16>) -> String {
    let Some(columns) = columns else {
        return line.to_string();
    };
    let room = usize::from(columns).saturating_sub(1);
    if line.chars().count() <= room {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::{clamp, status_line};
    use crate::report::state::{HostStats, State};
    use std::time::{Duration, Instant};

    /// A host whose session died and whose reconnect is under way is not said kept alive
    /// (stop 58 tester t93): it is said reconnecting until a session is back.
    #[test]
    fn a_host_reconnecting_is_not_said_kept_alive() {
        let now = Instant::now();
        let ago = |s: u64| now.checked_sub(Duration::from_secs(s)).unwrap();
        let alive = HostStats {
            connected_at: Some(ago(60)),
            idle_since: Some(ago(12)),
            last_heartbeat: Some(ago(1)),
            ..HostStats::default()
        };
        let mut st = State::default();
        st.tasks.push(("deploy:assets".into(), ago(64)));
        st.announce("web1");
        st.announce("db1");
        st.hosts.insert(
            "web1".into(),
            HostStats {
                busy: true,
                ..alive.clone()
            },
        );
        st.hosts.insert(
            "db1".into(),
            HostStats {
                reconnecting: true,
                ..alive.clone()
            },
        );
        assert_eq!(
            status_line(&st, now).unwrap(),
            "deploy:assets 1m04s · busy: web1 · reconnecting: db1"
        );
        st.hosts.insert("db1".into(), alive);
        assert_eq!(
            status_line(&st, now).unwrap(),
            "deploy:assets 1m04s · busy: web1 · db1 idle 12.0 s, kept alive"
        );
        // Its reconnects all failed (stop 59 tester t95: then it was on the line no more).
        st.hosts.insert(
            "db1".into(),
            HostStats {
                failed: Some("cannot connect".into()),
                ..HostStats::default()
            },
        );
        assert_eq!(
            status_line(&st, now).unwrap(),
            "deploy:assets 1m04s · busy: web1 · disconnected: db1"
        );
        st.tasks.clear();
        assert_eq!(status_line(&st, now), None);
        st.drawing = Some(("web1".into(), "50%".into()));
        assert_eq!(status_line(&st, now).unwrap(), "web1 › 50%");
    }

    #[test]
    fn a_long_status_line_is_cut_to_the_terminal_width() {
        let line = "deploy:assets 1m04s · busy: web[01-40] · db1,resque[1-9] idle 12s, kept alive";
        assert_eq!(clamp(line, None), line);
        assert_eq!(clamp(line, Some(200)), line);
        let cut = clamp(line, Some(20));
        assert_eq!(cut.chars().count(), 19);
        assert_eq!(cut, "deploy:assets 1m04…");
        let exact = "x".repeat(19);
        assert_eq!(clamp(&exact, Some(20)), exact);
        assert_eq!(clamp(&"x".repeat(20), Some(20)).chars().count(), 19);
        assert_eq!(clamp("abc", Some(1)), "…");
    }
}
