//! The live status line on a terminal: the task in progress with its time, the busy hosts,
//! and the idle ones with how long they have been idle and whether they are kept alive.

use std::time::Instant;

use anstyle::Style;

use super::state::{clear_status, raw, HostStats, Look, State};
use super::text::paint;
use crate::duration::format as format_duration;

pub fn draw_status(st: &mut State, look: Look) {
    let Some((step, since)) = st.tasks.last().cloned() else {
        clear_status(st, look);
        return;
    };
    let now = Instant::now();
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
        .filter(|(_, h)| !h.busy && h.connected_at.is_some())
        .collect();
    let mut line = format!("{step} {}", format_duration(now - since));
    if !busy.is_empty() {
        line.push_str(&format!(" · busy: {}", busy.join(",")));
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
            names.join(","),
            format_duration(longest)
        ));
    }
    let style = if look.dim {
        Style::new().dimmed()
    } else {
        Style::new()
    };
    raw(&format!("\r\x1b[2K{}", paint(style, &line)));
    st.status_shown = true;
}
