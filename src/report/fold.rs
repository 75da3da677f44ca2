//! Folded output: the same line from many hosts printed once, headed by the set of hosts that
//! printed it (`web[01-40,42] | done`, ClusterShell's nodeset notation), while a line only some
//! hosts print stands out under their own names. A line waits [`WINDOW`] for the other hosts'
//! copies, and while they keep coming, [`WINDOW`] after the latest, [`MOST`] at most, so output
//! still streams; each host's lines keep their order.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Stream;

/// Which of a host's lines a line is: its command's stdout (`|`) or stderr (`!`), or tether's
/// own about the host (`~`: a reconnect, a command stopped on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Stdout,
    Stderr,
    Tether,
}

impl From<Stream> for Lane {
    fn from(stream: Stream) -> Lane {
        match stream {
            Stream::Stdout => Lane::Stdout,
            Stream::Stderr => Lane::Stderr,
        }
    }
}

/// How long a line waits for the same line from other hosts. Longer than the supervisor's
/// streaming delay (up to 0.2 s, see `ssh::supervisor`) plus a loaded machine's jitter: with
/// 200 ms, 30 hosts printing `start` at the same moment arrived split into several groups.
pub const WINDOW: Duration = Duration::from_millis(500);

/// How long a line waits at most while copies keep coming within [`WINDOW`] of each other:
/// hosts that start a command seconds apart (a large fleet connects over seconds; sshd's
/// `MaxStartups` paces one server's handshakes) print the same line seconds apart (stop 61
/// tester t103: `echo same` on 100 hosts came out as 4 lines, on 500 as 27).
pub const MOST: Duration = Duration::from_secs(5);

/// One line and the hosts that printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// stdout, stderr or tether's.
    pub lane: Lane,
    /// The line.
    pub text: String,
    /// The hosts, in the order their copies arrived.
    pub hosts: Vec<Arc<str>>,
    /// The same hosts, asked whether a host is one for every copy that comes (a linear
    /// search there made a line of 30,000 hosts take seconds).
    members: HashSet<Arc<str>>,
    opened: Instant,
    /// When its latest copy came.
    joined: Instant,
    /// Its place in an order of the pending groups that every `before` edge keeps (an edge
    /// goes from a lower `ord` to a higher one): a group of a higher `ord` never precedes
    /// one of a lower, so most questions of order are answered without a search.
    ord: u64,
    /// Pending groups that must be printed before this one: each holds a host's line that
    /// came before this group's line of the same host.
    before: Vec<u64>,
    /// Pending groups that must be printed after this one.
    after: Vec<u64>,
}

impl Group {
    /// When its wait is over: [`WINDOW`] after its latest copy, [`MOST`] after its first at
    /// the latest.
    fn due(&self) -> Instant {
        (self.joined + WINDOW).min(self.opened + MOST)
    }
}

/// The lines waiting to be printed. Groups form an order per host (a host's lines on stdout
/// and stderr are printed in the order they arrived, and tether's own); a copy joins the
/// oldest waiting group of its line that keeps
/// every host's order, and groups are printed oldest first among those whose earlier lines are
/// out. So `web07`, which printed `FAILED` where the others printed `ok`, still joins the
/// others' `end`, printed after both.
#[derive(Debug, Default)]
pub struct Fold {
    /// By sequence number: oldest first.
    pending: Pending,
    /// The pending groups no other pending group must precede, oldest first.
    free: BTreeSet<u64>,
    /// The waiting groups of each line, oldest first.
    by_line: HashMap<(Lane, String), Vec<u64>>,
    /// Per host, the group its last line of a command went to (stdout and stderr together:
    /// a host's stderr line printed after its later stdout one read as if it failed after
    /// `done`), and of tether's own.
    last: HashMap<(Arc<str>, Lane), u64>,
    /// How many of the pending groups are of tether's own lines.
    tether: usize,
    next: u64,
}

/// The pending groups by sequence number, in a window from the oldest still pending: groups
/// are numbered as they open, one more each time, and leave mostly oldest first, so a lookup is
/// an index, where a map searched a tree (the fold holds a group a line for 500 ms: tens of
/// thousands at a few searches a line, under a command that prints much).
#[derive(Debug, Default)]
struct Pending {
    /// The sequence number of `slots[0]`.
    base: u64,
    /// `None` where a group left before older ones.
    slots: VecDeque<Option<Group>>,
    len: usize,
}

