//! Where each host of a step is in its closure, as places in one order (see [`Places`]): what
//! [`StepAbort`](super::StepAbort) waits on, and the order the hosts take turns in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar};

/// Where the hosts are in their closures, as places in one order: before its first command
/// ([`BEFORE_FIRST`]), waiting to run a local command after `n` commands
/// ([`before_command`]`(n)`), at its command `i` (waiting to start it, running it, or past it
/// in its closure's own code: [`at_command`]`(i)`), parked ([`PARKED`]). A host at place `p`
/// can no longer fail before a point whose place is at most `p`: a host may start its
/// command `i` once the hindmost place is `at_command(i)` (its own), run a local command
/// after `n` commands once it is `before_command(n)`. The places are kept in order too, so
/// that the hindmost is found at once (every waiting host looks at it after every arrival),
/// each with its host's rank (the order it came in), which decides a tie when the hosts take
/// turns (see [`StepAbort::taking_turns`](super::StepAbort::taking_turns)).
///
/// A host at its command `i` that is a nested `on` is further along as the `on` begins its
/// units (see [`StepAbort::admit`](super::StepAbort::admit)): the place is ordered by the
/// units begun next.
#[derive(Debug, Default)]
pub(super) struct Places {
    pub(super) hosts: HashMap<String, Place>,
    /// Every host by (place, units, rank).
    pub(super) order: BTreeMap<(u64, u64, usize), String>,
    /// The rank of every host that came, whether it is still there or not.
    pub(super) ranks: HashMap<String, usize>,
    /// The hosts whose closures ended at a place where others are still, by place, with their
    /// ranks (taking turns, see `Running`'s drop): they leave when the last of those does.
    pub(super) ending: HashMap<u64, Vec<(usize, Leaver)>>,
    /// The hosts whose closures ended and whose ends wait to be given, by rank (taking turns).
    pub(super) leaving: BTreeMap<usize, Leaver>,
    /// The host whose end was given and not yet taken in (see
    /// [`StepAbort::answered`](super::StepAbort::answered)).
    pub(super) answering: Option<String>,
    /// The parked hosts (taking turns): the task each waits for, and where it was.
    pub(super) parked: HashMap<String, (String, (u64, u64))>,
}

/// One host's place, the units of it begun, the units its commands before it took (see
/// [`StepAbort::consumed`](super::StepAbort::consumed)), whether its closure began (else it is
/// expected to), its rank (see [`Places`]), and what tells it its turn (see
/// [`StepAbort::taking_turns`](super::StepAbort::taking_turns)).
#[derive(Debug)]
pub(super) struct Place {
    pub(super) place: u64,
    pub(super) units: u64,
    pub(super) consumed: u64,
    pub(super) began: bool,
    pub(super) rank: usize,
    pub(super) turn: Arc<Condvar>,
}

/// The units a host has begun of a place it comes to: its first (see
/// [`StepAbort::admit`](super::StepAbort::admit)).
pub(super) const FIRST_UNIT: u64 = 1;

/// The place of a host before its first command.
pub(super) const BEFORE_FIRST: u64 = 0;
/// The place of a host waiting for another's closure (see
/// [`StepAbort::park`](super::StepAbort::park)).
pub(super) const PARKED: u64 = u64::MAX;

/// The place of a host at its command numbered `i` (from 0).
pub(super) fn at_command(i: usize) -> u64 {
    2 * i as u64 + 2
}

/// Whether `place` is at a command (see [`at_command`]).
pub(super) fn at_a_command(place: u64) -> bool {
    place != PARKED && place >= 2 && place % 2 == 0
}

/// The place of a host that started `n` commands and waits to run a local command: after
/// [`BEFORE_FIRST`] even for `n` = 0 (a host before its first command may still fail there).
pub(super) fn before_command(n: usize) -> u64 {
    2 * n as u64 + 1
}

