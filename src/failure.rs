//! Failures as values: what went wrong on which hosts, carried from the SSH layer through the
//! recipe (where a recipe can catch and read it) to the exit code. Never classified by text.

use std::fmt;

use serde::Serialize;

use crate::exit;
use crate::host_text::HostText;

/// What kind of failure. A recipe reads it as `err.kind` (the snake_case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A remote command failed: non-zero status, a signal, no exit status, a timeout, stopped.
    CommandFailed,
    /// The connection died while a command ran; the command may have partly run.
    ConnectionLost,
    /// The host could not be reached or refused us (connect, handshake, authentication).
    Unreachable,
    /// The host's key was refused (unknown under `StrictHostKeyChecking yes`, changed, revoked).
    HostKeyRefused,
    /// A configuration error: the ssh config, a route (`ProxyJump`, `via`, `-J`).
    Config,
    /// Ctrl-C, SIGTERM or a watch-mode cancel.
    Interrupted,
    /// The recipe is wrong (a Rhai error, an unknown role ...).
    Recipe,
    /// The recipe declared the step failed (`fail(message)`).
    Failed,
}

impl Kind {
    /// The kind a recipe names (`unreachable` ...): the inverse of [`Kind::name`].
    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::CommandFailed,
            Kind::ConnectionLost,
            Kind::Unreachable,
            Kind::HostKeyRefused,
            Kind::Config,
            Kind::Interrupted,
            Kind::Recipe,
            Kind::Failed,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// The name a recipe sees (`command_failed` ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::CommandFailed => "command_failed",
            Kind::ConnectionLost => "connection_lost",
            Kind::Unreachable => "unreachable",
            Kind::HostKeyRefused => "host_key_refused",
            Kind::Config => "config",
            Kind::Interrupted => "interrupted",
            Kind::Recipe => "recipe",
            Kind::Failed => "failed",
        }
    }

    /// The process exit code for this kind (README's table).
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::CommandFailed | Kind::ConnectionLost | Kind::Failed => exit::COMMAND_FAILED,
            Kind::Unreachable | Kind::HostKeyRefused => exit::UNREACHABLE,
            Kind::Config => exit::USAGE,
            Kind::Interrupted => exit::INTERRUPTED,
            Kind::Recipe => exit::RECIPE,
        }
    }

    /// Which of two kinds decides a failure made of both: an interrupt, then a configuration
    /// error, then a recipe error, then a host that could not be reached, then the rest.
    fn rank(self) -> u8 {
        match self {
            Kind::Interrupted => 6,
            Kind::Config => 5,
            Kind::Recipe => 4,
            Kind::Unreachable | Kind::HostKeyRefused => 3,
            Kind::ConnectionLost => 2,
            Kind::CommandFailed | Kind::Failed => 1,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One host's part of a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFailure {
    /// The host's name.
    pub host: String,
    /// What went wrong there.
    pub kind: Kind,
    /// The full text: host, command, exit status, the tail of stderr, a hint; where tether
    /// named the host and its durations marked, for folding.
    pub message: HostText,
}

/// A host that did not get to (or past) its work because of something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRun {
    /// The host's name.
    pub host: String,
    /// Why (`stopped before \`cmd\`: web1 failed`, `not started: an earlier host failed`).
    pub reason: String,
    /// Whether it had started its work of the step (then it was stopped early; else it was
    /// not started at all).
    pub started: bool,
}

