//! One probe's outcome, independent of how it is shown (table, JSON,
//! watch lines, the published table).

use std::fmt;
use std::time::Duration;

/// The state of one target after a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// The probe succeeded within the deadline.
    Up,
    /// The probe failed; the error is in the detail.
    Down,
    /// The deadline passed: the probe was cancelled, or abandoned if it is
    /// stuck in the kernel.
    Timeout,
}

impl State {
    /// `up`, `down` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Timeout => "timeout",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The target as the user named it.
    pub target: String,
    /// `path`, `block`, `tur`, `tcp` or `unix`.
    pub kind: &'static str,
    /// Up, down or timeout.
    pub state: State,
    /// How long the probe took; `None` for a timeout (or a probe that
    /// never ran).
    pub latency: Option<Duration>,
    /// The error for `down`, what happened for `timeout`, a note for `up`.
    pub detail: String,
}

impl Report {
    /// The JSON object of `--json`: `target`, `kind`, `state`,
    /// `latency_ms` (number of milliseconds, to the microsecond, or null)
    /// and `detail`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "kind": self.kind,
            "state": self.state.as_str(),
            "latency_ms": self.latency.map(|d| d.as_micros() as f64 / 1e3),
            "detail": self.detail,
        })
    }
}

/// Exit status when every target is up.
pub const EXIT_UP: u8 = 0;
/// Exit status when something is down and nothing timed out.
pub const EXIT_DOWN: u8 = 1;
/// Exit status when something timed out.
pub const EXIT_TIMEOUT: u8 = 2;

/// The exit status for a set of reports: 2 if any timed out, else 1 if
/// any is down, else 0.
pub fn exit_code(reports: &[Report]) -> u8 {
    if reports.iter().any(|r| r.state == State::Timeout) {
        EXIT_TIMEOUT
    } else if reports.iter().any(|r| r.state == State::Down) {
        EXIT_DOWN
    } else {
        EXIT_UP
    }
}
