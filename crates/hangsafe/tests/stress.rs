//! The checker-loop stress test: thousands of runners whose work ends at
//! random just before or just after its deadline, polled with `check()` the
//! way multipathd's checker loop polls `check_runner()` (races R2, R3, R4).
//!
//! Every runner must reach a final state, every `Done` value must be the
//! right one, and the live-context counter must return to zero. Set
//! `HANGSAFE_SEED` to replay a run; `HANGSAFE_STRESS_RUNNERS` to scale it.

mod support;

use hangsafe::runner::{Builder, Pool, RunError, State};
use std::time::{Duration, Instant};
use support::{await_no_live_contexts, Rng};

#[test]
fn r2_r3_r4_checker_loop_stress() {
    let total: u64 = std::env::var("HANGSAFE_STRESS_RUNNERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("stress: {total} runners, HANGSAFE_SEED={seed}");
    let pool = Pool::builder().build();
    let deadline = Duration::from_micros(1500);
    let batch = 100;

    struct Probe {
        runner: Option<hangsafe::runner::Runner<u64>>,
        input: u64,
        keep_until_dead: bool,
        cooperative: bool,
    }

    let (mut done, mut timed_out, mut released_early, mut reached_dead) = (0u64, 0u64, 0u64, 0u64);
    let mut started = 0u64;
    while started < total {
        let n = batch.min(total - started);
        let mut probes: Vec<Probe> = (0..n)
            .map(|k| {
                let input = started + k;
                // Work ends between 0.5x and 1.5x the deadline.
                let work = Duration::from_micros(750 + rng.below(1500));
                let cooperative = rng.below(2) == 0;
                let runner = Builder::new()
                    .pool(&pool)
                    .timeout(deadline)
                    .spawn(move |ctx| {
                        let t = Instant::now();
                        while t.elapsed() < work {
                            if cooperative && ctx.is_cancelled() {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        input.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    })
                    .unwrap();
                Probe {
                    runner: Some(runner),
                    input,
                    keep_until_dead: rng.below(2) == 0,
                    cooperative,
                }
            })
            .collect();
        started += n;

        // The checker loop: poll every probe until each is settled.
        let loop_deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut pending = 0;
            for p in probes.iter_mut() {
                let Some(r) = p.runner.as_ref() else { continue };
                match r.check() {
                    State::Running => pending += 1,
                    State::Done => {
                        let r = p.runner.take().unwrap();
                        assert_eq!(
                            r.wait(),
                            Ok(p.input.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                            "wrong value (seed {seed})"
                        );
                        done += 1;
                    }
                    State::Cancelled if p.keep_until_dead => pending += 1,
                    State::Cancelled => {
                        // Release while the work may still run.
                        p.runner = None;
                        released_early += 1;
                        timed_out += 1;
                    }
                    State::Dead => {
                        let r = p.runner.take().unwrap();
                        assert_eq!(r.wait(), Err(RunError::TimedOut), "seed {seed}");
                        reached_dead += 1;
                        timed_out += 1;
                    }
                }
            }
            if pending == 0 {
                break;
            }
            assert!(
                Instant::now() < loop_deadline,
                "{pending} probes never settled (seed {seed}); cooperative: {:?}",
                probes
                    .iter()
                    .filter(|p| p.runner.is_some())
                    .map(|p| p.cooperative)
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    eprintln!(
        "stress: done {done}, timed out {timed_out} (reached Dead while held {reached_dead}, released while Cancelled {released_early})"
    );
    assert_eq!(done + timed_out, total);
    assert!(
        done > 0 && timed_out > 0,
        "the deadline must split the population (seed {seed})"
    );
    await_no_live_contexts(&pool, Duration::from_secs(30));
    let m = pool.metrics();
    assert_eq!(m.runners_done, done, "{m:?}");
    assert_eq!(m.runners_done + m.runners_dead, total, "{m:?}");
}
