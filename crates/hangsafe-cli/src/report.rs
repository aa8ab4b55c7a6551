//! One probe's outcome, independent of how it is shown (table, JSON,
//! watch lines, the published table).

use crate::exit;
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
    /// The probe could not be started (a local limit: no thread could be
    /// created, the pool is full, ...): nothing is known about the target.
    Error,
    /// `watch` only: no result yet (its first probe is still running, or
    /// none could be started yet) when the table was taken.
    Pending,
}

impl State {
    /// `up`, `down`, `timeout`, `error` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Timeout => "timeout",
            State::Error => "error",
            State::Pending => "pending",
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
    /// Up, down, timeout, error or pending.
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

/// The exit status for a set of reports (see [`crate::exit`]): 2 if any
/// timed out, else 1 if any is down, else 3 if any could not be checked
/// (error or pending), else 0. A known failure outranks an unknown state:
/// exit 3 means "nothing found wrong, but not everything was checked".
pub fn exit_code(reports: &[Report]) -> u8 {
    let any = |s: State| reports.iter().any(|r| r.state == s);
    if any(State::Timeout) {
        exit::TIMEOUT.code
    } else if any(State::Down) {
        exit::DOWN.code
    } else if any(State::Error) || any(State::Pending) {
        exit::ERROR.code
    } else {
        exit::UP.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(states: &[State]) -> Vec<Report> {
        states
            .iter()
            .map(|&state| Report {
                target: "/".into(),
                kind: "path",
                state,
                latency: None,
                detail: String::new(),
            })
            .collect()
    }

    #[test]
    fn exit_code_precedence() {
        use State::*;
        assert_eq!(exit_code(&rows(&[])), 0);
        assert_eq!(exit_code(&rows(&[Up, Up])), 0);
        assert_eq!(exit_code(&rows(&[Up, Error])), 3);
        assert_eq!(exit_code(&rows(&[Pending, Up])), 3);
        assert_eq!(exit_code(&rows(&[Error, Down])), 1);
        assert_eq!(exit_code(&rows(&[Error, Down, Timeout])), 2);
        assert_eq!(exit_code(&rows(&[Pending, Timeout])), 2);
    }
}
