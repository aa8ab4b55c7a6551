//! Idle behaviour, alone in its own test binary so that no other test's
//! threads disturb the CPU measurement (race R1's aftermath in multipath-tools' runner:
//! multipath-tools 0.15.0 left one thread spinning on `sched_yield` per
//! runner released before its thread started).

mod support;

use hangsafe::runner::Pool;
use std::time::Duration;
use support::{await_no_live_contexts, eventually, process_cpu, process_threads};

#[test]
fn r1_get_release_storm_then_idle_uses_no_cpu() {
    let before_threads = process_threads();
    let pool = Pool::builder()
        .idle_timeout(Duration::from_millis(200))
        .build();
    // 200 get+release pairs, most released before their thread starts.
    for i in 0..200u32 {
        drop(pool.spawn(move |_| i).unwrap());
    }
    await_no_live_contexts(&pool, Duration::from_secs(20));
    let m = pool.metrics();
    assert!(m.threads_alive <= 200, "{m:?}");

    // Idle: the spin phase is over after microseconds; then nobody may burn
    // CPU. Measure 500 ms of process CPU time.
    std::thread::sleep(Duration::from_millis(50));
    let c0 = process_cpu();
    std::thread::sleep(Duration::from_millis(500));
    let used = process_cpu() - c0;
    assert!(
        used < Duration::from_millis(50),
        "idle process used {used:?} of CPU in 500 ms"
    );

    // And the idle threads retire: back to the threads we started with
    // (plus the deadline timer thread, if this binary started it).
    assert!(
        eventually(Duration::from_secs(20), || pool.metrics().threads_alive
            == 0),
        "{:?}",
        pool.metrics()
    );
    assert!(eventually(Duration::from_secs(20), || process_threads()
        <= before_threads + 1));
}
