//! The timeline as two SVG drawings sharing one time scale: the axis (tasks as nested lanes,
//! the time ticks, the count columns' heads), which the page keeps in view while the rows
//! scroll under it, and the rows (one per host, grouped by role).
//!
//! In a row: the session as a grey idle line from its connection on, each command a bar
//! coloured by its outcome and labelled with its task, a tick for each heartbeat, and marks for
//! reconnects (with the outage before them), re-attaches, a shortened heartbeat and a lost
//! host. Leaf tasks are shaded bands across all rows. Every bar and mark has a `<title>`, the
//! tooltip a browser shows without any script. Sizes adapt to the number of hosts: rows shrink
//! from 26 to 9 px, and labels are elided (or left out) where they would not fit.

use std::fmt::Write as _;

use super::model::{Host, MarkKind, Outcome, Run};
use super::scale::Scale;
use super::text::{clip, elide_end, elide_middle, escape, fits};

/// The drawings' width in px: a 1280-px window less the page's margins and a scrollbar.
pub const WIDTH: f64 = 1232.0;
const LABEL_W: f64 = 168.0;
const CHART_X0: f64 = 176.0;
const COUNT_W: f64 = 44.0;
const CHART_X1: f64 = WIDTH - 3.0 * COUNT_W - 12.0;
const LANE_H: f64 = 16.0;
const MAX_LANES: usize = 6;
/// The rows aim to fit this height before they shrink to their minimum.
const ROWS_TARGET: f64 = 560.0;
const ROW_MAX: f64 = 26.0;
const ROW_MIN: f64 = 9.0;
/// Longest command shown in a tooltip.
const COMMAND_MAX: usize = 600;

/// Sizes derived from the run.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The time scale.
    pub scale: Scale,
    /// Height of a host row.
    pub row_h: f64,
    /// Height of a role's heading row.
    pub group_h: f64,
    /// Font size of row labels.
    pub font: f64,
    /// Task lanes drawn in the axis.
    pub lanes: usize,
}

impl Layout {
    /// The layout for `run`.
    pub fn of(run: &Run) -> Self {
        let n = run.hosts.len().max(1) as f64;
        let row_h = (ROWS_TARGET / n).floor().clamp(ROW_MIN, ROW_MAX);
        let depth = run.tasks.iter().map(|t| t.depth + 1).max().unwrap_or(0);
        Layout {
            scale: Scale::new(CHART_X0, CHART_X1 - CHART_X0, run.duration),
            row_h,
            group_h: row_h.max(16.0),
            font: (row_h - 3.0).clamp(7.5, 12.0),
            lanes: depth.min(MAX_LANES),
        }
    }

    fn axis_height(&self) -> f64 {
        6.0 + self.lanes as f64 * LANE_H + 24.0
    }
}

/// A coordinate with at most one decimal (`12`, `12.5`): small files, exact enough.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// The axis drawing: task lanes, tick labels, the count columns' heads.
pub fn axis(run: &Run, layout: &Layout) -> String {
    let h = layout.axis_height();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="axis" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="tasks and time axis">"#,
        w = n(WIDTH),
        h = n(h)
    );
    let scale = &layout.scale;
    let end = run.duration;
    // Task lanes, outermost first.
    let mut index_in_lane = vec![0usize; layout.lanes];
    for task in &run.tasks {
        if task.depth >= layout.lanes {
            continue;
        }
        let y = 6.0 + task.depth as f64 * LANE_H;
        let x = scale.x(task.start);
        let w = (scale.x(task.end.unwrap_or(end)) - x).max(1.0);
        let k = index_in_lane[task.depth];
        index_in_lane[task.depth] += 1;
        let class = match task.ok {
            Some(true) => format!("task t{}", k % 2),
            Some(false) => "task failed".into(),
            None => "task unfinished".into(),
        };
        let took = task.end.unwrap_or(end) - task.start;
        let state = match task.ok {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "unfinished where the stream ends",
        };
        let _ = write!(
            s,
            r#"<g class="{class}"><title>{name}&#10;{took} · {state}&#10;from {from} to {to}</title><rect x="{x}" y="{y}" width="{w}" height="{lh}"/>"#,
            name = escape(&task.name),
            took = super::model::seconds(took),
            from = super::model::seconds(task.start),
            to = super::model::seconds(task.end.unwrap_or(end)),
            x = n(x),
            y = n(y),
            w = n(w),
            lh = n(LANE_H - 2.0)
        );
        let room = fits(w - 6.0, 10.0);
        if room >= 4 {
            let _ = write!(
                s,
                r#"<text class="tl" x="{}" y="{}">{}</text>"#,
                n(x + 3.0),
                n(y + LANE_H - 5.5),
                escape(&elide_end(&task.name, room))
            );
        }
        s.push_str("</g>");
    }
    // Ticks.
    let base = 6.0 + layout.lanes as f64 * LANE_H;
    s.push_str(r#"<g class="ticks">"#);
    for (t, label) in scale.ticks(64.0) {
        let x = scale.x(t);
        let _ = write!(
            s,
            r#"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}"/><text x="{x}" y="{ty}">{label}</text>"#,
            x = n(x),
            y1 = n(base + 16.0),
            y2 = n(base + 24.0),
            ty = n(base + 13.0),
            label = escape(&label)
        );
    }
    s.push_str("</g>");
    for (i, head) in ["cmds", "beats", "reconn."].iter().enumerate() {
        let _ = write!(
            s,
            r#"<text class="colhead" x="{}" y="{}">{head}</text>"#,
            n(CHART_X1 + 12.0 + COUNT_W * (i as f64 + 1.0) - 4.0),
            n(base + 13.0)
        );
    }
    let _ = write!(
        s,
        r#"<text class="colhead left" x="4" y="{}">host</text>"#,
        n(base + 13.0)
    );
    s.push_str("</svg>");
    s
}