/// A failure of one step: every host that failed and every host stopped early, in host order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The deciding kind (see [`Kind`]'s ranking).
    pub kind: Kind,
    /// The hosts that failed.
    pub failed: Vec<HostFailure>,
    /// The hosts stopped early or not started.
    pub not_run: Vec<NotRun>,
    /// How many hosts the step had (for `N of M hosts failed`); 0 when not about hosts.
    pub total: usize,
    /// A failure not about hosts (`fail()` outside `on`, an interrupt, a recipe error).
    pub detail: Option<String>,
    /// For a failed host whose closure's own `on` failed: that host and the hosts that failed
    /// there (what the recipe reads as `err.hosts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub within: Vec<(String, Vec<String>)>,
    /// For each host a failed host's closure's own `on` named (failed, stopped early or not
    /// started there, at any depth: see [`Failure::named`]), why (what [`Failure::reason`]
    /// gives for it).
    #[serde(skip)]
    pub within_reasons: Vec<(String, String)>,
    /// The innermost task it happened in, once known.
    pub task: Option<String>,
    /// The hook whose closure it happened in (`after("deploy:started")`), once known: such a
    /// closure runs inside the task that reached the hooked task, which `task` names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Where in the recipe (`deploy.rhai:12:5`), once known.
    pub at: Option<String>,
    /// Each host's part was printed on stdout already (`tether run`'s summary): where stderr
    /// is read with stdout, the error says its [`headline`](Failure::headline) alone (stop 42
    /// tester t45: every failure was said twice).
    #[serde(skip)]
    pub shown: bool,
}