impl Places {
    /// The hindmost place and its units, [`PARKED`] when there is no host.
    pub(super) fn hindmost(&self) -> (u64, u64) {
        self.order
            .first_key_value()
            .map_or((PARKED, 0), |(&(place, units, _), _)| (place, units))
    }

    /// The host whose turn it is (see [`StepAbort::taking_turns`](super::StepAbort::taking_turns)):
    /// the hindmost, first come of the hindmost.
    pub(super) fn leader(&self) -> Option<&Place> {
        self.order
            .first_key_value()
            .and_then(|(_, host)| self.hosts.get(host))
    }

    /// Whether a host is at `place`.
    pub(super) fn at(&self, place: u64) -> bool {
        self.order
            .range((place, 0, 0)..=(place, u64::MAX, usize::MAX))
            .next()
            .is_some()
    }

    /// Whether it is `host`'s turn; one with no place goes as it would not taking turns.
    /// Nobody's while a host that ended waits for its end to be taken in (see `Running`'s
    /// drop).
    pub(super) fn leads(&self, host: &str) -> bool {
        !self.hosts.contains_key(host)
            || (self.leaving.is_empty()
                && self.answering.is_none()
                && self
                    .order
                    .first_key_value()
                    .is_some_and(|(_, first)| first == host))
    }

    /// Moves `host` to `place`, with its first unit begun (the units it had, if it is there);
    /// the units of the command it leaves are taken (not when it parks or comes back from
    /// parking: that is no command's end).
    pub(super) fn set(&mut self, host: &str, place: u64) {
        let was = self.hosts.get(host).map(|p| p.place);
        let (began, units, consumed, rank, turn) = match self.hosts.get(host) {
            Some(p) => {
                let (old, began, consumed) = ((p.place, p.units), p.began, p.consumed);
                self.order.remove(&(old.0, old.1, p.rank));
                let left = old.0 != place && at_a_command(old.0) && place != PARKED;
                let consumed = consumed + if left { old.1 } else { 0 };
                (
                    began,
                    if old.0 == place { old.1 } else { FIRST_UNIT },
                    consumed,
                    p.rank,
                    p.turn.clone(),
                )
            }
            None => {
                let next = self.ranks.len();
                let rank = *self.ranks.entry(host.to_string()).or_insert(next);
                (false, FIRST_UNIT, 0, rank, Default::default())
            }
        };
        self.hosts.insert(
            host.to_string(),
            Place {
                place,
                units,
                consumed,
                began,
                rank,
                turn,
            },
        );
        self.order.insert((place, units, rank), host.to_string());
        if let Some(old) = was.filter(|&old| old != place) {
            self.left(old);
        }
    }

    /// `host` (which is there) has begun `units` units of its place.
    pub(super) fn set_units(&mut self, host: &str, units: u64) {
        if let Some(p) = self.hosts.get_mut(host) {
            if let Some(name) = self.order.remove(&(p.place, p.units, p.rank)) {
                self.order.insert((p.place, units, p.rank), name);
            }
            p.units = units;
        }
    }

    pub(super) fn remove(&mut self, host: &str) {
        if let Some(p) = self.hosts.remove(host) {
            self.order.remove(&(p.place, p.units, p.rank));
            self.left(p.place);
        }
    }

    /// A host left `place`: when it was the last there, the hosts whose closures ended there
    /// leave (in the same move, so that nobody's turn comes between).
    pub(super) fn left(&mut self, place: u64) {
        // Only hosts that take turns wait to end: the run looks for nobody.
        if self.ending.is_empty() || self.at(place) {
            return;
        }
        for (rank, leaver) in self.ending.remove(&place).unwrap_or_default() {
            self.leaving.insert(rank, leaver);
        }
    }
}

/// A host whose closure ended, and what tells it that it may give its end (taking turns, see
/// `Running`'s drop).
pub(super) type Leaver = (String, Arc<Condvar>);