/// The rows drawing: one row per host under a heading per role.
pub fn rows(run: &Run, layout: &Layout) -> String {
    let groups = run.groups();
    let height =
        (groups.len() as f64 * layout.group_h + run.hosts.len() as f64 * layout.row_h).max(40.0);
    let scale = &layout.scale;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="rows" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="one row per host">"#,
        w = n(WIDTH),
        h = n(height)
    );
    // Leaf tasks as bands across every row, alternately shaded so that neighbours show apart.
    s.push_str(r#"<g class="bands">"#);
    let mut drawn = 0;
    for task in run.tasks.iter().filter(|t| !t.has_children) {
        let x = scale.x(task.start);
        let w = scale.x(task.end.unwrap_or(run.duration)) - x;
        if w < 0.5 {
            continue;
        }
        drawn += 1;
        let class = match task.ok {
            Some(false) => "band failed",
            _ if drawn % 2 == 1 => "band b0",
            _ => "band b1",
        };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{}" y="0" width="{}" height="{}"><title>{}</title></rect>"#,
            n(x),
            n(w),
            n(height),
            escape(&task.name)
        );
    }
    s.push_str("</g><g class=\"grid\">");
    for (t, _) in scale.ticks(64.0) {
        let x = n(scale.x(t));
        let _ = write!(s, r#"<line x1="{x}" y1="0" x2="{x}" y2="{}"/>"#, n(height));
    }
    s.push_str("</g>");
    if run.hosts.is_empty() {
        let _ = write!(
            s,
            r#"<text class="empty" x="{}" y="24">no host did anything in this run</text>"#,
            n(CHART_X0)
        );
    }
    let mut y = 0.0;
    let mut row = 0usize;
    for (roles, members) in &groups {
        let roles = if roles.is_empty() {
            "no role".to_string()
        } else {
            roles.join(", ")
        };
        let plural = if members.len() == 1 { "" } else { "s" };
        let heading = format!("{roles} · {} host{plural}", members.len());
        let _ = write!(
            s,
            r#"<g class="group"><rect x="0" y="{}" width="{}" height="{}"/><text x="4" y="{}">{}</text></g>"#,
            n(y),
            n(WIDTH),
            n(layout.group_h),
            n(y + layout.group_h / 2.0 + 4.0),
            escape(&elide_end(&heading, 120))
        );
        y += layout.group_h;
        for &i in members {
            host_row(&mut s, run, &run.hosts[i], y, row, layout);
            y += layout.row_h;
            row += 1;
        }
    }
    s.push_str("</svg>");
    s
}

