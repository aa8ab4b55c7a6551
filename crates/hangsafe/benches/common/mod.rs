//! Helpers shared by hangsafe's criterion benchmarks.
//!
//! * [`criterion`]: a `Criterion` whose output directory is the one the
//!   ratio tables read from ([`criterion_home`]).
//! * [`mark_start`] + [`print_ratios`]: after the groups ran, read
//!   criterion's own `estimates.json` files and print how many times faster
//!   (or slower) the subject is than each peer. Only estimates written by the
//!   current process count, so a filtered or `--test` run never reports stale
//!   figures from an earlier run.
//! * [`thread_per_runner`], [`fmt_ns`], [`interleaved_overhead`]: the
//!   C-style thread-per-runner baseline and the A/B statistics, from the
//!   workspace's test kit (`hangsafe-testkit`), which `hangsafe bench`
//!   shares.
//!
//! A bench uses it with `mod common;` and a hand-written `main` (instead of
//! `criterion_main!`) that calls [`mark_start`] first, runs its groups,
//! calls `final_summary()`, then [`print_ratios`].

// Each bench target compiles this module separately and uses a subset.
#![allow(dead_code)]

// Each bench target uses a subset of these re-exports.
#[allow(unused_imports)]
pub(crate) use hangsafe_testkit::peers::thread_per_runner;
#[allow(unused_imports)]
pub(crate) use hangsafe_testkit::stats::{fmt_ns, interleaved_overhead};

use criterion::Criterion;
use serde_json::Value;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

static START: OnceLock<SystemTime> = OnceLock::new();

/// Records when this benchmark process started measuring. Estimates files
/// older than this are ignored by [`print_ratios`]. Call it first in `main`.
pub(crate) fn mark_start() {
    START.get_or_init(SystemTime::now);
}

/// Where criterion writes its results, found the way criterion itself finds
/// it: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
/// target directory `cargo metadata` reports, else `target/criterion`.
pub(crate) fn criterion_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        if let Some(h) = env::var_os("CRITERION_HOME") {
            return PathBuf::from(h);
        }
        if let Some(t) = env::var_os("CARGO_TARGET_DIR") {
            return PathBuf::from(t).join("criterion");
        }
        cargo_metadata_target_dir()
            .map(|t| t.join("criterion"))
            .unwrap_or_else(|| PathBuf::from("target/criterion"))
    })
}

fn cargo_metadata_target_dir() -> Option<PathBuf> {
    let cargo = env::var_os("CARGO")?;
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("target_directory")?.as_str().map(PathBuf::from)
}

/// A default `Criterion` writing to [`criterion_home`], so that the ratio
/// tables read exactly what it wrote. Apply `configure_from_args()` after
/// any other settings.
pub(crate) fn criterion() -> Criterion {
    Criterion::default().output_directory(criterion_home())
}

/// Criterion's directory-name sanitising of a group or function id
/// (`criterion::report::make_filename_safe`, which is private).
fn dir_name(id: &str) -> String {
    const MAX_LEN: usize = 64;
    let mut s: String = id
        .chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect();
    let mut end = s.len().min(MAX_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// A point estimate with its confidence interval, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interval {
    pub point: f64,
    pub lower: f64,
    pub upper: f64,
    /// The confidence level of `[lower, upper]`, e.g. 0.95.
    pub level: f64,
}

/// Criterion's estimates of one benchmark's time per iteration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    pub mean: Interval,
    pub median: Interval,
}

fn interval(v: &Value, stat: &str) -> Result<Interval, String> {
    let s = v
        .get(stat)
        .ok_or_else(|| format!("no '{stat}' in estimates"))?;
    let num = |x: Option<&Value>, what: &str| {
        x.and_then(Value::as_f64)
            .ok_or_else(|| format!("no numeric '{stat}.{what}' in estimates"))
    };
    let ci = s.get("confidence_interval");
    Ok(Interval {
        point: num(s.get("point_estimate"), "point_estimate")?,
        lower: num(ci.and_then(|c| c.get("lower_bound")), "lower_bound")?,
        upper: num(ci.and_then(|c| c.get("upper_bound")), "upper_bound")?,
        level: num(ci.and_then(|c| c.get("confidence_level")), "level")?,
    })
}

/// Reads `<criterion home>/<group>/<bench>/new/estimates.json`. Fails if the
/// file is missing, unreadable, or (after [`mark_start`]) older than this
/// process's start, i.e. left over from an earlier run.
pub(crate) fn read_estimate(group: &str, bench: &str) -> Result<Estimate, String> {
    let path = criterion_home()
        .join(dir_name(group))
        .join(dir_name(bench))
        .join("new")
        .join("estimates.json");
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let (Some(start), Ok(mtime)) = (START.get(), meta.modified()) {
        if mtime < *start {
            return Err(format!("{}: not measured in this run", path.display()));
        }
    }
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Estimate {
        mean: interval(&v, "mean")?,
        median: interval(&v, "median")?,
    })
}

