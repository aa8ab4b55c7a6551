//! The Prometheus exposition of a [`Snapshot`]: what `serve` answers on
//! `/metrics` and `watch --textfile` writes.
//!
//! The series are built with the `prometheus-client` crate (a registry of
//! gauge and counter families filled from the snapshot, encoded in the
//! OpenMetrics text format) and rendered either as OpenMetrics (a scraper
//! that asks for it) or as the classic text format 0.0.4 (everything else:
//! node_exporter's textfile collector and `promtool check metrics` read
//! only that). The two differ, for these series, only in a counter's
//! family name (OpenMetrics names the family without `_total`) and in the
//! `# EOF` line, which [`classic`] adjusts.
//!
//! Filesystem series follow node_exporter's filesystem collector: labels
//! `device` (the mount source), `mountpoint` and `fstype`; sizes are
//! statfs block counts times `f_bsize`; `device_error` is 1 when the last
//! probe's statfs failed or never returned, and then no other figure of
//! that filesystem is given. Several targets on one filesystem give one
//! set of series (the first target's).

use crate::report::State;
use crate::snapshot::{Row, Snapshot};
use hangsafe::runner::Metrics;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// The content type of the classic text format.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of OpenMetrics.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Options of the rendering.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// Also emit the filesystem series under node_exporter's names.
    pub node_compat: bool,
    /// `serve`'s on-demand probes: how many were started, and their
    /// pool's counters.
    pub ondemand: Option<(u64, Metrics)>,
}

type Labels = Vec<(String, String)>;
type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;

/// The five states a target can be in, in the order they are exported.
const STATES: [State; 5] = [
    State::Up,
    State::Down,
    State::Timeout,
    State::Error,
    State::Pending,
];

/// The filesystem series: name suffix and help.
const FS_SERIES: [(&str, &str); 7] = [
    ("size_bytes", "Filesystem size in bytes"),
    ("free_bytes", "Filesystem free space in bytes"),
    (
        "avail_bytes",
        "Filesystem space available to non-root users in bytes",
    ),
    ("files", "Filesystem total file nodes"),
    ("files_free", "Filesystem total free file nodes"),
    ("readonly", "Filesystem read-only status"),
    (
        "device_error",
        "Whether an error occurred while getting statistics for the given device",
    ),
];