fn host_row(s: &mut String, run: &Run, host: &Host, y: f64, row: usize, layout: &Layout) {
    let scale = &layout.scale;
    let h = layout.row_h;
    let cy = y + h / 2.0;
    let _ = write!(s, r#"<g class="host" data-host="{}">"#, escape(&host.name));
    if row % 2 == 1 {
        let _ = write!(
            s,
            r#"<rect class="zebra" x="0" y="{}" width="{}" height="{}"/>"#,
            n(y),
            n(WIDTH),
            n(h)
        );
    }
    // The label, with everything about the host in its tooltip.
    let roles = if host.roles.is_empty() {
        "no role".to_string()
    } else {
        format!("roles: {}", host.roles.join(", "))
    };
    let mut about = format!(
        "{}\n{roles}\n{} commands, {} heartbeats, {} reconnects",
        host.name,
        host.commands.len(),
        host.heartbeats.len(),
        host.reconnects()
    );
    if host.reattaches() > 0 {
        let _ = write!(about, ", {} re-attaches", host.reattaches());
    }
    if let Some(c) = host.connected {
        let _ = write!(about, "\nconnected at {}", super::model::seconds(c));
    }
    let _ = write!(
        s,
        r#"<text class="name" x="10" y="{}" font-size="{}"><title>{}</title>{}</text>"#,
        n(cy + layout.font * 0.35),
        n(layout.font),
        escape(&about),
        escape(&elide_middle(&host.name, fits(LABEL_W - 14.0, layout.font)))
    );
    // The session: idle from its start, gone after a loss that no reconnect undid. A host
    // that never connected and did nothing has no line at all.
    let start = host.connected.or_else(|| host.first_seen());
    let end = host.lost.unwrap_or(run.duration);
    if let Some(start) = start.filter(|s| end > *s || host.lost.is_none()) {
        let _ = write!(
            s,
            r#"<line class="idle" x1="{}" y1="{y}" x2="{}" y2="{y}"><title>{}: connected, no command running</title></line>"#,
            n(scale.x(start)),
            n(scale.x(end).max(scale.x(start) + 1.0)),
            escape(&host.name),
            y = n(cy)
        );
    }
    if let Some(lost) = host.lost {
        let _ = write!(
            s,
            r#"<line class="gone" x1="{}" y1="{y}" x2="{}" y2="{y}"><title>{} has no session from {} on</title></line>"#,
            n(scale.x(lost)),
            n(scale.x(run.duration).max(scale.x(lost) + 1.0)),
            escape(&host.name),
            super::model::seconds(lost),
            y = n(cy)
        );
    }
    for m in &host.marks {
        if let MarkKind::Reconnect { took, .. } = m.kind {
            let _ = write!(
                s,
                r#"<line class="outage" x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
                n(scale.x(m.t - took)),
                n(scale.x(m.t)),
                y = n(cy)
            );
        }
    }
    heartbeats(s, host, y, layout);
    let bar_h = (h * 0.64).max(5.0);
    let bar_y = y + (h - bar_h) / 2.0;
    for c in &host.commands {
        let x = scale.x(c.start);
        let w = (scale.x(c.end.unwrap_or(run.duration)) - x).max(1.0);
        let class = match c.outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
            Outcome::Unfinished => "unfinished",
        };
        let took = match (c.duration_ms, c.end) {
            (Some(ms), _) => super::model::seconds(ms / 1000.0),
            (None, _) => format!("{} so far", super::model::seconds(run.duration - c.start)),
        };
        let task = c.task.as_deref().unwrap_or("(no task)");
        let _ = write!(
            s,
            r#"<g class="cmd {class}"><title>{host} · {task}&#10;$ {command}&#10;{took} · {status}&#10;at {at}</title><rect x="{x}" y="{y}" width="{w}" height="{bh}" rx="1.5"/>"#,
            host = escape(&host.name),
            task = escape(task),
            command = escape(&clip(&c.command, COMMAND_MAX)),
            status = escape(&clip(&c.status, COMMAND_MAX)),
            at = super::model::seconds(c.start),
            x = n(x),
            y = n(bar_y),
            w = n(w),
            bh = n(bar_h)
        );
        let label_font = (bar_h - 4.0).min(11.0);
        let room = fits(w - 6.0, label_font);
        if c.task.is_some() && h >= 16.0 && room >= 4 {
            let _ = write!(
                s,
                r#"<text class="bl" x="{}" y="{}" font-size="{}">{}</text>"#,
                n(x + 3.0),
                n(cy + label_font * 0.35),
                n(label_font),
                escape(&elide_end(task, room))
            );
        }
        s.push_str("</g>");
    }
    for m in &host.marks {
        mark(s, host, m, y, layout);
    }
    // Counts.
    let counts = [
        (host.commands.len(), ""),
        (host.heartbeats.len(), ""),
        (
            host.reconnects(),
            if host.reconnects() > 0 { " warn" } else { "" },
        ),
    ];
    for (i, (count, warn)) in counts.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text class="count{warn}" x="{}" y="{}" font-size="{}">{count}</text>"#,
            n(CHART_X1 + 12.0 + COUNT_W * (i as f64 + 1.0) - 4.0),
            n(cy + layout.font * 0.35),
            n(layout.font)
        );
    }
    s.push_str("</g>");
}

