//! Interleaved A/B rounds and the statistics over them, and time
//! formatting: what makes an overhead of a few percent measurable on a
//! noisy machine, where two separate time windows of the same syscall can
//! differ by 5-8%. Used by the criterion benchmarks and `hangsafe bench`.

use std::time::{Duration, Instant};

/// The value at quantile `q` (0..=1) of sorted `v`, interpolating linearly
/// between the two nearest samples. `v` must not be empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    assert!(!v.is_empty(), "quantile of no samples");
    let pos = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Median and quartiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quartiles {
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
}

impl Quartiles {
    /// Sorts `v` and takes its quartiles. `v` must not be empty.
    pub fn of(v: &mut [f64]) -> Quartiles {
        v.sort_by(f64::total_cmp);
        Quartiles {
            q1: quantile(v, 0.25),
            median: quantile(v, 0.5),
            q3: quantile(v, 0.75),
        }
    }
}

/// Runs `rounds` rounds (fewer if `cap` passes first, at least 3) of
/// `arms`, each arm timing one batch per round; the first arm starts one
/// place later in every round. Returns, per arm, the per-round batch times
/// in nanoseconds.
pub fn interleave(
    arms: &mut [&mut dyn FnMut() -> Result<Duration, String>],
    rounds: usize,
    cap: Duration,
) -> Result<Vec<Vec<f64>>, String> {
    // Warm-up: one untimed batch of each.
    for arm in arms.iter_mut() {
        arm()?;
    }
    let n = arms.len();
    let mut out = vec![Vec::with_capacity(rounds); n];
    let start = Instant::now();
    for round in 0..rounds {
        if round >= 3 && start.elapsed() > cap {
            break;
        }
        for k in 0..n {
            let i = (round + k) % n;
            out[i].push(arms[i]()?.as_nanos() as f64);
        }
    }
    Ok(out)
}

/// Samples per block for [`block_ratios`]: about 20 blocks, at least 5
/// samples each.
pub fn block_len(n: usize) -> usize {
    (n / 20).max(5)
}

/// Latency samples taken in alternation, cut into consecutive blocks (the
/// rounds of a latency run): per block, the peer's median over hangsafe's.
/// A leftover shorter than a block joins the last one.
pub fn block_ratios(subject: &[f64], peer: &[f64]) -> Vec<f64> {
    let n = subject.len().min(peer.len());
    let len = block_len(n);
    let blocks = (n / len).max(1);
    (0..blocks)
        .map(|b| {
            let end = if b + 1 == blocks { n } else { (b + 1) * len };
            let mut h = subject[b * len..end].to_vec();
            let mut p = peer[b * len..end].to_vec();
            Quartiles::of(&mut p).median / Quartiles::of(&mut h).median
        })
        .collect()
}

/// An interleaved A/B for overheads too small for criterion's separate
/// time windows: warms both up once, then runs `peer` and `subject`
/// alternately (`peer` first in even rounds, `subject` first in odd ones)
/// and returns, sorted, each round's `subject / peer - 1` in percent. Each
/// closure runs one batch and returns how long it took.
pub fn interleaved_overhead(
    rounds: usize,
    mut peer: impl FnMut() -> Duration,
    mut subject: impl FnMut() -> Duration,
) -> Vec<f64> {
    peer();
    subject();
    let mut out = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let (p, s) = if i % 2 == 0 {
            let p = peer();
            (p, subject())
        } else {
            let s = subject();
            (peer(), s)
        };
        out.push((s.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Nanoseconds with a readable unit and three decimals above 1 µs
/// (`1.234 µs`), as the criterion benchmarks print them.
pub fn fmt_ns(ns: f64) -> String {
    fmt_ns_with(ns, 3)
}

/// Nanoseconds with a readable unit: one decimal in ns, `decimals` in µs,
/// ms and s (`hangsafe bench` prints two).
pub fn fmt_ns_with(ns: f64, decimals: usize) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.*} µs", decimals, ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.*} ms", decimals, ns / 1e6)
    } else {
        format!("{:.*} s", decimals, ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_ns_picks_the_unit() {
        assert_eq!(fmt_ns(123.456), "123.5 ns");
        assert_eq!(fmt_ns(1_290.0), "1.290 µs");
        assert_eq!(fmt_ns_with(1_290.0, 2), "1.29 µs");
        assert_eq!(fmt_ns_with(16_300_000.0, 2), "16.30 ms");
        assert_eq!(fmt_ns_with(2.5e9, 2), "2.50 s");
    }

    #[test]
    fn interleaved_overhead_is_sorted_percent() {
        let v = interleaved_overhead(
            4,
            || Duration::from_millis(10),
            || Duration::from_millis(11),
        );
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|x| (x - 10.0).abs() < 1e-9));
    }
}