impl Pending {
    fn slot(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.base)?).ok()
    }

    fn get(&self, seq: &u64) -> Option<&Group> {
        self.slots.get(self.slot(*seq)?)?.as_ref()
    }

    fn get_mut(&mut self, seq: &u64) -> Option<&mut Group> {
        let i = self.slot(*seq)?;
        self.slots.get_mut(i)?.as_mut()
    }

    fn contains_key(&self, seq: &u64) -> bool {
        self.get(seq).is_some()
    }

    /// Adds the group numbered `seq`, the next number (see [`Fold::add`]).
    fn insert(&mut self, seq: u64, group: Group) {
        if self.slots.is_empty() {
            self.base = seq;
        }
        // Numbers are given one more each time, so `seq` is the next slot; were it not, the
        // slots between stay empty and the lookups stay right.
        while self.base + (self.slots.len() as u64) < seq {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(group));
        self.len += 1;
    }

    fn remove(&mut self, seq: &u64) -> Option<Group> {
        let i = self.slot(*seq)?;
        let group = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(group)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Fold {
    /// Takes `text` printed by `host` at `now`.
    pub fn add(&mut self, host: &Arc<str>, lane: Lane, text: &str, now: Instant) {
        // A command's two streams keep one order between them, as they arrived.
        let order = match lane {
            Lane::Tether => Lane::Tether,
            Lane::Stdout | Lane::Stderr => Lane::Stdout,
        };
        let last = self
            .last
            .get(&(host.clone(), order))
            .copied()
            .filter(|seq| self.pending.contains_key(seq));
        let key = (lane, text.to_string());
        let joined = self
            .by_line
            .get(&key)
            .filter(|_| !crate::chars::shows_escapes(text))
            .and_then(|seqs| {
                seqs.iter().copied().find(|&seq| {
                    self.pending
                        .get(&seq)
                        .is_some_and(|g| !g.members.contains(host) && now < g.due())
                        && last.is_none_or(|l| !self.reaches(seq, l))
                })
            });
        let seq = match joined {
            Some(seq) => {
                if let Some(group) = self.pending.get_mut(&seq) {
                    group.hosts.push(host.clone());
                    group.members.insert(host.clone());
                    group.joined = group.joined.max(now);
                }
                seq
            }
            None => {
                let seq = self.next;
                self.next += 1;
                self.pending.insert(
                    seq,
                    Group {
                        lane,
                        text: text.to_string(),
                        hosts: vec![host.clone()],
                        members: HashSet::from([host.clone()]),
                        opened: now,
                        joined: now,
                        ord: seq,
                        before: Vec::new(),
                        after: Vec::new(),
                    },
                );
                self.free.insert(seq);
                if lane == Lane::Tether {
                    self.tether += 1;
                }
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
                self.free.remove(&seq);
                if let Some(g) = self.pending.get_mut(&l) {
                    g.after.push(seq);
                }
                if self.ord(l) > self.ord(seq) {
                    self.reorder(l, seq);
                }
            }
        }
        self.last.insert((host.clone(), order), seq);
    }

    fn ord(&self, seq: u64) -> u64 {
        self.pending.get(&seq).map_or(0, |g| g.ord)
    }

    /// Whether group `to` must be printed after group `from` (or is it). Only groups between
    /// the two in `ord` can be on the way.
    fn reaches(&self, from: u64, to: u64) -> bool {
        let limit = self.ord(to);
        if self.ord(from) > limit {
            return false;
        }
        let mut stack = vec![from];
        let mut seen = HashSet::new();
        while let Some(seq) = stack.pop() {
            if seq == to {
                return true;
            }
            if !seen.insert(seq) {
                continue;
            }
            if let Some(g) = self.pending.get(&seq) {
                stack.extend(g.after.iter().filter(|&&a| self.ord(a) <= limit));
            }
        }
        false
    }

    /// Restores the `ord` order after the new edge `x` before `y` where `x` came later in it
    /// (Pearce and Kelly's dynamic topological order, 2006): the groups `y` precedes down to
    /// `x`'s place and those that precede `x` down to `y`'s trade their places, keeping their
    /// own order. The edge makes no cycle (see [`Fold::add`]).
    fn reorder(&mut self, x: u64, y: u64) {
        let (low, high) = (self.ord(y), self.ord(x));
        let walk = |start: u64, next: &dyn Fn(&Group) -> &Vec<u64>| {
            let mut found = Vec::new();
            let mut stack = vec![start];
            let mut seen = HashSet::new();
            while let Some(seq) = stack.pop() {
                if !seen.insert(seq) {
                    continue;
                }
                let Some(g) = self.pending.get(&seq) else {
                    continue;
                };
                found.push(seq);
                stack.extend(
                    next(g)
                        .iter()
                        .filter(|&&n| (low..=high).contains(&self.ord(n))),
                );
            }
            found.sort_by_key(|&seq| self.ord(seq));
            found
        };
        let forward = walk(y, &|g| &g.after);
        let backward = walk(x, &|g| &g.before);
        let mut places: Vec<u64> = forward
            .iter()
            .chain(&backward)
            .map(|&s| self.ord(s))
            .collect();
        places.sort_unstable();
        for (seq, place) in backward.iter().chain(&forward).zip(places) {
            if let Some(g) = self.pending.get_mut(seq) {
                g.ord = place;
            }
        }
    }

    /// The groups whose wait is over at `now`, in print order.
    pub fn due(&mut self, now: Instant) -> Vec<Group> {
        self.take(|g| now >= g.due())
    }

    /// Every pending group, in print order: before any other line is printed, so the output
    /// keeps the order things happened in.
    pub fn drain(&mut self) -> Vec<Group> {
        self.take(|_| true)
    }

    /// Whether groups of the other kind than `tether` wait (lines of hosts' commands, or
    /// tether's own about hosts): the fold holds one kind at a time, so that output keeps the
    /// order things happened in.
    pub fn holds_other_than(&self, tether: bool) -> bool {
        match tether {
            true => self.pending.len() > self.tether,
            false => self.tether > 0,
        }
    }

    /// Whether any group waits to be printed.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// When the next group can be printed (the oldest that no pending group must precede: see
    /// [`Fold::take`]); `None` when nothing waits.
    pub fn deadline(&self) -> Option<Instant> {
        let next = self.free.first()?;
        self.pending.get(next).map(Group::due)
    }

    /// Repeatedly the oldest group that no pending group must precede, while `ready` admits
    /// it: a later group waits behind it, also when its own wait is over (the oldest may wait
    /// longer while its copies keep coming), so lines come out in the order they opened.
    fn take(&mut self, ready: impl Fn(&Group) -> bool) -> Vec<Group> {
        let mut out = Vec::new();
        while let Some(&seq) = self.free.first() {
            if !self.pending.get(&seq).is_some_and(&ready) {
                break;
            }
            self.free.remove(&seq);
            let Some(group) = self.pending.remove(&seq) else {
                break;
            };
            for a in &group.after {
                if let Some(g) = self.pending.get_mut(a) {
                    g.before.retain(|&b| b != seq);
                    if g.before.is_empty() {
                        self.free.insert(*a);
                    }
                }
            }
            if group.lane == Lane::Tether {
                self.tether -= 1;
            }
            let key = (group.lane, group.text.clone());
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

    /// The window of pending groups answers as a map would, whatever order groups leave in.
    #[test]
    fn pending_groups_are_found_by_number_whatever_leaves_first() {
        let group = |n: u64| Group {
            lane: Lane::Stdout,
            text: n.to_string(),
            hosts: vec![h("a")],
            members: HashSet::from([h("a")]),
            opened: Instant::now(),
            joined: Instant::now(),
            ord: n,
            before: Vec::new(),
            after: Vec::new(),
        };
        let mut p = Pending::default();
        let mut kept = std::collections::BTreeSet::new();
        for n in 10..40 {
            p.insert(n, group(n));
            kept.insert(n);
        }
        for n in [12, 10, 11, 30, 13, 39, 20, 14] {
            assert_eq!(p.remove(&n).map(|g| g.text), Some(n.to_string()));
            kept.remove(&n);
            assert_eq!(p.remove(&n).map(|g| g.text), None);
        }
        for n in 40..45 {
            p.insert(n, group(n));
            kept.insert(n);
        }
        for n in 0..50 {
            assert_eq!(p.contains_key(&n), kept.contains(&n), "{n}");
            assert_eq!(p.get(&n).map(|g| g.ord), kept.contains(&n).then_some(n));
        }
        assert_eq!(p.len(), kept.len());
        for n in kept.clone() {
            p.remove(&n);
        }
        assert!(p.is_empty());
        p.insert(100, group(100));
        assert_eq!(p.get(&100).map(|g| g.ord), Some(100));
        assert!(!p.contains_key(&45));
    }

    #[test]
    fn identical_lines_fold_and_differing_ones_stand_out() {
        let mut f = Fold::default();
        let t = Instant::now();
        for i in 1..=30 {
            let host = h(&format!("web{i:02}"));
            f.add(&host, Lane::Stdout, "start", t);
            let status = if i == 7 { "FAILED" } else { "ok" };
            f.add(&host, Lane::Stdout, status, t);
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
        f.add(&h("a"), Lane::Stdout, "x", t);
        f.add(&h("a"), Lane::Stdout, "y", t);
        f.add(&h("b"), Lane::Stdout, "y", t);
        f.add(&h("b"), Lane::Stdout, "x", t);
        f.add(&h("a"), Lane::Stdout, "x", t);
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
                f.add(&host, Lane::Stdout, line, t);
            }
        }
        f.add(&h("w2"), Lane::Stdout, "retry", t);
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
            f.add(&h(host), Lane::Stdout, first, t);
            f.add(&h(host), Lane::Stdout, second, t);
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
    fn lines_that_may_show_bytes_are_never_folded() {
        let t = Instant::now();
        // One host printed the byte 0xff, the other the four characters `\xff`; one a
        // zero-width space, the other `\u{200b}`: each shown alike.
        for shown in [
            "line\\xff",
            "\\x1b[2K",
            "x\\xAb",
            "a\\u{200b}b",
            "\\u{202e}",
            "end \\u{10ffff}",
        ] {
            let mut f = Fold::default();
            f.add(&h("a"), Lane::Stdout, shown, t);
            f.add(&h("b"), Lane::Stdout, shown, t);
            assert_eq!(
                lines(&f.drain()),
                [format!("a {shown}"), format!("b {shown}")]
            );
        }
        // Nothing an escape shows: folded.
        for plain in [
            "x\\y", "\\x", "\\xg1", "\\u{}", "\\u{12", "\\u200b", "\\u{zz}", "\\",
        ] {
            let mut f = Fold::default();
            f.add(&h("a"), Lane::Stdout, plain, t);
            f.add(&h("b"), Lane::Stdout, plain, t);
            assert_eq!(lines(&f.drain()), [format!("a,b {plain}")]);
        }
    }

    /// Many hosts printing many lines, some ahead of the others (as a burst arrives): every
    /// line folds into one group of all hosts, in order, and the order of the pending groups
    /// keeps the work per line small (a search per line grew with the lines waiting: 31 hosts
    /// of 1000 lines folded nothing).
    #[test]
    fn a_burst_of_many_lines_from_many_hosts_folds_whole() {
        let mut f = Fold::default();
        let t = Instant::now();
        let hosts: Vec<Arc<str>> = (1..=31).map(|i| h(&format!("web{i:02}"))).collect();
        let n = 3000;
        // The first host is all ahead, then the others by turns, a few lines each.
        for i in 0..n {
            f.add(&hosts[0], Lane::Stdout, &i.to_string(), t);
        }
        let mut next = vec![0; hosts.len()];
        while next[1..].iter().any(|&k| k < n) {
            for (k, host) in hosts.iter().enumerate().skip(1) {
                for _ in 0..(k % 4 + 1) {
                    if next[k] < n {
                        f.add(host, Lane::Stdout, &next[k].to_string(), t);
                        next[k] += 1;
                    }
                }
            }
        }
        let out = f.drain();
        assert_eq!(out.len(), n);
        for (i, g) in out.iter().enumerate() {
            assert_eq!(g.text, i.to_string());
            assert_eq!(g.hosts.len(), 31, "{}", g.text);
        }
    }

    /// Joining an older group after a newer one reorders the pending groups; every host's
    /// lines still come out in its own order.
    #[test]
    fn joins_against_the_order_keep_every_hosts_order() {
        let mut f = Fold::default();
        let t = Instant::now();
        // a: p q r ; b: r p ; c: q r p
        for (host, seq) in [("a", "pqr"), ("b", "rp"), ("c", "qrp")] {
            for line in seq.chars() {
                f.add(&h(host), Lane::Stdout, &line.to_string(), t);
            }
        }
        let out = lines(&f.drain());
        for (host, seq) in [("a", "pqr"), ("b", "rp"), ("c", "qrp")] {
            let got: String = out
                .iter()
                .filter(|l| l.split(' ').next().unwrap().contains(host))
                .map(|l| l.split(' ').nth(1).unwrap())
                .collect();
            assert_eq!(got, seq, "{host}: {out:?}");
        }
    }

    /// Copies that keep coming within [`WINDOW`] of each other fold into one line, for
    /// [`MOST`] at most; a copy after a longer pause prints again (stop 61 tester t103: hosts
    /// that started seconds apart printed one line as many).
    #[test]
    fn copies_that_keep_coming_fold_for_a_while() {
        let mut f = Fold::default();
        let t = Instant::now();
        let step = Duration::from_millis(400);
        for i in 0..10u32 {
            f.add(
                &h(&format!("web{i:02}")),
                Lane::Stdout,
                "same",
                t + step * i,
            );
            f.add(
                &h(&format!("web{i:02}")),
                Lane::Stdout,
                &format!("own {i}"),
                t + step * i,
            );
        }
        let last = t + step * 9;
        assert!(f.due(last + WINDOW - Duration::from_millis(1)).is_empty());
        assert_eq!(f.deadline(), Some(last + WINDOW));
        let out = lines(&f.due(last + WINDOW));
        assert_eq!(out[0], "web[00-09] same");
        assert_eq!(out.len(), 11, "{out:?}");

        // Copies every 400 ms for 12 s: a line at most every MOST.
        let mut f = Fold::default();
        let mut out = Vec::new();
        for i in 0..30u32 {
            let now = t + step * i;
            out.extend(lines(&f.due(now)));
            f.add(&h(&format!("n{i:02}")), Lane::Stdout, "same", now);
            assert!(f.deadline() <= Some(t + MOST * (i / 12 + 1)));
        }
        out.extend(lines(&f.drain()));
        assert_eq!(out, ["n[00-12] same", "n[13-25] same", "n[26-29] same"]);

        // A pause longer than WINDOW ends the wait: the next copy prints again.
        let mut f = Fold::default();
        f.add(&h("a1"), Lane::Stdout, "same", t);
        f.add(&h("a2"), Lane::Stdout, "same", t + step);
        assert_eq!(lines(&f.due(t + step + WINDOW)), ["a[1-2] same"]);
        f.add(&h("a3"), Lane::Stdout, "same", t + step * 3);
        assert_eq!(lines(&f.drain()), ["a3 same"]);
    }

    #[test]
    fn stdout_and_stderr_fold_apart_and_late_copies_print_again() {
        let mut f = Fold::default();
        let t = Instant::now();
        f.add(&h("w1"), Lane::Stdout, "same", t);
        f.add(&h("w2"), Lane::Stderr, "same", t);
        assert_eq!(f.deadline(), Some(t + WINDOW));
        assert_eq!(lines(&f.due(t + WINDOW)), ["w1 same", "w2 same"]);
        f.add(&h("w3"), Lane::Stdout, "same", t + WINDOW * 3);
        assert_eq!(lines(&f.drain()), ["w3 same"]);
    }

    /// A host's stderr line comes out where it arrived among its stdout lines, whatever the
    /// other hosts' lines it folds with (fresh-eyes finding, stop 28: `web[01-03] | done`
    /// was printed before `web01 ! FATAL: disk full`, which web01 printed before `done`).
    #[test]
    fn a_hosts_stdout_and_stderr_keep_their_order_between_them() {
        let mut f = Fold::default();
        let t = Instant::now();
        // web03 is done before web01 fails; web02 comes late.
        f.add(&h("web03"), Lane::Stdout, "compiling", t);
        f.add(&h("web03"), Lane::Stdout, "done", t);
        f.add(&h("web01"), Lane::Stdout, "compiling", t);
        f.add(&h("web01"), Lane::Stdout, "ERROR 2", t);
        f.add(&h("web01"), Lane::Stderr, "FATAL: disk full", t);
        f.add(&h("web01"), Lane::Stdout, "done", t);
        f.add(&h("web02"), Lane::Stdout, "compiling", t);
        f.add(&h("web02"), Lane::Stdout, "done", t);
        assert_eq!(
            lines(&f.drain()),
            [
                "web[01-03] compiling",
                "web01 ERROR 2",
                "web01 FATAL: disk full",
                "web[01-03] done"
            ]
        );
    }
}