/// A host's heartbeats: one path of ticks, with the count and round trips in its tooltip.
fn heartbeats(s: &mut String, host: &Host, y: f64, layout: &Layout) {
    if host.heartbeats.is_empty() {
        return;
    }
    let h = layout.row_h;
    let mut d = String::new();
    for hb in &host.heartbeats {
        let _ = write!(
            d,
            "M{} {}V{}",
            n(layout.scale.x(hb.t)),
            n(y + h * 0.12),
            n(y + h * 0.88)
        );
    }
    let rtts = host.heartbeats.iter().map(|b| b.rtt_ms);
    let min = rtts.clone().fold(f64::INFINITY, f64::min);
    let max = rtts.fold(0.0, f64::max);
    let probes = host.heartbeats.iter().filter(|b| b.probe).count();
    let _ = write!(
        s,
        r#"<path class="hb" d="{d}"><title>{} idle, kept alive: {} heartbeat{}, round trip {:.1}–{:.1} ms ({probes} woken by the server's probes)</title></path>"#,
        escape(&host.name),
        host.heartbeats.len(),
        if host.heartbeats.len() == 1 { "" } else { "s" },
        min,
        max
    );
}

fn mark(s: &mut String, host: &Host, m: &super::model::Mark, y: f64, layout: &Layout) {
    let x = layout.scale.x(m.t);
    let h = layout.row_h;
    let r = (h * 0.32).clamp(3.0, 7.0);
    let cy = y + h / 2.0;
    let (class, what, shape) = match &m.kind {
        MarkKind::Reconnect { took, while_idle } => (
            "reconnect",
            format!(
                "reconnected {} (took {})",
                if *while_idle {
                    "while idle"
                } else {
                    "before a command"
                },
                super::model::seconds(*took)
            ),
            format!(
                "M{} {}L{} {}L{} {}Z",
                n(x - r),
                n(y + 1.0),
                n(x + r),
                n(y + 1.0),
                n(x),
                n(y + 1.0 + r * 1.6)
            ),
        ),
        MarkKind::Reattach => (
            "reattach",
            "re-attached".to_string(),
            format!(
                "M{} {}L{} {}L{} {}L{} {}Z",
                n(x),
                n(cy - r),
                n(x + r),
                n(cy),
                n(x),
                n(cy + r),
                n(x - r),
                n(cy)
            ),
        ),
        MarkKind::Learned => (
            "learned",
            "heartbeat shortened".to_string(),
            format!(
                "M{} {}L{} {}L{} {}Z",
                n(x - r * 0.8),
                n(y + h - 1.0),
                n(x + r * 0.8),
                n(y + h - 1.0),
                n(x),
                n(y + h - 1.0 - r * 1.4)
            ),
        ),
        MarkKind::Unreachable | MarkKind::ConnectFailed | MarkKind::ConnectStopped => (
            match m.kind {
                MarkKind::ConnectStopped => "stopped",
                _ => "lost",
            },
            match m.kind {
                MarkKind::Unreachable => "no session from here on".to_string(),
                MarkKind::ConnectStopped => "connecting stopped by tether".to_string(),
                _ => "could not connect".to_string(),
            },
            format!(
                "M{a} {b}L{c} {d}M{a} {d}L{c} {b}",
                a = n(x - r),
                b = n(cy - r),
                c = n(x + r),
                d = n(cy + r)
            ),
        ),
    };
    let _ = write!(
        s,
        r#"<g class="mark {class}"><title>{host}: {what} at {at}&#10;{detail}</title><line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}"/><path d="{shape}"/></g>"#,
        host = escape(&host.name),
        what = escape(&what),
        at = super::model::seconds(m.t),
        detail = escape(&clip(&m.detail, COMMAND_MAX)),
        x = n(x),
        y1 = n(y + 1.0),
        y2 = n(y + h - 1.0)
    );
}
