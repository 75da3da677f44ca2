//! Folded output: the same line from many hosts printed once, headed by the set of hosts that
//! printed it (`web[01-40,42] | done`, ClusterShell's nodeset notation), while a line only some
//! hosts print stands out under their own names. A line waits at most [`WINDOW`] for the
//! other hosts' copies, so output still streams; each host's lines keep their order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Stream;

/// How long a line waits for the same line from other hosts. Longer than the supervisor's
/// streaming delay (up to 0.2 s, see `ssh::supervisor`) plus a loaded machine's jitter: with
/// 200 ms, 30 hosts printing `start` at the same moment arrived split into several groups.
pub const WINDOW: Duration = Duration::from_millis(500);

/// One line and the hosts that printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// stdout or stderr.
    pub stream: Stream,
    /// The line.
    pub text: String,
    /// The hosts, in the order their copies arrived.
    pub hosts: Vec<Arc<str>>,
    opened: Instant,
    /// Pending groups that must be printed before this one: each holds a host's line that
    /// came before this group's line of the same host.
    before: Vec<u64>,
    /// Pending groups that must be printed after this one.
    after: Vec<u64>,
}

/// The lines waiting to be printed. Groups form an order per host and stream (a host's lines
/// on stdout are printed in the order it wrote them, and on stderr); a copy joins the oldest waiting group of its line that keeps
/// every host's order, and groups are printed oldest first among those whose earlier lines are
/// out. So `web07`, which printed `FAILED` where the others printed `ok`, still joins the
/// others' `end`, printed after both.
#[derive(Debug, Default)]
pub struct Fold {
    /// By sequence number: oldest first.
    pending: BTreeMap<u64, Group>,
    /// The waiting groups of each line, oldest first.
    by_line: HashMap<(Stream, String), Vec<u64>>,
    /// Per host and stream, the group its last line went to. stdout and stderr are ordered
    /// apart: a line on one never waits for the other's (`--no-fold` keeps how they interleaved).
    last: HashMap<(Arc<str>, Stream), u64>,
    next: u64,
}

impl Fold {
    /// Takes `text` printed by `host` at `now`.
    pub fn add(&mut self, host: &Arc<str>, stream: Stream, text: &str, now: Instant) {
        let last = self
            .last
            .get(&(host.clone(), stream))
            .copied()
            .filter(|seq| self.pending.contains_key(seq));
        let key = (stream, text.to_string());
        let joined = self.by_line.get(&key).and_then(|seqs| {
            seqs.iter().copied().find(|&seq| {
                !self.pending[&seq].hosts.contains(host)
                    && last.is_none_or(|l| !self.reaches(seq, l))
            })
        });
        let seq = match joined {
            Some(seq) => {
                if let Some(group) = self.pending.get_mut(&seq) {
                    group.hosts.push(host.clone());
                }
                seq
            }
            None => {
                let seq = self.next;
                self.next += 1;
                self.pending.insert(
                    seq,
                    Group {
                        stream,
                        text: text.to_string(),
                        hosts: vec![host.clone()],
                        opened: now,
                        before: Vec::new(),
                        after: Vec::new(),
                    },
                );
                self.by_line.entry(key).or_default().push(seq);
                seq
            }
        };
        if let Some(l) = last.filter(|&l| l != seq) {
            let edge_is_new = self.pending.get_mut(&seq).is_some_and(|g| {
                !g.before.contains(&l) && {
                    g.before.push(l);
                    true
                }
            });
            if edge_is_new {
                if let Some(g) = self.pending.get_mut(&l) {
                    g.after.push(seq);
                }
            }
        }
        self.last.insert((host.clone(), stream), seq);
    }

    /// Whether group `to` must be printed after group `from` (or is it).
    fn reaches(&self, from: u64, to: u64) -> bool {
        let mut stack = vec![from];
        let mut seen = Vec::new();
        while let Some(seq) = stack.pop() {
            if seq == to {
                return true;
            }
            if seen.contains(&seq) {
                continue;
            }
            seen.push(seq);
            if let Some(g) = self.pending.get(&seq) {
                stack.extend(&g.after);
            }
        }
        false
    }

    /// The groups whose wait is over at `now`, in print order.
    pub fn due(&mut self, now: Instant) -> Vec<Group> {
        self.take(|g| now.duration_since(g.opened) >= WINDOW)
    }

    /// Every pending group, in print order: before any other line is printed, so the output
    /// keeps the order things happened in.
    pub fn drain(&mut self) -> Vec<Group> {
        self.take(|_| true)
    }

