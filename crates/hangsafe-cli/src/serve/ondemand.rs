//! `GET /probe?target=T[&timeout=D]`: a blackbox_exporter-style probe on
//! demand, answered with its own small exposition (`probe_success`,
//! `probe_duration_seconds`, the state and, for a probe that did not
//! answer, the phase it hung in).
//!
//! The probes run on a pool of their own with the target as the runner
//! key, so a target whose previous on-demand probe is still hung gets no
//! second thread: the spawn is refused (`KeyBusy`) and the request is
//! answered at once with `probe_success 0` and the hung probe's phase.
//! Hostile requests are bounded on every axis: the query is validated
//! ([`super::query`]), the timeout saturates at [`MAX_TIMEOUT`], only the
//! targets being served are accepted unless `--probe-any`, at most
//! [`MAX_IN_FLIGHT`] requests wait for a probe at a time (more are
//! answered 503 at once), and the pool refuses new threads past its
//! abandoned-thread cap.

use super::query::{self, QueryError};
use crate::duration;
use crate::exposition;
use crate::probe::{self, Returned};
use crate::report::State;
use crate::target::Target;
use hangsafe::runner::{Builder, Metrics, Pool, SpawnError};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest timeout a request may ask for; longer ones saturate here.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests waiting for a probe at the same time, at most.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// Abandoned on-demand probe threads, at most (then spawns are refused).
const MAX_ABANDONED: usize = 64;

/// Why a `/probe` request is refused before any probe starts.
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// A malformed query (400).
    Query(QueryError),
    /// A target that does not parse, or a bad timeout (400).
    BadValue(String),
    /// A target not served, without `--probe-any` (403).
    NotAllowed(String),
    /// Too many probes in flight, or no thread (503).
    Busy(String),
}

impl ProbeError {
    /// The HTTP status of the refusal.
    pub(crate) fn status(&self) -> u16 {
        match self {
            ProbeError::Query(_) | ProbeError::BadValue(_) => 400,
            ProbeError::NotAllowed(_) => 403,
            ProbeError::Busy(_) => 503,
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Query(e) => write!(f, "{e}"),
            ProbeError::BadValue(s) | ProbeError::NotAllowed(s) | ProbeError::Busy(s) => {
                f.write_str(s)
            }
        }
    }
}

impl std::error::Error for ProbeError {}

/// The on-demand prober.
#[derive(Debug)]
pub(crate) struct OnDemand {
    pool: Pool,
    default_timeout: Duration,
    any: bool,
    allowed: Mutex<HashSet<String>>,
    /// The last probe of each target (its phase tracker).
    last: Mutex<HashMap<String, (Returned, Instant)>>,
    in_flight: Arc<AtomicUsize>,
    started: AtomicU64,
}

/// What a request asked for, validated.
#[derive(Debug)]
pub(crate) struct Request {
    target: Target,
    timeout: Duration,
}

impl OnDemand {
    /// A prober of the targets `allowed` (any target if `any`).
    pub(crate) fn new(default_timeout: Duration, any: bool, allowed: HashSet<String>) -> OnDemand {
        OnDemand {
            pool: Pool::builder()
                .name("hangsafe-probe")
                .max_abandoned(MAX_ABANDONED)
                .build(),
            default_timeout: default_timeout.min(MAX_TIMEOUT),
            any,
            allowed: Mutex::new(allowed),
            last: Mutex::new(HashMap::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            started: AtomicU64::new(0),
        }
    }

    /// Replaces the set of targets served (after a reload).
    pub(crate) fn set_allowed(&self, allowed: HashSet<String>) {
        *self.allowed.lock().unwrap_or_else(|e| e.into_inner()) = allowed;
    }

    /// Probes started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The pool's counters.
    pub(crate) fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }

