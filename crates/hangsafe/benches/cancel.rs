//! Cancellable syscalls: what they cost, and how fast a cancel lands.
//!
//! * `cancellable_read` (criterion): a 1-byte `read` from `/dev/zero`, the
//!   cheapest useful blocking-capable call, in a multi-threaded process (as
//!   any program with a runner pool is; glibc's `read` takes a cheaper path
//!   while a process has one thread):
//!   - `raw_syscall`: `libc::syscall(SYS_read, ..)`, the peer the target
//!     is about;
//!   - `libc_read`: glibc's `read` (itself a pthread cancellation point);
//!   - `hangsafe_read_in_scope`: `cancel::read` on a thread inside a
//!     cancellation scope (the assembly stub path);
//!   - `hangsafe_read_no_scope`: `cancel::read` on a thread that never
//!     entered one (plain syscall path);
//!   - `poll_eventfd_read`: the common alternative, `poll` on the fd plus a
//!     cancel eventfd, then `read`.
//!
//!   Target: the stub path within 3% of `raw_syscall`. Criterion measures
//!   each function in its own time window, and on a VM two windows of the
//!   *same* ~120 ns syscall can differ by 5-8%; so the target is judged by
//!   an interleaved A/B (`interleaved_overhead`): short alternating batches
//!   of the raw syscall and the stub path, one ratio per round, median and
//!   quartiles over the rounds.
//! * cancel latency (hand-rolled, printed as p50/p99): a runner's work is
//!   blocked in a `read` on a pipe nobody writes (confirmed through
//!   `/proc/self/task/<tid>/syscall`); the time from `Runner::cancel()` to
//!   the work's return. The peer: the work blocks in `poll` on the pipe plus
//!   an eventfd, and the canceller writes the eventfd.
//!
//! ```text
//! cargo bench -p hangsafe --bench cancel
//! HANGSAFE_LATENCY_SAMPLES=500 cargo bench -p hangsafe --bench cancel -- --quick
//! ```

mod common;

use criterion::Criterion;
use hangsafe::cancel::{self, CancelToken};
use hangsafe::runner::Pool;
use hangsafe_testkit::fd::eventfd;
use hangsafe_testkit::peers::{eventfd_cancel_sample, gettid, poll_eventfd_read, wait_blocked_in};
use std::fs::File;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GROUP: &str = "cancellable_read";
const RAW: &str = "raw_syscall";
const LIBC: &str = "libc_read";
const IN_SCOPE: &str = "hangsafe_read_in_scope";
const NO_SCOPE: &str = "hangsafe_read_no_scope";
const POLL_EVENTFD: &str = "poll_eventfd_read";

fn overhead(c: &mut Criterion) {
    let zero = File::open("/dev/zero").expect("/dev/zero");
    let fd = zero.as_raw_fd();
    let mut g = c.benchmark_group(GROUP);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(100);

    g.bench_function(RAW, |b| {
        let mut buf = [0u8; 1];
        // SAFETY: a 1-byte buffer for a 1-byte read.
        b.iter(|| unsafe { libc::syscall(libc::SYS_read, black_box(fd), buf.as_mut_ptr(), 1usize) })
    });
    g.bench_function(LIBC, |b| {
        let mut buf = [0u8; 1];
        // SAFETY: a 1-byte buffer for a 1-byte read.
        b.iter(|| unsafe { libc::read(black_box(fd), buf.as_mut_ptr().cast(), 1) })
    });
    g.bench_function(IN_SCOPE, |b| {
        // The measuring thread enters a scope so the stub path is taken.
        let token = CancelToken::new();
        let _scope = token.enter().expect("scope");
        let mut buf = [0u8; 1];
        b.iter(|| cancel::read(black_box(&zero), &mut buf).unwrap())
    });
    {
        // A thread that never used cancellation: plain syscall path.
        let (tx, rx) = mpsc::channel();
        let z2 = zero.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut c2 = common::criterion().configure_from_args();
            let mut g2 = c2.benchmark_group(GROUP);
            g2.warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4))
                .sample_size(100);
            let mut buf = [0u8; 1];
            g2.bench_function(NO_SCOPE, |b| {
                b.iter(|| cancel::read(black_box(&z2), &mut buf).unwrap())
            });
            g2.finish();
            tx.send(()).unwrap();
        });
        rx.recv().unwrap();
    }
    g.bench_function(POLL_EVENTFD, |b| {
        let efd = eventfd().expect("eventfd");
        let mut buf = [0u8; 1];
        b.iter(|| {
            poll_eventfd_read(black_box(fd), efd.as_raw_fd(), &mut buf).expect("not cancelled")
        })
    });
    g.finish();
}

