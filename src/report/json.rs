//! The JSON view of a run: one object per event (`{"t":..,"host":..,"type":..}`), the
//! summaries expanded to one object per host.

use std::time::Instant;

use super::state::State;
use crate::event::{Event, EventKind};

/// The JSON lines of `event`: one object, or one per host for the summaries.
pub fn json_lines(st: &State, event: &Event, started: Instant) -> Vec<String> {
    let t = event.at.saturating_duration_since(started).as_secs_f64();
    let t = (t * 1000.0).round() / 1000.0;
    match &event.kind {
        EventKind::Summary { hosts, .. } => hosts
            .iter()
            .map(|h| {
                let s = st.hosts.get(&h.host).cloned().unwrap_or_default();
                let mut v = serde_json::json!({
                    "t": t,
                    "type": "summary",
                    "heartbeats": s.heartbeats,
                    "reconnects": s.reconnects,
                    "reattaches": s.reattaches,
                });
                merge(&mut v, serde_json::to_value(h));
                v.to_string()
            })
            .chain(std::iter::once(wire(event, t)))
            .collect(),
        EventKind::RunFinished { .. } if st.dry_run => vec![wire(event, t)],
        EventKind::RunFinished { .. } => st
            .session_hosts()
            .into_iter()
            .map(|host| {
                let s = st.hosts.get(host).cloned().unwrap_or_default();
                serde_json::json!({
                    "t": t,
                    "type": "session_summary",
                    "host": host,
                    "connected": s.connected_at.is_some(),
                    "sessions": s.sessions,
                    "commands": s.commands,
                    "heartbeats": s.heartbeats,
                    "reconnects": s.reconnects,
                    "reattaches": s.reattaches,
                    "error": s.failed,
                })
                .to_string()
            })
            .chain(std::iter::once(wire(event, t)))
            .collect(),
        _ => vec![wire(event, t)],
    }
}

fn merge(into: &mut serde_json::Value, from: Result<serde_json::Value, serde_json::Error>) {
    if let (Some(into), Ok(serde_json::Value::Object(from))) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// `{"t":..,"host":..,"type":..,...}` for one event.
fn wire(event: &Event, t: f64) -> String {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        t: f64,
        #[serde(skip_serializing_if = "str::is_empty")]
        host: &'a str,
        #[serde(flatten)]
        kind: &'a EventKind,
    }
    let wire = Wire {
        t,
        host: &event.host,
        kind: &event.kind,
    };
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}
