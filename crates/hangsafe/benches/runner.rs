//! Runner round trip, spawn to result, for trivial work (return a small
//! integer), against the ways of running it elsewhere:
//!
//! * `hangsafe`: `runner::spawn(|_| 1).wait()` on the global pool;
//! * `hangsafe_deadline`: the same through `Builder::new().timeout(10 s)`,
//!   which also registers the deadline with the timer thread;
//! * `thread_per_runner`: the C-style runner of `hangsafe_testkit::peers`
//!   (malloc'd refcounted context, detached 64 KiB pthread, spin + futex);
//! * `std_thread_spawn_join`: `std::thread::spawn(|| 1).join()`;
//! * `tokio_spawn_blocking`: `rt.block_on(spawn_blocking(|| 1))` on a
//!   multi-thread runtime built once.
//!
//! After the group, a ratio table (`peer / hangsafe`) is printed from
//! criterion's own estimates, followed by the project's targets.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p hangsafe --bench runner
//! cargo bench -p hangsafe --bench runner -- --quick
//! cargo bench -p hangsafe --bench runner -- hangsafe     # filter
//! ```

mod common;

use common::thread_per_runner;
use criterion::Criterion;
use hangsafe::runner::{self, Builder};
use std::hint::black_box;
use std::time::Duration;

const GROUP: &str = "runner_round_trip";
const HANGSAFE: &str = "hangsafe";
const HANGSAFE_DEADLINE: &str = "hangsafe_deadline";
const THREAD_PER_RUNNER: &str = "thread_per_runner";
const STD_THREAD: &str = "std_thread_spawn_join";
const TOKIO: &str = "tokio_spawn_blocking";

/// Far enough never to fire during a round trip, so that the deadline only
/// costs its bookkeeping.
const DEADLINE: Duration = Duration::from_secs(10);

fn tpr_round_trip() -> u32 {
    thread_per_runner::round_trip().expect("pthread_create")
}

fn round_trip(c: &mut Criterion) {
    // Sanity: every variant computes the same thing (outside the timing).
    assert_eq!(runner::spawn(|_| black_box(1)).unwrap().wait(), Ok(1));
    assert_eq!(
        Builder::new()
            .timeout(DEADLINE)
            .spawn(|_| black_box(1))
            .unwrap()
            .wait(),
        Ok(1)
    );
    assert_eq!(tpr_round_trip(), 1);
    assert_eq!(std::thread::spawn(|| black_box(1)).join().unwrap(), 1);

    let mut g = c.benchmark_group(GROUP);
    g.warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(100);

    g.bench_function(HANGSAFE, |b| {
        b.iter(|| runner::spawn(|_| black_box(1)).unwrap().wait())
    });
    g.bench_function(HANGSAFE_DEADLINE, |b| {
        b.iter(|| {
            Builder::new()
                .timeout(DEADLINE)
                .spawn(|_| black_box(1))
                .unwrap()
                .wait()
        })
    });
    g.bench_function(THREAD_PER_RUNNER, |b| b.iter(tpr_round_trip));
    g.bench_function(STD_THREAD, |b| {
        b.iter(|| std::thread::spawn(|| black_box(1)).join().unwrap())
    });
    {
        // Built once, outside the timing loop, and only for its own bench so
        // that its idle workers do not sit around during the others. The
        // guard puts `spawn_blocking` (evaluated before `block_on` runs) in
        // the runtime's context.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let _enter = rt.enter();
        assert_eq!(
            rt.block_on(tokio::task::spawn_blocking(|| black_box(1)))
                .unwrap(),
            1
        );
        g.bench_function(TOKIO, |b| {
            b.iter(|| {
                rt.block_on(tokio::task::spawn_blocking(|| black_box(1)))
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn check_target(ratios: &[common::Ratio], peer: &str, min: f64, claim: &str) {
    if let Some(r) = ratios.iter().find(|r| r.peer == peer) {
        let met = if r.mean >= min { "MET" } else { "MISSED" };
        println!(
            "  target: {claim}: {met} (mean ratio {:.2}, CI [{:.2}, {:.2}])",
            r.mean, r.mean_lower, r.mean_upper
        );
    }
}

fn main() {
    common::mark_start();
    let load_before = common::system_load();
    let mut c = common::criterion().configure_from_args();
    round_trip(&mut c);
    c.final_summary();
    if [HANGSAFE, HANGSAFE_DEADLINE]
        .iter()
        .any(|b| common::read_estimate(GROUP, b).is_ok())
    {
        println!();
        println!("system before: {load_before}");
        println!("system after:  {}", common::system_load());
    }

    let peers = [THREAD_PER_RUNNER, STD_THREAD, TOKIO];
    let mut all = vec![HANGSAFE_DEADLINE];
    all.extend(peers);
    let r = common::print_ratios(GROUP, HANGSAFE, &all);
    check_target(
        &r,
        THREAD_PER_RUNNER,
        10.0,
        ">= 10x faster than thread-per-runner",
    );
    check_target(&r, TOKIO, 1.0, "faster than tokio spawn_blocking");
    let r = common::print_ratios(GROUP, HANGSAFE_DEADLINE, &peers);
    check_target(
        &r,
        THREAD_PER_RUNNER,
        10.0,
        ">= 10x faster than thread-per-runner",
    );
    check_target(&r, TOKIO, 1.0, "faster than tokio spawn_blocking");
}
