//! A pool driven directly (no CLI) plus every event its workers reported, for worker-level
//! tests against real sshd.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::event::{Beat, Event, EventKind};
use tether::host::HostTarget;
use tether::pool::{FanOut, HostResult, Pool};
use tether::ssh::config::{SshConfig, SYSTEM_CONFIG};
use tether::ssh::limiter::HandshakeLimiter;
use tether::ssh::policy::WorkerSettings;

/// A pool plus everything its workers reported, with times since the harness started.
pub struct Harness {
    pub pool: Arc<Pool>,
    rx: Receiver<Event>,
    pub events: Vec<(Duration, Event)>,
    started: Instant,
}

impl Harness {
    /// A pool over `hosts` of `ssh_config`, returned once every host has connected.
    pub fn new(ssh_config: &Path, settings: WorkerSettings, hosts: &[&str]) -> Harness {
        let config =
            SshConfig::load(Some(ssh_config), Path::new(SYSTEM_CONFIG)).expect("ssh config");
        let (tx, rx) = tether::sink::collector();
        let pool = Pool::new(
            config,
            settings,
            HandshakeLimiter::new(8, 8),
            tx,
            Arc::new(AtomicBool::new(false)),
        );
        let targets: Vec<HostTarget> = hosts
            .iter()
            .map(|h| HostTarget::parse(h).unwrap())
            .collect();
        pool.ensure(&targets);
        let mut h = Harness {
            pool: Arc::new(pool),
            rx,
            events: Vec::new(),
            started: Instant::now(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for host in hosts {
            while h.count(host, |k| matches!(k, EventKind::Connected { .. })) == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                match h.rx.recv_timeout(left) {
                    Ok(e) => h.record(e),
                    Err(_) => panic!("{host} did not connect\n{}", h.story()),
                }
            }
        }
        h
    }

    fn record(&mut self, e: Event) {
        let at = e.at.saturating_duration_since(self.started);
        self.events.push((at, e));
    }

    /// Collects the events that arrived so far.
    pub fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.record(e);
        }
    }

    /// Collects events until every command that started has its `Finished` event (for at most
    /// 5 s): events come through their own forwarding thread, so a command's result can
    /// arrive before the last of its events.
    pub fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.drain();
            let started = self.total(|k| matches!(k, EventKind::Started { .. }));
            let finished = self.total(|k| matches!(k, EventKind::Finished { .. }));
            let left = deadline.saturating_duration_since(Instant::now());
            if finished >= started || left.is_zero() {
                return;
            }
            if let Ok(e) = self.rx.recv_timeout(left) {
                self.record(e);
            }
        }
    }

    fn total(&self, pred: impl Fn(&EventKind) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(&e.kind)).count()
    }

    /// How many events are recorded: a mark for [`Harness::wait_for_since`].
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.events.len()
    }

    /// Waits for an event matching `pred` that arrives after this call: after an action whose
    /// events are awaited (a connection killed), [`Harness::mark`] before it and
    /// [`Harness::wait_for_since`] that mark, or an event that came while the action ran
    /// (under load, `ss -K` took longer than the reconnect it caused) is missed.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&Event) -> bool,
    ) -> Option<(Duration, Event)> {
        let mark = self.mark();
        self.wait_for_since(mark, timeout, pred)
    }

    /// Waits up to `timeout` for a heartbeat of kind `beat`; panics with the story when none
    /// comes.
    pub fn wait_for_beat(&mut self, timeout: Duration, beat: Beat) -> Event {
        let found = self.wait_for(
            timeout,
            |e| matches!(e.kind, EventKind::Heartbeat { beat: b, .. } if b == beat),
        );
        found
            .unwrap_or_else(|| panic!("no {beat:?} heartbeat within {timeout:?}\n{}", self.story()))
            .1
    }

    /// Waits for an event matching `pred` among those recorded from `mark` on and those to
    /// come; returns it with its time since the harness started.
    pub fn wait_for_since(
        &mut self,
        mark: usize,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<(Duration, Event)> {
        self.drain();
        if let Some(found) = self.events[mark..].iter().find(|(_, e)| pred(e)) {
            return Some(found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.rx.recv_timeout(left).ok()?;
            let hit = pred(&e);
            self.record(e);
            if hit {
                return self.events.last().cloned();
            }
        }
    }

    /// Collects events for `d`.
    pub fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(e) => self.record(e),
                Err(_) => std::thread::sleep(left),
            }
        }
    }

    /// Runs `command` on `hosts` and collects the events it caused.
    pub fn run(&mut self, hosts: &[&str], command: &str) -> Vec<HostResult> {
        let commands: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (h.to_string(), command.to_string()))
            .collect();
        let results = self.pool.fan_out(&commands, &FanOut::default());
        self.settle();
        results
    }

    /// Runs `command` on `host` as `how` says, while `meanwhile` runs on this thread (killing
    /// things on the host, say); the command's result. The events it caused are collected by
    /// the next [`Harness::settle`].
    pub fn run_meanwhile(
        &self,
        host: &str,
        command: &str,
        how: &FanOut,
        meanwhile: impl FnOnce(),
    ) -> HostResult {
        let pool = &self.pool;
        std::thread::scope(|scope| {
            let job =
                scope.spawn(move || pool.fan_out(&[(host.to_string(), command.to_string())], how));
            meanwhile();
            job.join().unwrap().remove(0)
        })
    }

    /// How many recorded events of `host` match `pred`.
    pub fn count(&self, host: &str, pred: impl Fn(&EventKind) -> bool) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| &*e.host == host && pred(&e.kind))
            .count()
    }

    /// How many heartbeats of kind `beat` `host` reported.
    pub fn beats(&self, host: &str, beat: Beat) -> usize {
        self.count(
            host,
            |k| matches!(k, EventKind::Heartbeat { beat: b, .. } if *b == beat),
        )
    }

    /// The events other than output, for failure messages.
    pub fn story(&self) -> String {
        self.events
            .iter()
            .filter(|(_, e)| !matches!(e.kind, EventKind::Output { .. }))
            .map(|(t, e)| format!("{:>7.3}s {:16} {:?}", t.as_secs_f64(), e.host, e.kind))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
