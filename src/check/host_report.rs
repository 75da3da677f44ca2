//! One host's `tether check` report: where its settings came from, what they are, what they
//! mean for its heartbeat, and where it counts in the check's verdict.

use std::time::Duration;

use super::rules::{Finding, Level};
use crate::failure::Kind;
use crate::host_text::HostText;
use crate::sshd::settings::ServerSettings;

/// Where the settings of one host came from and what they are.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// Host name.
    pub host: String,
    /// How the settings were read (`sshd -T -f ...` or the files parsed).
    pub source: String,
    /// [`source`](Self::source) without what differs from machine to machine however alike
    /// they are (the serving sshd's pid): what the `read with` line of hosts that read alike
    /// says (stop 51 tester t76: one line per host, each with its own pid, on any fleet).
    pub source_shared: String,
    /// Notes on the way (listener not found, sshd -T failed ...).
    pub notes: Vec<String>,
    /// The settings, if they could be read.
    pub settings: Option<ServerSettings>,
    /// The conclusions.
    pub findings: Vec<Finding>,
    /// Config files (or `Include` globs) the login could not read: what they set is unknown.
    pub unreadable: Vec<String>,
    /// The effective heartbeat for this host.
    pub heartbeat: Option<Duration>,
    /// Unreachable or failed (the error text).
    pub error: Option<HostText>,
    /// What kind of failure `error` is.
    pub error_kind: Option<Kind>,
}

impl HostReport {
    /// The report of `host`, with `heartbeat`, before anything was read.
    pub(super) fn new(host: &str, heartbeat: Option<Duration>) -> Self {
        HostReport {
            host: host.to_string(),
            source: String::new(),
            source_shared: String::new(),
            notes: Vec::new(),
            settings: None,
            findings: Vec::new(),
            unreadable: Vec::new(),
            heartbeat,
            error: None,
            error_kind: None,
        }
    }

    /// Whether the host could not be reached or refused us.
    pub fn unreachable(&self) -> bool {
        matches!(
            self.error_kind,
            Some(Kind::Unreachable | Kind::HostKeyRefused)
        )
    }

    /// Whether a warning applies (or the settings are unknown).
    pub fn at_risk(&self) -> bool {
        self.error.is_some() || self.findings.iter().any(|f| f.level == Level::Warning)
    }

    /// Whether it is at risk and was checked: reached, its configuration right, not stopped
    /// by an interrupt (so counted apart from unreachable, misconfigured and unchecked hosts).
    pub fn warned(&self) -> bool {
        self.at_risk()
            && !self.unreachable()
            && !self.unchecked()
            && self.error_kind != Some(Kind::Config)
    }

    /// Whether an interrupt stopped its check (or its connection) before it said anything.
    pub fn unchecked(&self) -> bool {
        self.error_kind == Some(Kind::Interrupted)
    }
}

/// The hosts of `reports` that cannot be tried (a configuration error), that could not be
/// reached, the others at risk (a warning applies, or their settings could not be read), and
/// those an interrupt left unchecked: each host in one of them at most.
pub(super) fn categories(reports: &[HostReport]) -> [Vec<&HostReport>; 4] {
    let mut out: [Vec<&HostReport>; 4] = Default::default();
    for r in reports {
        if r.error_kind == Some(Kind::Config) {
            out[0].push(r);
        } else if r.unchecked() {
            out[3].push(r);
        } else if r.unreachable() {
            out[1].push(r);
        } else if r.warned() {
            out[2].push(r);
        }
    }
    out
}