/// One line describing how busy the machine is: CPUs available to this
/// process and the load averages. Round trips that hand work between
/// spinning threads are very sensitive to other CPU load (a spinning waiter
/// can hold the only free CPU the worker needs), so benches print it before
/// and after measuring.
pub(crate) fn system_load() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| String::from("unknown"));
    format!("{cpus} CPUs, load average (1/5/15 min) {load}")
}

fn fmt_interval(i: &Interval) -> String {
    format!(
        "{} [{}, {}]",
        fmt_ns(i.point),
        fmt_ns(i.lower),
        fmt_ns(i.upper)
    )
}

/// `peer_time / subject_time` for one peer.
#[derive(Clone, Debug)]
pub(crate) struct Ratio {
    pub peer: String,
    /// Ratio of the means: above 1, the subject is that many times faster.
    pub mean: f64,
    /// Conservative bounds from the two means' confidence intervals:
    /// `peer.lower / subject.upper` and `peer.upper / subject.lower`.
    pub mean_lower: f64,
    pub mean_upper: f64,
    /// Ratio of the medians.
    pub median: f64,
}

fn verdict(subject: &str, peer: &str, r: f64) -> String {
    if (0.95..1.05).contains(&r) {
        format!("{subject} is about as fast as {peer} ({r:.2}x)")
    } else if r >= 1.0 {
        format!("{subject} is {r:.1}x faster than {peer}")
    } else {
        format!("{subject} is {:.1}x slower than {peer}", 1.0 / r)
    }
}

/// Prints, for each peer of `group`, `peer_time / subject_time` from the
/// estimates criterion wrote in this run, and returns the ratios it could
/// compute. Benchmarks that did not run in this process (filtered out,
/// `--test`, `--list`, baseline discarded) are reported on stderr and left
/// out; if the subject itself did not run, nothing goes to stdout.
pub(crate) fn print_ratios(group: &str, subject: &str, peers: &[&str]) -> Vec<Ratio> {
    let subj = match read_estimate(group, subject) {
        Ok(e) => e,
        Err(why) => {
            eprintln!("ratio table for {group}/{subject} skipped: {why}");
            return Vec::new();
        }
    };
    let level = subj.mean.level * 100.0;
    let width = peers
        .iter()
        .chain(std::iter::once(&subject))
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    println!("== {group}: time per iteration relative to {subject} (criterion mean [{level:.0}% CI]; ratio = peer / {subject}) ==");
    println!(
        "{:<width$}  {:<36}  {:>7}  {:>17}  {:>9}",
        "bench", "mean [CI]", "ratio", "ratio CI", "med ratio"
    );
    println!(
        "{:<width$}  {:<36}  {:>7}  {:>17}  {:>9}",
        subject,
        fmt_interval(&subj.mean),
        "1.00",
        "",
        ""
    );
    let mut out = Vec::new();
    for &peer in peers {
        let est = match read_estimate(group, peer) {
            Ok(e) => e,
            Err(why) => {
                eprintln!("ratio for {group}/{peer} skipped: {why}");
                continue;
            }
        };
        let r = Ratio {
            peer: peer.to_owned(),
            mean: est.mean.point / subj.mean.point,
            mean_lower: est.mean.lower / subj.mean.upper,
            mean_upper: est.mean.upper / subj.mean.lower,
            median: est.median.point / subj.median.point,
        };
        println!(
            "{:<width$}  {:<36}  {:>7.2}  {:>17}  {:>9.2}",
            peer,
            fmt_interval(&est.mean),
            r.mean,
            format!("[{:.2}, {:.2}]", r.mean_lower, r.mean_upper),
            r.median
        );
        out.push(r);
    }
    for r in &out {
        println!("  {}", verdict(subject, &r.peer, r.mean));
    }
    out
}

/// Whether the bench runs for criterion's `--list` or `--test`: the parts
/// that are not criterion groups are skipped then.
pub(crate) fn listing_or_smoke_test() -> bool {
    env::args().any(|a| a == "--list" || a == "--test")
}

/// Prints the result of an [`interleaved_overhead`] run (`ov`, sorted, in
/// percent) under the heading `title`: the median and quartiles, labelled
/// `label`. Returns the median.
pub(crate) fn print_overhead(title: &str, label: &str, ov: &[f64]) -> f64 {
    let q = |f: f64| ov[((ov.len() - 1) as f64 * f).round() as usize];
    println!();
    println!(
        "== {title}, interleaved A/B ({} rounds of 20,000 calls each) ==",
        ov.len()
    );
    println!(
        "{label}: median {:+.1}%, quartiles [{:+.1}%, {:+.1}%]",
        q(0.5),
        q(0.25),
        q(0.75)
    );
    q(0.5)
}