impl Failure {
    /// A failure with a message and no hosts.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            failed: Vec::new(),
            not_run: Vec::new(),
            total: 0,
            detail: Some(detail.into()),
            within: Vec::new(),
            within_reasons: Vec::new(),
            task: None,
            hook: None,
            at: None,
            shown: false,
        }
    }

    /// Ctrl-C (or a cancel) stopped the step.
    pub fn interrupted() -> Self {
        Failure::new(Kind::Interrupted, "interrupted")
    }

    /// This failure as an interrupt that came during it leaves it: the exit code the
    /// interrupt's, the hosts that failed on their own named with why (`interrupted; 2 of 4
    /// hosts failed`), those the interrupt itself stopped (and those not run) left to it.
    pub fn under_interrupt(mut self) -> Self {
        self.failed.retain(|f| f.kind != Kind::Interrupted);
        if self.failed.is_empty() {
            return Failure::interrupted();
        }
        self.not_run.clear();
        self.kind = Kind::Interrupted;
        self
    }

    /// One host's failure.
    pub fn host(host: &str, kind: Kind, message: impl Into<HostText>) -> Self {
        Failure::hosts(
            vec![HostFailure {
                host: host.to_string(),
                kind,
                message: message.into(),
            }],
            Vec::new(),
            1,
        )
    }

    /// The failure of a step over `total` hosts; `None` when nothing failed.
    pub fn hosts(failed: Vec<HostFailure>, not_run: Vec<NotRun>, total: usize) -> Self {
        let kind = failed
            .iter()
            .map(|f| f.kind)
            .max_by_key(|k| k.rank())
            .unwrap_or(Kind::CommandFailed);
        Failure {
            kind,
            failed,
            not_run,
            total,
            detail: None,
            within: Vec::new(),
            within_reasons: Vec::new(),
            task: None,
            hook: None,
            at: None,
            shown: false,
        }
    }

    /// Folds the failures of a step's hosts (each from one host's closure, possibly itself a
    /// step of several hosts) into one, in the order given.
    pub fn merge(parts: Vec<Failure>, not_run: Vec<NotRun>, total: usize) -> Self {
        let mut failed = Vec::new();
        let mut others = Vec::new();
        let mut kind = None::<Kind>;
        let mut nested_not_run = Vec::new();
        let mut within = Vec::new();
        let mut within_reasons = Vec::new();
        // Where every part failed, when that is one place (a command of the closure all its
        // hosts ran), with the task or hook it is in (a task the closures invoked: stop 50
        // tester t71): the step's place too; else the caller's (the `on` call).
        let place = |p: &Failure| (p.at.clone(), p.task.clone(), p.hook.clone());
        let mut places = parts.iter().map(place);
        let first = places.next().filter(|(at, _, _)| at.is_some());
        let (at, task, hook) = first
            .filter(|first| places.all(|p| p == *first))
            .unwrap_or_default();
        for p in parts {
            if kind.is_none_or(|k| p.kind.rank() > k.rank()) {
                kind = Some(p.kind);
            }
            if p.failed.is_empty() {
                others.extend(p.detail);
            }
            failed.extend(p.failed);
            nested_not_run.extend(p.not_run);
            within.extend(p.within);
            within_reasons.extend(p.within_reasons);
        }
        let mut f = Failure::hosts(failed, not_run, total);
        f.within = within;
        f.within_reasons = within_reasons;
        f.at = at;
        f.task = task;
        f.hook = hook;
        f.not_run.extend(nested_not_run);
        if let Some(k) = kind {
            f.kind = k;
        }
        if !others.is_empty() {
            f.detail = Some(others.join("\n"));
        }
        f
    }

    /// Replaces every registered secret in every text of the failure with the mask, so that
    /// a recipe that catches it cannot print one.
    pub fn mask(&mut self) {
        fn m(s: &mut String) {
            if let std::borrow::Cow::Owned(masked) = crate::secret::mask(s) {
                *s = masked;
            }
        }
        if !crate::secret::any() {
            return;
        }
        self.failed.iter_mut().for_each(|f| f.message.mask());
        self.not_run.iter_mut().for_each(|n| m(&mut n.reason));
        if let Some(d) = &mut self.detail {
            m(d);
        }
    }

    /// The host names that failed, in order.
    pub fn host_names(&self) -> Vec<String> {
        self.failed.iter().map(|f| f.host.clone()).collect()
    }

    /// Every host it has a reason for (see [`Failure::reason`]), in order, each once: those
    /// that failed, those stopped early or not started, and those named inside their
    /// closures, however deep.
    pub fn named(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let hosts = self.failed.iter().map(|f| &f.host);
        let hosts = hosts
            .chain(self.not_run.iter().map(|n| &n.host))
            .chain(self.within_reasons.iter().map(|(h, _)| h));
        for h in hosts {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }

    /// Where it failed, in order, each name once: the hosts that failed, a host whose closure's
    /// own `on` failed replaced by the hosts that failed there (`err.hosts`).
    pub fn culprits(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.failed {
            let inner = self.within.iter().find(|(h, _)| *h == f.host);
            for h in inner.map_or(std::slice::from_ref(&f.host), |(_, hs)| hs.as_slice()) {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }

    /// Why `host` failed or did not run, without the count of hosts and without `HOST: ` (what
    /// `err.reason(host)` gives a recipe: a line under that host's name). A host named inside
    /// another host's closure (failed, stopped early or not started there, however deep) has
    /// its own text there (stop 67 tester t114: it had the text of the host whose closure it
    /// was, `1 of 1 host failed` and its own indented; tester t116: a host in the middle of
    /// three, and those stopped or not started, had ""); a host the failure does not name, "".
    pub fn reason(&self, host: &str) -> String {
        if let Some(f) = self.failed.iter().find(|f| f.host == host) {
            return f.message.after_host(host);
        }
        if let Some(n) = self.not_run.iter().find(|n| n.host == host) {
            return n.reason.clone();
        }
        self.within_reasons
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, reason)| reason.clone())
            .unwrap_or_default()
    }

    /// The message without the task and position (what `err.message` gives a recipe).
    pub fn message(&self) -> String {
        self.said().to_string()
    }

    /// The message without the task and position, where tether named each host and its
    /// durations marked (see [`HostText`]): a host's failure that holds this one's text
    /// folds by it.
    pub fn said(&self) -> HostText {
        let mut out = HostText::new().text(&self.headline());
        for f in &self.failed {
            out.push_str("\n");
            out = out.then(f.message.clone());
        }
        for n in &self.not_run {
            out = out.text("\n").host(&n.host).text(": ").text(&n.reason);
        }
        out.text(&self.tail())
    }

    /// The message with the task and position, hosts that failed the same way folded into one
    /// entry headed by their set (`web[01-28]: ...`, see [`crate::host_text::fold`]), as
    /// text output prints it unless `--no-fold`.
    pub fn folded(&self) -> String {
        format!("{}{}", self.folded_message(), self.place())
    }

    /// [`Failure::message`] with hosts that failed the same way folded, as [`Failure::folded`].
    pub fn folded_message(&self) -> String {
        let mut out = self.headline();
        let failed: Vec<(&str, &HostText)> = self
            .failed
            .iter()
            .map(|f| (f.host.as_str(), &f.message))
            .collect();
        for text in crate::host_text::fold(&failed) {
            out.push('\n');
            out.push_str(&text);
        }
        let not_run: Vec<(&str, HostText)> = self
            .not_run
            .iter()
            .map(|n| {
                (
                    n.host.as_str(),
                    HostText::new().host(&n.host).text(": ").text(&n.reason),
                )
            })
            .collect();
        let not_run: Vec<(&str, &HostText)> = not_run.iter().map(|(h, t)| (*h, t)).collect();
        for text in crate::host_text::fold(&not_run) {
            out.push('\n');
            out.push_str(&text);
        }
        format!("{out}{}", self.tail())
    }

    /// `N of M hosts failed, K stopped early, J not started`, or nothing when no host failed.
    pub fn headline(&self) -> String {
        if self.failed.is_empty() && self.not_run.is_empty() {
            return String::new();
        }
        let total = self.total.max(self.failed.len() + self.not_run.len());
        let mut out = format!(
            "{}{} of {total} host{} failed",
            match self.kind {
                Kind::Interrupted => "interrupted; ",
                _ => "",
            },
            self.failed.len(),
            if total == 1 { "" } else { "s" }
        );
        let stopped = self.not_run.iter().filter(|n| n.started).count();
        if stopped > 0 {
            out.push_str(&format!(", {stopped} stopped early"));
        }
        if stopped < self.not_run.len() {
            out.push_str(&format!(", {} not started", self.not_run.len() - stopped));
        }
        out
    }

    /// The failure not about hosts, on a line of its own after the hosts' (if any).
    fn tail(&self) -> String {
        match &self.detail {
            Some(d) if self.failed.is_empty() && self.not_run.is_empty() => d.clone(),
            Some(d) => format!("\n{d}"),
            None => String::new(),
        }
    }

    /// `\n  (at FILE:LINE:COL, in the after("b") hook, in task `T`)`, or less, or nothing.
    fn place(&self) -> String {
        let parts: Vec<String> = [
            self.at.as_ref().map(|at| format!("at {at}")),
            self.hook.as_ref().map(|hook| format!("in the {hook} hook")),
            self.task.as_ref().map(|task| format!("in task `{task}`")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            return String::new();
        }
        format!("\n  ({})", parts.join(", "))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.message(), self.place())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(host: &str, kind: Kind) -> HostFailure {
        HostFailure {
            host: host.into(),
            kind,
            message: HostText::new().host(host).text(": broke"),
        }
    }

    #[test]
    fn names_every_host_in_order_and_ranks_kinds() {
        let f = Failure::hosts(
            vec![
                hf("web1", Kind::CommandFailed),
                hf("web3", Kind::Unreachable),
            ],
            vec![
                NotRun {
                    host: "web4".into(),
                    reason: "stopped before `b`: web1 failed".into(),
                    started: true,
                },
                NotRun {
                    host: "web5".into(),
                    reason: "not started: an earlier host or group of this step failed".into(),
                    started: false,
                },
            ],
            5,
        );
        assert_eq!(f.kind, Kind::Unreachable);
        assert_eq!(f.exit_code(), 3);
        assert_eq!(
            f.message(),
            "2 of 5 hosts failed, 1 stopped early, 1 not started\nweb1: broke\nweb3: broke\n\
             web4: stopped before `b`: web1 failed\n\
             web5: not started: an earlier host or group of this step failed"
        );
    }

    #[test]
    fn merge_keeps_nested_hosts_and_the_deciding_kind() {
        let a = Failure::host("a", Kind::CommandFailed, "a: x");
        let b = Failure::new(Kind::Config, "a bad ProxyJump");
        let m = Failure::merge(vec![a, b], Vec::new(), 2);
        assert_eq!(m.kind, Kind::Config);
        assert_eq!(m.host_names(), ["a"]);
        assert_eq!(m.message(), "1 of 2 hosts failed\na: x\na bad ProxyJump");
    }

    #[test]
    fn a_hosts_reason_is_its_own_text_without_the_count() {
        let f = Failure::merge(
            vec![
                Failure::host(
                    "a",
                    Kind::CommandFailed,
                    HostText::new().host("a").text(": `x` failed\n  stderr"),
                ),
                Failure::host(
                    "b",
                    Kind::Unreachable,
                    HostText::new().host("b").text(": cannot resolve b"),
                ),
            ],
            vec![NotRun {
                host: "c".into(),
                reason: "stopped before `x`: a failed".into(),
                started: false,
            }],
            3,
        );
        assert_eq!(f.reason("a"), "`x` failed\n  stderr");
        assert_eq!(f.reason("b"), "cannot resolve b");
        assert_eq!(f.reason("c"), "stopped before `x`: a failed");
        assert_eq!(f.reason("d"), "");
        // Failed inside a's closure: its own text there; a's holds it.
        let mut nested = Failure::host(
            "a",
            Kind::CommandFailed,
            HostText::new()
                .host("a")
                .text(": 1 of 1 host failed\n  x: `false` failed"),
        );
        nested.within.push(("a".into(), vec!["x".into()]));
        nested
            .within_reasons
            .push(("x".into(), "`false` failed".into()));
        let merged = Failure::merge(vec![nested], Vec::new(), 1);
        assert_eq!(merged.reason("x"), "`false` failed");
        assert_eq!(
            merged.reason("a"),
            "1 of 1 host failed\n  x: `false` failed"
        );
        assert_eq!(merged.reason("y"), "");
    }

    #[test]
    fn culprits_are_where_it_failed_each_once() {
        let mut a = Failure::host("a", Kind::CommandFailed, "a: its on failed");
        a.within.push(("a".into(), vec!["x".into(), "y".into()]));
        let mut b = Failure::host("b", Kind::CommandFailed, "b: its on failed");
        b.within.push(("b".into(), vec!["y".into()]));
        let c = Failure::host("c", Kind::CommandFailed, "c: x");
        let m = Failure::merge(vec![a, b, c], Vec::new(), 3);
        assert_eq!(m.host_names(), ["a", "b", "c"]);
        assert_eq!(m.culprits(), ["x", "y", "c"]);
    }

    #[test]
    fn folded_joins_hosts_that_failed_alike() {
        let mut failed: Vec<HostFailure> = (1..=4)
            .map(|i| hf(&format!("web{i}"), Kind::CommandFailed))
            .collect();
        failed[2].message = HostText::new().host("web3").text(": disk full");
        let not_run = ["db1", "db2"]
            .map(|h| NotRun {
                host: h.into(),
                reason: "stopped before `b`: web1 failed".into(),
                started: true,
            })
            .to_vec();
        let mut f = Failure::hosts(failed, not_run, 6);
        f.task = Some("deploy".into());
        assert_eq!(
            f.folded(),
            "4 of 6 hosts failed, 2 stopped early\nweb[1-2,4]: broke\nweb3: disk full\n\
             db[1-2]: stopped before `b`: web1 failed\n  (in task `deploy`)"
        );
        assert_eq!(f.to_string().lines().count(), 8);
    }
}
