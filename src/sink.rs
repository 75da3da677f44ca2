//! Where events go: the reporter's channel, with the backlog of output lines that keeps
//! tether's memory bounded while the reporter is behind, and barriers that wait until it
//! has caught up.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use crate::event::{Event, EventKind};

/// What travels to the reporter: events, and barriers that are acknowledged once every
/// event sent before them has been written.
#[derive(Debug)]
pub enum Message {
    /// An event, and its place in the backlog of output lines (see [`Sink::send`]).
    Event(Event, Ticket),
    /// Acknowledge on this channel once everything before it has been written.
    Barrier(Sender<()>),
    /// Acknowledge once everything before it has been taken: written, but for folded lines
    /// still waiting for other hosts' copies (see [`Sink::sync`]).
    Sync(Sender<()>),
}

impl Message {
    /// The event, for readers that only collect events; a barrier is acknowledged at once.
    pub fn into_event(self) -> Option<Event> {
        match self {
            Message::Event(e, _) => Some(e),
            Message::Barrier(ack) | Message::Sync(ack) => {
                // The barrier's sender may have stopped waiting; nothing to do then.
                let _ = ack.send(());
                None
            }
        }
    }
}

/// A sink whose events (barriers acknowledged) arrive on a plain event channel, for readers
/// that inspect events themselves (tests, benchmarks). A forwarding thread ends when every
/// clone of the sink is gone.
pub fn collector() -> (Sink, Receiver<Event>) {
    let (sink, rx) = channel();
    let (tx, events) = mpsc::channel();
    let forward = move || {
        for message in rx {
            if let Some(e) = message.into_event() {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
    };
    // Without the thread nothing arrives; the caller's waits then time out and say so.
    let _ = std::thread::Builder::new()
        .name("events".into())
        .spawn(forward);
    (sink, events)
}

/// Where events go (the reporter's channel); every session owner holds a clone.
#[derive(Debug, Clone)]
pub struct Sink(Sender<Message>, Arc<Backlog>);

/// How many lines of output may wait for the reporter before the [`Backlog`] is full.
pub const BACKLOG_LINES: usize = 16 * 1024;

/// How many bytes of output lines may wait for the reporter before the [`Backlog`] is full.
pub const BACKLOG_BYTES: usize = 8 * 1024 * 1024;

/// The lines of output sent and not yet taken by the reader (see [`Ticket`]). While it is
/// full (past [`BACKLOG_LINES`] or [`BACKLOG_BYTES`]), the threads that read a command's
/// output read no more of it ([`Backlog::wait_for_room`]): the output waits on the host, in
/// the supervisor's spool and then in the command's writes, as under `ssh` writing to a slow
/// terminal or a paused pager, and tether's memory stays bounded.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Lines and their bytes.
    held: std::sync::Mutex<(usize, usize)>,
    taken: std::sync::Condvar,
}

impl Backlog {
    fn full(held: (usize, usize)) -> bool {
        held.0 >= BACKLOG_LINES || held.1 >= BACKLOG_BYTES
    }

    /// Whether as many lines wait as may.
    pub fn is_full(&self) -> bool {
        Self::full(*self.held.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn over_half(held: (usize, usize)) -> bool {
        held.0 > BACKLOG_LINES / 2 || held.1 > BACKLOG_BYTES / 2
    }

    /// Waits until the backlog is down to half (a reader held back then takes a burst, not a
    /// line at a time), or until `until`; whether it is.
    pub fn wait_for_room(&self, until: Instant) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while Self::over_half(*held) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = match self.taken.wait_timeout(held, left) {
                Ok((h, _)) => h,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// A line of output's place in the [`Backlog`], given back when the reader drops its
/// message (once it has written the line, or let it go); empty for other events.
#[derive(Debug)]
pub struct Ticket(Option<(Arc<Backlog>, usize)>);

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((backlog, bytes)) = self.0.take() {
            let mut held = backlog.held.lock().unwrap_or_else(|p| p.into_inner());
            let was_over = Backlog::over_half(*held);
            held.0 = held.0.saturating_sub(1);
            held.1 = held.1.saturating_sub(bytes);
            // Waiters are woken once the backlog is down to half (see `wait_for_room`), not
            // at every line taken.
            if was_over && !Backlog::over_half(*held) {
                backlog.taken.notify_all();
            }
        }
    }
}

/// A new sink and the receiving end its reporter reads.
pub fn channel() -> (Sink, Receiver<Message>) {
    let (tx, rx) = mpsc::channel();
    (Sink(tx, Arc::default()), rx)
}

impl Sink {
    /// Sends `event`, every secret in it masked (see [`crate::secret`]): whatever reaches the
    /// reporter (text, JSON, logs, the timeline) never holds one. A reporter that has gone
    /// away only means nobody is listening any more (the normal case while a process winds
    /// down), so that is not an error.
    ///
    /// A line of output counts in the sink's [`Backlog`] until the reader drops it; sending
    /// never waits (the threads that read output wait for room before they read more).
    pub fn send(&self, mut event: Event) {
        event.kind.mask();
        let ticket = match &event.kind {
            EventKind::Output { line, .. } | EventKind::LocalOutput { line, .. } => {
                let mut held = self.1.held.lock().unwrap_or_else(|p| p.into_inner());
                held.0 += 1;
                held.1 += line.len();
                Ticket(Some((self.1.clone(), line.len())))
            }
            _ => Ticket(None),
        };
        let _ = self.0.send(Message::Event(event, ticket));
    }

    /// The backlog of this sink's output lines (see [`Backlog`]).
    pub fn backlog(&self) -> Arc<Backlog> {
        self.1.clone()
    }

    /// Sends `kind` about `host`, now.
    pub fn emit(&self, host: &Arc<str>, kind: EventKind) {
        self.send(Event::now(host.clone(), kind));
    }

    /// Waits until every event sent before this call has been written (returns at once when
    /// nobody reads the events).
    pub fn barrier(&self) {
        self.wait(Message::Barrier);
    }

    /// Waits until every event sent before this call has been taken by the reader, as
    /// [`barrier`](Sink::barrier) does, except that folded lines may go on waiting for the
    /// same line from other hosts: what a host's command did is recorded (the run log
    /// written) before the recipe goes on, and a command that ends on one host does not cut
    /// the fold of the others' identical lines. Anything printed after it still comes after
    /// them.
    pub fn sync(&self) {
        self.wait(Message::Sync);
    }

    fn wait(&self, message: fn(Sender<()>) -> Message) {
        let (tx, rx) = mpsc::channel();
        if self.0.send(message(tx)).is_ok() {
            // An error means the reader is gone: nothing to wait for.
            let _ = rx.recv();
        }
    }
}
