//! The state of the `watch` loop as its users see it: a copy taken after
//! each turn of the loop ([`crate::cmd::watch::Hooks::observe`]), from
//! which the exporter's pages and the textfile are rendered. Times are
//! kept as instants, so a page rendered later (a scrape between two
//! turns) computes "how long hung" at its own time.

use crate::fsstats::FsStats;
use crate::mounts::Mount;
use crate::report::State;
use hangsafe::runner::Metrics;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The loop's state after one turn.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    /// Rounds started so far.
    pub round: u64,
    /// One row per target, in the loop's order.
    pub rows: Vec<Row>,
    /// The probe pool's counters.
    pub pool: Metrics,
}

/// One target.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// The target as named.
    pub target: String,
    /// Its kind (`path`, `block`, ...).
    pub kind: &'static str,
    /// Its last state (`pending` before the first decided probe).
    pub state: State,
    /// The last probe's latency, if it answered.
    pub latency: Option<Duration>,
    /// The last result's detail.
    pub detail: String,
    /// Extra labels (configuration file).
    pub labels: BTreeMap<String, String>,
    /// The mount the target is on, for filesystem targets.
    pub mount: Option<Mount>,
    /// What the last decided probe's statfs found.
    pub fs: Option<FsStats>,
    /// A probe that timed out and has not returned.
    pub hung: Option<ProbeRow>,
    /// A probe in flight (within its deadline).
    pub probing: Option<ProbeRow>,
}

/// A probe not over: its deadline and the phase it was last seen in.
#[derive(Clone, Debug)]
pub(crate) struct ProbeRow {
    /// The probe's number in this loop.
    pub id: u64,
    /// When its time was up.
    pub deadline: Instant,
    /// The phase it entered last, and when.
    pub phase: Option<(String, Instant)>,
}

impl Row {
    /// How long the hung probe has run past its deadline at `now` (zero
    /// if none is hung).
    pub(crate) fn hung_for(&self, now: Instant) -> Duration {
        self.hung.as_ref().map_or(Duration::ZERO, |h| {
            now.saturating_duration_since(h.deadline)
        })
    }

    /// The phase of its hung probe, if any.
    pub(crate) fn hung_phase(&self) -> Option<&str> {
        self.hung
            .as_ref()
            .and_then(|h| h.phase.as_ref())
            .map(|(p, _)| p.as_str())
    }
}