    /// Whether any group waits to be printed.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// When the oldest waiting group must be printed; `None` when nothing waits.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.values().map(|g| g.opened + WINDOW).min()
    }

    /// Repeatedly the oldest group that `ready` admits and that no pending group must precede.
    fn take(&mut self, ready: impl Fn(&Group) -> bool) -> Vec<Group> {
        let mut out = Vec::new();
        loop {
            let next = self
                .pending
                .iter()
                .find(|(_, g)| g.before.is_empty() && ready(g))
                .map(|(seq, _)| *seq);
            let Some(seq) = next else { break };
            let Some(group) = self.pending.remove(&seq) else {
                break;
            };
            for a in &group.after {
                if let Some(g) = self.pending.get_mut(a) {
                    g.before.retain(|&b| b != seq);
                }
            }
            let key = (group.stream, group.text.clone());
            if let Some(seqs) = self.by_line.get_mut(&key) {
                seqs.retain(|&s| s != seq);
                if seqs.is_empty() {
                    self.by_line.remove(&key);
                }
            }
            out.push(group);
        }
        if self.pending.is_empty() {
            self.last.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn lines(groups: &[Group]) -> Vec<String> {
        groups
            .iter()
            .map(|g| {
                let names: Vec<&str> = g.hosts.iter().map(|h| &**h).collect();
                format!("{} {}", crate::hostset::fold(&names), g.text)
            })
            .collect()
    }

    #[test]
    fn identical_lines_fold_and_differing_ones_stand_out() {
        let mut f = Fold::default();
        let t = Instant::now();
        for i in 1..=30 {
            let host = h(&format!("web{i:02}"));
            f.add(&host, Stream::Stdout, "start", t);
            let status = if i == 7 { "FAILED" } else { "ok" };
            f.add(&host, Stream::Stdout, status, t);
        }
        assert!(f.due(t).is_empty());
        assert_eq!(
            lines(&f.due(t + WINDOW)),
            ["web[01-30] start", "web[01-06,08-30] ok", "web07 FAILED"]
        );
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn a_hosts_lines_keep_their_order_when_interleaved() {
        let mut f = Fold::default();
        let t = Instant::now();
        // a: x y x ; b: y x — b's x may not join a group before b's y.
        f.add(&h("a"), Stream::Stdout, "x", t);
        f.add(&h("a"), Stream::Stdout, "y", t);
        f.add(&h("b"), Stream::Stdout, "y", t);
        f.add(&h("b"), Stream::Stdout, "x", t);
        f.add(&h("a"), Stream::Stdout, "x", t);
        assert_eq!(lines(&f.drain()), ["a x", "a,b y", "a,b x"]);
    }

    #[test]
    fn a_host_that_differed_joins_the_line_after() {
        let mut f = Fold::default();
        let t = Instant::now();
        for i in 1..=5 {
            let host = h(&format!("w{i}"));
            let status = if i == 2 { "FAILED" } else { "ok" };
            for line in ["start", status, "end"] {
                f.add(&host, Stream::Stdout, line, t);
            }
        }
        f.add(&h("w2"), Stream::Stdout, "retry", t);
        assert_eq!(
            lines(&f.drain()),
            [
                "w[1-5] start",
                "w[1,3-5] ok",
                "w2 FAILED",
                "w[1-5] end",
                "w2 retry"
            ]
        );
    }

    #[test]
    fn a_host_printing_lines_in_another_order_keeps_its_order() {
        let mut f = Fold::default();
        let t = Instant::now();
        // a: x y ; b: y x — both orders cannot share both groups.
        for (host, first, second) in [("a", "x", "y"), ("b", "y", "x")] {
            f.add(&h(host), Stream::Stdout, first, t);
            f.add(&h(host), Stream::Stdout, second, t);
        }
        let out = lines(&f.drain());
        let of = |host: &str| -> Vec<String> {
            out.iter()
                .filter(|l| l.split(' ').next().unwrap().contains(host))
                .map(|l| l.split(' ').nth(1).unwrap().to_string())
                .collect()
        };
        assert_eq!(of("a"), ["x", "y"], "{out:?}");
        assert_eq!(of("b"), ["y", "x"], "{out:?}");
        assert_eq!(out.len(), 3, "{out:?}");
    }

    #[test]
    fn stdout_and_stderr_fold_apart_and_late_copies_print_again() {
        let mut f = Fold::default();
        let t = Instant::now();
        f.add(&h("w1"), Stream::Stdout, "same", t);
        f.add(&h("w2"), Stream::Stderr, "same", t);
        assert_eq!(f.deadline(), Some(t + WINDOW));
        assert_eq!(lines(&f.due(t + WINDOW)), ["w1 same", "w2 same"]);
        f.add(&h("w3"), Stream::Stdout, "same", t + WINDOW * 3);
        assert_eq!(lines(&f.drain()), ["w3 same"]);
    }
}