/// Interleaved A/B of the stub path against the raw syscall: `rounds`
/// rounds, each timing `batch` calls of one then the other (the order
/// alternates), giving one overhead ratio per round. Returns the sorted
/// per-round overheads in percent.
fn interleaved_overhead(rounds: usize, batch: u32) -> Vec<f64> {
    let zero = File::open("/dev/zero").expect("/dev/zero");
    let fd = zero.as_raw_fd();
    let token = CancelToken::new();
    let _scope = token.enter().expect("scope");
    let mut buf = [0u8; 1];
    let raw = || {
        let t = Instant::now();
        for _ in 0..batch {
            // SAFETY: a 1-byte buffer for a 1-byte read.
            black_box(unsafe {
                libc::syscall(libc::SYS_read, black_box(fd), buf.as_mut_ptr(), 1usize)
            });
        }
        t.elapsed()
    };
    let mut buf2 = [0u8; 1];
    let stub = || {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(cancel::read(black_box(&zero), &mut buf2).unwrap());
        }
        t.elapsed()
    };
    common::interleaved_overhead(rounds, raw, stub)
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    n: usize,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        mean,
        n: v.len(),
    }
}

/// hangsafe: a runner blocked in `cancel::read`; latency from `cancel()` to
/// the work's return (timestamped by the work itself, as for the peer).
fn hangsafe_latency(samples: usize) -> Percentiles {
    let pool = Pool::builder().build();
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (r, w) = std::io::pipe().unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let runner = pool
            .spawn(move |_| {
                tid_tx.send(gettid()).unwrap();
                let mut b = [0u8; 1];
                let res = cancel::read(&r, &mut b);
                done_tx.send((Instant::now(), res)).unwrap();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        wait_blocked_in(tid, libc::SYS_read).expect("blocked in read");
        let t0 = Instant::now();
        runner.cancel();
        let (t1, res) = done_rx.recv().unwrap();
        assert_eq!(res, Err(cancel::Error::Cancelled));
        out.push(t1.duration_since(t0));
        drop(runner);
        drop(w);
    }
    percentiles(out)
}

/// The peer: the work blocks in `poll` on the pipe and an eventfd; the
/// canceller writes the eventfd. Same measurement: cancel to return.
fn eventfd_latency(samples: usize) -> Percentiles {
    let out = (0..samples)
        .map(|_| eventfd_cancel_sample().expect("poll + eventfd sample").0)
        .collect();
    percentiles(out)
}

fn main() {
    common::mark_start();
    // A second thread for the whole run: glibc switches its syscall
    // wrappers to their multi-threaded paths the first time a thread is
    // created, and every process that uses runners has several.
    std::thread::spawn(|| loop {
        std::thread::park();
    });
    let load_before = common::system_load();
    let mut c = common::criterion().configure_from_args();
    overhead(&mut c);
    c.final_summary();
    println!();
    println!("system before: {load_before}");
    println!("system after:  {}", common::system_load());

    common::print_ratios(GROUP, IN_SCOPE, &[RAW, LIBC, NO_SCOPE, POLL_EVENTFD]);

    // The interleaved A/B and the latency part are not criterion groups.
    // Skipped for `--list`/`--test` style invocations.
    if common::listing_or_smoke_test() {
        return;
    }
    let ov = interleaved_overhead(101, 20_000);
    let median = common::print_overhead("stub path vs raw syscall", "overhead", &ov);
    let verdict = if median <= 3.0 { "MET" } else { "MISSED" };
    println!(
        "  target: cancellable read within 3% of the raw syscall: {verdict} (median {median:+.1}%)"
    );
    let samples = hangsafe_testkit::env::or("HANGSAFE_LATENCY_SAMPLES", 2000usize);
    let h = hangsafe_latency(samples);
    let e = eventfd_latency(samples);
    println!();
    println!(
        "== cancel latency: cancel() to the blocked work's return ({} samples each) ==",
        h.n
    );
    println!(
        "{:<30} {:>10} {:>10} {:>10}",
        "design", "p50", "p99", "mean"
    );
    for (name, p) in [("hangsafe (signal + stub)", &h), ("poll + eventfd", &e)] {
        println!(
            "{:<30} {:>10} {:>10} {:>10}",
            name,
            common::fmt_ns(p.p50.as_nanos() as f64),
            common::fmt_ns(p.p99.as_nanos() as f64),
            common::fmt_ns(p.mean.as_nanos() as f64)
        );
    }
    println!(
        "  ratio (poll+eventfd / hangsafe): p50 {:.2}, p99 {:.2}",
        e.p50.as_secs_f64() / h.p50.as_secs_f64(),
        e.p99.as_secs_f64() / h.p99.as_secs_f64()
    );
}