    /// Validates the query string `q`.
    pub(crate) fn parse(&self, q: &str) -> Result<Request, ProbeError> {
        let p = query::parse(q, &["target", "timeout"]).map_err(ProbeError::Query)?;
        let spec = p
            .get("target")
            .ok_or(ProbeError::Query(QueryError::Missing("target")))?;
        let target = Target::parse(spec).map_err(|e| ProbeError::BadValue(e.to_string()))?;
        let timeout = match p.get("timeout") {
            None => self.default_timeout,
            Some(t) => match duration::parse(t) {
                Ok(d) if d.is_zero() => {
                    return Err(ProbeError::BadValue("timeout must not be zero".into()))
                }
                // Saturates: a longer wish gets the longest allowed.
                Ok(d) => d.min(MAX_TIMEOUT),
                Err(duration::DurationError::TooLarge) => MAX_TIMEOUT,
                Err(e) => return Err(ProbeError::BadValue(format!("timeout: {e}"))),
            },
        };
        let allowed = self.any
            || self
                .allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&target.spec);
        if !allowed {
            return Err(ProbeError::NotAllowed(format!(
                "target {:?} is not served (start serve with --probe-any to probe any target)",
                target.spec
            )));
        }
        Ok(Request { target, timeout })
    }

    /// Claims a place for a request that will wait for a probe, if one is
    /// free.
    pub(crate) fn claim(&self) -> Result<Claim, ProbeError> {
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let claim = Claim(Arc::clone(&self.in_flight));
        if n >= MAX_IN_FLIGHT {
            return Err(ProbeError::Busy(format!(
                "{MAX_IN_FLIGHT} probes are in flight already; try again later"
            )));
        }
        Ok(claim)
    }

    /// Runs the probe of `req` (or finds its previous one still hung) and
    /// returns the response body (classic text exposition).
    pub(crate) fn run(&self, req: &Request, _claim: &Claim) -> Result<String, ProbeError> {
        let spec = req.target.spec.clone();
        let (work, returned) = probe::work(req.target.clone(), req.timeout);
        let spawned = Builder::new()
            .pool(&self.pool)
            .key(spec.clone())
            .timeout(req.timeout)
            .spawn(work);
        let runner = match spawned {
            Ok(r) => r,
            Err(SpawnError::KeyBusy { .. }) => return Ok(self.still_hung(&spec)),
            Err(e) => return Err(ProbeError::Busy(format!("probe not started: {e}"))),
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.clone(), (returned.clone(), began));
        let outcome = runner.wait();
        let rep = probe::report(&req.target, outcome, req.timeout);
        let phase = (rep.state == State::Timeout)
            .then(|| returned.phase().map(|(p, _)| p.to_owned()))
            .flatten();
        Ok(body(
            rep.state,
            began.elapsed(),
            phase.as_deref(),
            Duration::ZERO,
        ))
    }

    /// The answer for a target whose previous probe has not returned.
    fn still_hung(&self, spec: &str) -> String {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (phase, since) = match last.get(spec) {
            Some((r, began)) => (r.phase().map(|(p, _)| p.to_owned()), Some(*began)),
            None => (None, None),
        };
        let hung = since.map_or(Duration::ZERO, |s| s.elapsed());
        body(State::Timeout, Duration::ZERO, phase.as_deref(), hung)
    }
}

/// A place among the [`MAX_IN_FLIGHT`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Claim(Arc<AtomicUsize>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The exposition of one on-demand probe.
fn body(state: State, took: Duration, phase: Option<&str>, hung: Duration) -> String {
    let mut reg = Registry::default();
    let g = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        reg.register(name, help, f.clone());
        f
    };
    let success = g(&mut reg, "probe_success", "Whether the probe succeeded");
    let dur = g(
        &mut reg,
        "probe_duration_seconds",
        "How long the probe took (0 if none was started)",
    );
    let st = g(
        &mut reg,
        "hangsafe_probe_state",
        "The probe's state: 1 for its state, 0 for the others",
    );
    let hung_s = g(
        &mut reg,
        "hangsafe_probe_hung_seconds",
        "How long the target's previous probe has been running, if it is still hung (0 otherwise)",
    );
    let ph = g(
        &mut reg,
        "hangsafe_probe_phase_info",
        "The phase a probe that did not answer was last seen in; always 1",
    );
    success
        .get_or_create(&vec![])
        .set(f64::from(u8::from(state == State::Up)));
    dur.get_or_create(&vec![]).set(took.as_secs_f64());
    for s in [State::Up, State::Down, State::Timeout, State::Error] {
        st.get_or_create(&vec![("state".into(), s.as_str().into())])
            .set(f64::from(u8::from(s == state)));
    }
    hung_s.get_or_create(&vec![]).set(hung.as_secs_f64());
    if state == State::Timeout {
        let p = phase.filter(|p| !p.is_empty()).unwrap_or("unknown");
        ph.get_or_create(&vec![("phase".into(), p.into())]).set(1.0);
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    exposition::classic(&out)
}
