//! The page: one self-contained HTML file (the CSS and both SVG drawings inline, no script,
//! nothing fetched: a Content-Security-Policy forbids it) with a header that says what ran,
//! when, for how long and how it ended, a legend, and the timeline.

use std::fmt::Write as _;

use super::clock::utc;
use super::model::{seconds, Run, RunOutcome};
use super::svg::{self, Layout};
use super::text::{clip, escape};

const STYLE: &str = r#"
:root { color-scheme: light; }
body { margin: 12px 16px; font: 14px/1.4 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1d2329; background: #fff; }
header h1 { font-size: 20px; margin: 0 0 4px; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; color: #fff; vertical-align: 2px; margin-left: 6px; }
.badge.ok { background: #2e9e5b; } .badge.failed { background: #d64040; }
.badge.interrupted { background: #e8a33d; } .badge.unfinished { background: #8a939c; }
dl.facts { display: flex; flex-wrap: wrap; gap: 2px 22px; margin: 4px 0; }
dl.facts div { display: flex; gap: 6px; } dl.facts dt { color: #66707a; } dl.facts dd { margin: 0; }
pre.error { background: #fdf0f0; border-left: 3px solid #d64040; padding: 6px 10px; margin: 6px 0; white-space: pre-wrap; max-height: 9em; overflow: auto; font-size: 12px; }
p.note { color: #66707a; margin: 2px 0; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 0 4px; font-size: 12px; color: #3c454e; align-items: center; }
.legend svg { vertical-align: middle; margin-right: 4px; }
.sticky { position: sticky; top: 0; background: #fff; z-index: 1; border-bottom: 1px solid #d5dae0; }
svg { display: block; max-width: 100%; height: auto; font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
.ok rect, rect.ok { fill: #2e9e5b; } .failed rect, rect.failed { fill: #d64040; }
.stopped rect, rect.stopped { fill: #e8a33d; } .unfinished rect, rect.unfinished { fill: #8a939c; }
.bl { fill: #fff; pointer-events: none; }
.task rect { stroke: #fff; stroke-width: 1; } .task.t0 rect { fill: #dbe6f5; } .task.t1 rect { fill: #c5d6ee; }
.task.failed rect { fill: #f3c4c4; } .task.unfinished rect { fill: #e1e4e8; }
.tl { font-size: 10px; fill: #1d2329; pointer-events: none; }
.ticks line { stroke: #8a939c; } .ticks text { font-size: 11px; fill: #4a535c; text-anchor: middle; }
.colhead { font-size: 11px; fill: #4a535c; text-anchor: end; } .colhead.left { text-anchor: start; }
.band.b0 { fill: #4a78c2; fill-opacity: 0.07; } .band.b1 { fill: #4a78c2; fill-opacity: 0.025; }
.band.failed { fill: #d64040; fill-opacity: 0.08; }
.grid line { stroke: #000; stroke-opacity: 0.06; }
.group rect { fill: #eef1f4; } .group text { font-size: 12px; font-weight: 600; fill: #3c454e; }
.zebra { fill: #000; fill-opacity: 0.025; }
.name { fill: #1d2329; } .count { fill: #3c454e; text-anchor: end; } .count.warn { fill: #d64040; font-weight: 700; }
.idle { stroke: #b4bcc5; stroke-width: 2; } .gone { stroke: #d64040; stroke-width: 1.5; stroke-dasharray: 3 3; }
.outage { stroke: #e4572e; stroke-width: 3; }
.hb { stroke: #1f6fd1; stroke-width: 1.5; fill: none; }
.mark line { stroke-width: 1; } .mark.reconnect path { fill: #e4572e; } .mark.reconnect line { stroke: #e4572e; }
.mark.reattach path { fill: #8e44ad; } .mark.reattach line { stroke: #8e44ad; }
.mark.learned path { fill: #1f6fd1; } .mark.learned line { stroke: none; }
.mark.lost path { stroke: #d64040; stroke-width: 2; fill: none; } .mark.lost line { stroke: none; }
.mark.stopped path { stroke: #888; stroke-width: 2; fill: none; } .mark.stopped line { stroke: none; }
.empty { fill: #66707a; font-size: 13px; }
"#;

/// The whole page for `run`, the `index`th (from 1) of `of` runs in its stream.
pub fn page(run: &Run, index: usize, of: usize) -> String {
    let layout = Layout::of(run);
    let title = title(run);
    let (badge_class, badge) = match &run.outcome {
        RunOutcome::Ok => ("ok", "ok".to_string()),
        RunOutcome::Failed {
            exit_code: Some(c), ..
        } => ("failed", format!("failed (exit {c})")),
        RunOutcome::Failed { .. } => ("failed", "failed".to_string()),
        RunOutcome::Interrupted { .. } => ("interrupted", "interrupted (exit 130)".to_string()),
        RunOutcome::Unfinished => (
            "unfinished",
            "unfinished: the stream ends first".to_string(),
        ),
    };
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tether {version}">
<title>tether: {title_text} ({badge})</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{title_text}<span class="badge {badge_class}">{badge}</span></h1>
<dl class="facts">"#,
        version = env!("CARGO_PKG_VERSION"),
        title_text = escape(&title),
        badge = escape(&badge),
    );
    let mut fact = |name: &str, value: String| {
        let _ = write!(
            s,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            escape(name),
            escape(&value)
        );
    };
    let about = &run.about;
    if let Some(r) = &about.recipe {
        fact("recipe", r.clone());
    }
    fact(
        "stage",
        about.stage.clone().unwrap_or_else(|| "none".into()),
    );
    if !about.tasks.is_empty() {
        fact("tasks", about.tasks.join(" "));
    }
    if let Some(c) = &about.command {
        fact("command", clip(c, 200).into_owned());
    }
    fact(
        "started",
        about
            .start_unix_ms
            .map(utc)
            .unwrap_or_else(|| "not recorded".into()),
    );
    fact("duration", seconds(run.duration));
    fact("hosts", run.hosts.len().to_string());
    fact("commands", run.commands().to_string());
    fact("heartbeats", run.heartbeats().to_string());
    fact("reconnects", run.reconnects().to_string());
    if run.reattaches() > 0 {
        fact("re-attaches", run.reattaches().to_string());
    }
    s.push_str("</dl>\n");
    let error = match &run.outcome {
        RunOutcome::Failed { error, .. } | RunOutcome::Interrupted { error } => error.as_deref(),
        _ => None,
    };
    if let Some(e) = error {
        let _ = writeln!(s, r#"<pre class="error">{}</pre>"#, escape(&clip(e, 4000)));
    }
    let _ = write!(
        s,
        r#"<p class="note">Hover a bar, a tick or a mark for its details. Per host, the columns on the right count its commands, heartbeats and reconnects. {which}Lines {first}–{last} of the event stream, {events} events.</p>
</header>
"#,
        which = if of > 1 {
            format!("Run {index} of {of} in the stream (<code>tether report --run N</code> picks another). ")
        } else {
            String::new()
        },
        first = run.lines.0,
        last = run.lines.1,
        events = run.events
    );
    legend(&mut s);
    let _ = write!(
        s,
        "<div class=\"sticky\">{}</div>\n{}\n</body>\n</html>\n",
        svg::axis(run, &layout),
        svg::rows(run, &layout)
    );
    s
}

/// What ran, in a few words: `deploy`, `production deploy`, `run: uptime`, `watch run 3`.
fn title(run: &Run) -> String {
    let about = &run.about;
    if let Some((n, _)) = &about.watch {
        return format!("watch run {n}");
    }
    if let Some(c) = &about.command {
        return format!("run: {}", clip(c, 80));
    }
    let mut words: Vec<&str> = about.stage.iter().map(String::as_str).collect();
    words.extend(about.tasks.iter().map(String::as_str));
    if words.is_empty() {
        return about
            .title
            .clone()
            .unwrap_or_else(|| "tether run".to_string());
    }
    words.join(" ")
}

fn legend(s: &mut String) {
    let swatch = |inner: &str| {
        format!(
            r#"<svg width="22" height="12" viewBox="0 0 22 12" aria-hidden="true">{inner}</svg>"#
        )
    };
    let items = [
        (
            swatch(r#"<rect class="ok" x="1" y="2" width="20" height="8" rx="1.5"/>"#),
            "command ok",
        ),
        (
            swatch(r#"<rect class="failed" x="1" y="2" width="20" height="8" rx="1.5"/>"#),
            "failed",
        ),
        (
            swatch(r#"<rect class="stopped" x="1" y="2" width="20" height="8" rx="1.5"/>"#),
            "stopped",
        ),
        (
            swatch(r#"<rect class="unfinished" x="1" y="2" width="20" height="8" rx="1.5"/>"#),
            "unfinished",
        ),
        (
            swatch(r#"<line class="idle" x1="1" y1="6" x2="21" y2="6"/>"#),
            "idle: connected, no command",
        ),
        (
            swatch(
                r#"<line class="idle" x1="1" y1="6" x2="21" y2="6"/><path class="hb" d="M6 1V11M16 1V11"/>"#,
            ),
            "heartbeat",
        ),
        (
            swatch(r#"<g class="mark reconnect"><path d="M6 1L16 1L11 9Z"/></g>"#),
            "reconnect",
        ),
        (
            swatch(r#"<g class="mark reattach"><path d="M11 1L16 6L11 11L6 6Z"/></g>"#),
            "re-attach",
        ),
        (
            swatch(r#"<g class="mark lost"><path d="M6 1L16 11M6 11L16 1"/></g>"#),
            "unreachable",
        ),
        (
            swatch(r#"<g class="mark stopped"><path d="M6 1L16 11M6 11L16 1"/></g>"#),
            "connecting stopped by tether",
        ),
        (
            swatch(r#"<rect class="band b0" x="0" y="0" width="22" height="12"/>"#),
            "task (hover for its name)",
        ),
    ];
    s.push_str(r#"<div class="legend">"#);
    for (icon, text) in items {
        let _ = write!(s, "<span>{icon}{text}</span>");
    }
    s.push_str("</div>\n");
}