/// Renders `snap` at time `now` in OpenMetrics.
pub(crate) fn openmetrics(snap: &Snapshot, now: Instant, opts: Options) -> String {
    let registry = registry(snap, now, opts);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// Renders `snap` at time `now` in the classic text format 0.0.4.
pub(crate) fn text(snap: &Snapshot, now: Instant, opts: Options) -> String {
    classic(&openmetrics(snap, now, opts))
}

/// The classic text format of an OpenMetrics text with only gauges and
/// counters: a counter family `X` becomes `X_total` in its `# HELP` and
/// `# TYPE` lines (its samples are already named so), the `# EOF` and
/// `# UNIT` lines go, and each family's samples are sorted (the crate
/// keeps them in hash order).
pub(crate) fn classic(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut samples: Vec<&str> = Vec::new();
    let mut help: Option<&str> = None;
    let flush = |out: &mut String, samples: &mut Vec<&str>| {
        samples.sort_unstable();
        for s in samples.drain(..) {
            out.push_str(s);
            out.push('\n');
        }
    };
    for line in om.lines() {
        if !line.starts_with('#') {
            samples.push(line);
            continue;
        }
        flush(&mut out, &mut samples);
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(h) = help.take() {
                let text = h.strip_prefix("# HELP ").and_then(|r| r.split_once(' '));
                out.push_str(&format!("# HELP {name} {}\n", text.map_or("", |(_, t)| t)));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    flush(&mut out, &mut samples);
    out
}

/// The labels of `row`: target, kind, then the user's.
fn target_labels(row: &Row) -> Labels {
    let mut l = vec![
        ("target".to_owned(), row.target.clone()),
        ("kind".to_owned(), row.kind.to_owned()),
    ];
    l.extend(row.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    l
}

fn with(mut l: Labels, k: &str, v: &str) -> Labels {
    l.push((k.to_owned(), v.to_owned()));
    l
}

fn gauge(reg: &mut Registry, name: &str, help: &str) -> GaugeFamily {
    let f = GaugeFamily::default();
    reg.register(name, help, f.clone());
    f
}

/// The registry of `snap` at `now`.
fn registry(snap: &Snapshot, now: Instant, opts: Options) -> Registry {
    let mut reg = Registry::default();
    probe_series(&mut reg, snap, now);
    pool_series(&mut reg, snap);
    fs_series(&mut reg, snap, "hangsafe_filesystem_");
    if opts.node_compat {
        fs_series(&mut reg, snap, "node_filesystem_");
    }
    if let Some((started, m)) = opts.ondemand {
        ondemand_series(&mut reg, started, &m);
    }
    reg
}

/// The series of `serve`'s on-demand probes.
fn ondemand_series(reg: &mut Registry, started: u64, m: &Metrics) {
    let c = Counter::<u64>::default();
    c.inc_by(started);
    reg.register(
        "hangsafe_ondemand_probes_started",
        "Probes started by GET /probe (a request for a target whose probe is still hung starts none)",
        c,
    );
    let t = gauge(
        reg,
        "hangsafe_ondemand_threads",
        "Threads of the GET /probe pool by state: idle, busy, abandoned",
    );
    for (s, v) in [
        ("idle", m.threads_idle),
        (
            "busy",
            m.threads_running.saturating_sub(m.threads_abandoned),
        ),
        ("abandoned", m.threads_abandoned),
    ] {
        t.get_or_create(&vec![("state".to_owned(), s.to_owned())])
            .set(v as f64);
    }
}

/// The per-target probe series.
fn probe_series(reg: &mut Registry, snap: &Snapshot, now: Instant) {
    let success = gauge(
        reg,
        "hangsafe_probe_success",
        "Whether the target's last probe succeeded (1 up, 0 otherwise)",
    );
    let state = gauge(
        reg,
        "hangsafe_probe_state",
        "The target's state: 1 for its current state, 0 for the others",
    );
    let duration = gauge(
        reg,
        "hangsafe_probe_duration_seconds",
        "How long the target's last answered probe took",
    );
    let hung = gauge(
        reg,
        "hangsafe_probe_hung_seconds",
        "How long the target's hung probe has run past its deadline (0 if none)",
    );
    let phase = gauge(
        reg,
        "hangsafe_probe_phase_info",
        "The phase a hung probe was last seen in (examine), as a label; always 1",
    );
    for row in &snap.rows {
        let l = target_labels(row);
        success
            .get_or_create(&l)
            .set(f64::from(u8::from(row.state == State::Up)));
        for s in STATES {
            state
                .get_or_create(&with(l.clone(), "state", s.as_str()))
                .set(f64::from(u8::from(row.state == s)));
        }
        if let Some(d) = row.latency {
            duration.get_or_create(&l).set(d.as_secs_f64());
        }
        hung.get_or_create(&l).set(row.hung_for(now).as_secs_f64());
        if row.hung.is_some() {
            let p = row
                .hung_phase()
                .filter(|p| !p.is_empty())
                .unwrap_or("unknown");
            phase.get_or_create(&with(l, "phase", p)).set(1.0);
        }
    }
}

/// The probe pool's threads and the loop's rounds.
fn pool_series(reg: &mut Registry, snap: &Snapshot) {
    let threads = gauge(
        reg,
        "hangsafe_threads",
        "Probe threads by state: idle, busy (running a probe), abandoned (stuck past their cancel)",
    );
    let m = &snap.pool;
    let busy = m.threads_running.saturating_sub(m.threads_abandoned);
    for (s, v) in [
        ("idle", m.threads_idle),
        ("busy", busy),
        ("abandoned", m.threads_abandoned),
    ] {
        threads
            .get_or_create(&vec![("state".to_owned(), s.to_owned())])
            .set(v as f64);
    }
    let abandoned = Counter::<u64>::default();
    abandoned.inc_by(m.abandoned_total);
    reg.register(
        "hangsafe_abandoned_threads",
        "Probe threads ever declared abandoned (some may have come back since)",
        abandoned,
    );
    let rounds = Counter::<u64>::default();
    rounds.inc_by(snap.round);
    reg.register("hangsafe_rounds", "Rounds of probes started", rounds);
}

/// The filesystem series under `prefix`, one set per filesystem.
fn fs_series(reg: &mut Registry, snap: &Snapshot, prefix: &str) {
    let fams: Vec<GaugeFamily> = FS_SERIES
        .iter()
        .map(|(name, help)| gauge(reg, &format!("{prefix}{name}"), help))
        .collect();
    let mut seen = HashSet::new();
    for row in &snap.rows {
        let Some(m) = &row.mount else { continue };
        if row.kind != "path" || row.state == State::Pending {
            continue;
        }
        let l: Labels = vec![
            ("device".to_owned(), m.source.clone()),
            ("fstype".to_owned(), m.fstype.clone()),
            (
                "mountpoint".to_owned(),
                m.point.to_string_lossy().into_owned(),
            ),
        ];
        if !seen.insert(l.clone()) {
            continue;
        }
        let Some(fs) = row.fs else {
            fams[6].get_or_create(&l).set(1.0);
            continue;
        };
        let ro = m.readonly;
        for (fam, v) in fams.iter().zip([
            fs.node_size_bytes() as f64,
            fs.node_free_bytes() as f64,
            fs.node_avail_bytes() as f64,
            fs.files as f64,
            fs.ffree as f64,
            f64::from(u8::from(ro)),
            0.0,
        ]) {
            fam.get_or_create(&l).set(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_family_name_in_classic_text() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total 3\n\
                  # HELP c Gauge.\n# TYPE c gauge\nc{x=\"b\"} 1\nc{x=\"a\"} 2\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total 3\n\
             # HELP c Gauge.\n# TYPE c gauge\nc{x=\"a\"} 2\nc{x=\"b\"} 1\n"
        );
    }
}
