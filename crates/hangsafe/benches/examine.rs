//! Examine: reading a worker's published state through hangsafe's seqlock
//! against reading the same state through a `std::sync::Mutex`, and
//! publishing against a `Mutex` write, in one run. The state is a
//! [`Progress`] (48 bytes) in both cases.
//!
//! * `examine_read`: one consistent read of the state (every field read
//!   from one version of it), nobody writing.
//!   - `seqlock`: `Runner::prepare_examine::<Progress>()`, then the
//!     ticket's fields; the subject;
//!   - `seqlock_examiner`: the same through an `Examiner` (adds the
//!     weak-reference upgrade and release, two atomic read-modify-writes);
//!   - `mutex`: lock an `Arc<Mutex<Progress>>`, read the fields, unlock.
//!
//!   The fields are read rather than the whole value handed to
//!   `black_box`: moving a freshly assembled ticket at once costs several
//!   nanoseconds more on x86_64 (likely a store-forwarding stall: it is
//!   written as 8-byte words and read back with 16-byte moves), which a
//!   caller reading its fields does not pay.
//! * `examine_read_vs_writer`: the same reads while another thread writes
//!   in a tight loop (the runner's work publishing; a thread locking and
//!   storing). A seqlock reader retries while a publish is in progress and
//!   gives up with `Again` after its bound; the time per call includes
//!   that, and the share of `Again` answers is printed. The mutex reader
//!   waits for the lock.
//! * `examine_publish`: one `Ctx::publish` on the worker (timed there, with
//!   `iter_custom`) against one lock + store + unlock of the `Mutex`.
//! * `examine_publish_vs_reader`: the same while another thread reads in a
//!   tight loop. The publisher never waits for the reader; the mutex
//!   writer does.
//! * Both flat out (hand-rolled, after the groups): one reader thread and
//!   one writer thread in tight loops for 0.5 s per design, counting reads,
//!   `Again` answers and writes: how the two sides share the state when
//!   neither lets up (a mutex writer waits for the reader; a publisher
//!   never does).
//!
//! After each group a ratio table (`peer / subject`, from criterion's own
//! estimates) is printed.
//!
//! Knobs (environment): `HANGSAFE_EXAMINE_SECS` (measurement seconds per
//! function, default 1.5), `HANGSAFE_EXAMINE_WARMUP` (warm-up seconds,
//! default 0.5). Nine functions: under a minute in all with the defaults.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p hangsafe --bench examine
//! HANGSAFE_EXAMINE_SECS=5 cargo bench -p hangsafe --bench examine
//! cargo bench -p hangsafe --bench examine -- --test
//! ```

mod common;

use criterion::Criterion;
use hangsafe::examine::{self, Progress};
use hangsafe::runner::{self, Runner};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const READ: &str = "examine_read";
const READ_W: &str = "examine_read_vs_writer";
const PUBLISH: &str = "examine_publish";
const PUBLISH_R: &str = "examine_publish_vs_reader";
const SEQLOCK: &str = "seqlock";
const SEQLOCK_EX: &str = "seqlock_examiner";
const MUTEX: &str = "mutex";
const PUBLISH_FN: &str = "publish";
const MUTEX_WRITE: &str = "mutex_write";

/// The state published and stored: phase "SG_IO", `n` of 1000. The phase
/// and its stamps are made once (reading the clock on every write would
/// dominate a write).
fn state(n: u64) -> Progress {
    static BASE: OnceLock<Progress> = OnceLock::new();
    BASE.get_or_init(|| Progress::new("SG_IO"))
        .with_counts(n as u32, 1000)
}

/// What a reader does with a consistent state: reads every field.
#[inline]
fn fields(p: &Progress) -> u64 {
    u64::from(p.done() ^ p.total()) ^ p.entered().as_nanos() ^ p.phase().len() as u64
}

/// A runner whose work publishes once and then, on request, either
/// publishes continuously (`spin`) or runs timed batches of publishes
/// (`batch`), until it is told to quit.
struct Publisher {
    runner: Runner<()>,
    spin: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    batch: mpsc::Sender<u64>,
    timed: mpsc::Receiver<Duration>,
    published: Arc<AtomicU64>,
}

impl Publisher {
    fn new() -> Publisher {
        let spin = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let (batch, batches) = mpsc::channel::<u64>();
        let (timed_tx, timed) = mpsc::channel::<Duration>();
        let (s, q, p) = (Arc::clone(&spin), Arc::clone(&quit), Arc::clone(&published));
        let runner = runner::spawn(move |ctx| {
            let mut n = 0u64;
            ctx.publish(&state(n));
            while !q.load(Ordering::Relaxed) {
                if s.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        n += 1;
                        ctx.publish(&state(n));
                    }
                    p.store(n, Ordering::Relaxed);
                    continue;
                }
                match batches.recv_timeout(Duration::from_millis(1)) {
                    Ok(iters) => {
                        let v = state(n);
                        let t = Instant::now();
                        for _ in 0..iters {
                            ctx.publish(black_box(&v));
                        }
                        timed_tx.send(t.elapsed()).unwrap();
                        n += iters;
                        p.store(n, Ordering::Relaxed);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            p.store(n, Ordering::Relaxed);
        })
        .expect("spawn publisher");
        // Wait for the first publish.
        while let Err(examine::Error::Unpublished) = runner.prepare_examine::<Progress>() {
            std::thread::yield_now();
        }
        Publisher {
            runner,
            spin,
            quit,
            batch,
            timed,
            published,
        }
    }

    /// Starts or stops publishing flat out.
    fn set_spinning(&self, on: bool) {
        self.spin.store(on, Ordering::Relaxed);
    }

    /// Publishes so far (as of the worker's last batch of 256).
    fn count(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    fn timed_publishes(&self, iters: u64) -> Duration {
        self.batch.send(iters).unwrap();
        self.timed.recv().unwrap()
    }

    fn quit(self) {
        self.quit.store(true, Ordering::Relaxed);
        self.runner.wait().unwrap();
    }
}

/// A thread doing `f` in a loop until dropped, counting (per 64).
struct Background {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    fn start(mut f: impl FnMut() + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    f();
                }
                d.fetch_add(64, Ordering::Relaxed);
            }
        });
        Background {
            stop,
            done,
            thread: Some(thread),
        }
    }

    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mutex_read(m: &Mutex<Progress>) -> u64 {
    fields(&m.lock().unwrap())
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    again: AtomicU64,
}

impl Tally {
    fn note<T>(&self, r: &Result<T, examine::Error>) {
        match r {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(examine::Error::Again) => self.again.fetch_add(1, Ordering::Relaxed),
            Err(e) => panic!("{e}"),
        };
    }

    fn report(&self, what: &str) {
        let (ok, again) = (
            self.ok.load(Ordering::Relaxed),
            self.again.load(Ordering::Relaxed),
        );
        if ok + again > 0 {
            println!(
                "  {what}: {ok} snapshots, {again} Again ({:.2}% of calls)",
                100.0 * again as f64 / (ok + again) as f64
            );
        }
    }
}

fn groups(c: &mut Criterion, warm: Duration, secs: Duration) -> (Tally, Option<(Duel, Duel)>) {
    let tally = Tally::default();
    let p = Publisher::new();
    let ex = p.runner.examiner();
    let m = Arc::new(Mutex::new(state(0)));

    // Sanity, outside the timing: both hold the same state.
    let snap = p.runner.prepare_examine::<Progress>().unwrap();
    assert_eq!((snap.phase(), snap.done()), ("SG_IO", 0));
    assert_eq!(mutex_read(&m), fields(&snap));

    let mut g = c.benchmark_group(READ);
    g.warm_up_time(warm).measurement_time(secs).sample_size(50);
    g.bench_function(SEQLOCK, |b| {
        b.iter(|| black_box(p.runner.prepare_examine().map(|t| fields(&t))))
    });
    g.bench_function(SEQLOCK_EX, |b| {
        b.iter(|| black_box(ex.prepare_examine().map(|t| fields(&t))))
    });
    g.bench_function(MUTEX, |b| b.iter(|| black_box(mutex_read(&m))));
    g.finish();

    let mut g = c.benchmark_group(READ_W);
    g.warm_up_time(warm).measurement_time(secs).sample_size(50);
    p.set_spinning(true);
    g.bench_function(SEQLOCK, |b| {
        b.iter(|| {
            let r = p.runner.prepare_examine().map(|t| fields(&t));
            tally.note(&r);
            black_box(r)
        })
    });
    p.set_spinning(false);
    {
        let mw = Arc::clone(&m);
        let mut n = 0u64;
        let _writer = Background::start(move || {
            n += 1;
            *mw.lock().unwrap() = state(n);
        });
        g.bench_function(MUTEX, |b| b.iter(|| black_box(mutex_read(&m))));
    }
    g.finish();

    let mut g = c.benchmark_group(PUBLISH);
    g.warm_up_time(warm).measurement_time(secs).sample_size(50);
    g.bench_function(PUBLISH_FN, |b| {
        b.iter_custom(|iters| p.timed_publishes(iters))
    });
    g.bench_function(MUTEX_WRITE, |b| {
        let v = state(1);
        b.iter(|| *m.lock().unwrap() = black_box(v))
    });
    g.finish();

    let mut g = c.benchmark_group(PUBLISH_R);
    g.warm_up_time(warm).measurement_time(secs).sample_size(50);
    {
        let ex = ex.clone();
        let _reader = Background::start(move || {
            let _ = black_box(ex.prepare_examine().map(|t| fields(&t)));
        });
        g.bench_function(PUBLISH_FN, |b| {
            b.iter_custom(|iters| p.timed_publishes(iters))
        });
    }
    {
        let mr = Arc::clone(&m);
        let _reader = Background::start(move || {
            black_box(mutex_read(&mr));
        });
        let v = state(2);
        g.bench_function(MUTEX_WRITE, |b| {
            b.iter(|| *m.lock().unwrap() = black_box(v))
        });
    }
    g.finish();

    // Both sides flat out at once, counted over a fixed window: how the
    // reader and the writer share the contended state.
    let duels = if c_is_measuring() {
        Some((duel_seqlock(&p, DUEL), duel_mutex(&m, DUEL)))
    } else {
        None
    };

    p.quit();
    // The runner has ended: its examiner answers Gone.
    assert_eq!(
        ex.prepare_examine::<Progress>().err(),
        Some(examine::Error::Gone)
    );
    (tally, duels)
}

/// How long each design runs with both sides flat out.
const DUEL: Duration = Duration::from_millis(500);

/// Whether this run measures (not `--test` or `--list`).
fn c_is_measuring() -> bool {
    !std::env::args().any(|a| a == "--test" || a == "--list")
}

/// Reads per second, share of reads that were `Again`, writes per second.
struct Duel {
    reads: f64,
    again: f64,
    writes: f64,
}

fn duel_seqlock(p: &Publisher, window: Duration) -> Duel {
    p.set_spinning(true);
    std::thread::sleep(Duration::from_millis(20));
    let (mut ok, mut again) = (0u64, 0u64);
    let w0 = p.count();
    let t0 = Instant::now();
    while t0.elapsed() < window {
        for _ in 0..64 {
            match p.runner.prepare_examine().map(|t| fields(&t)) {
                Ok(v) => {
                    black_box(v);
                    ok += 1;
                }
                Err(_) => again += 1,
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let writes = p.count() - w0;
    p.set_spinning(false);
    Duel {
        reads: (ok + again) as f64 / secs,
        again: again as f64 / (ok + again) as f64,
        writes: writes as f64 / secs,
    }
}

fn duel_mutex(m: &Arc<Mutex<Progress>>, window: Duration) -> Duel {
    let mw = Arc::clone(m);
    let mut n = 0u64;
    let writer = Background::start(move || {
        n += 1;
        *mw.lock().unwrap() = state(n);
    });
    std::thread::sleep(Duration::from_millis(20));
    let mut reads = 0u64;
    let w0 = writer.count();
    let t0 = Instant::now();
    while t0.elapsed() < window {
        for _ in 0..64 {
            black_box(mutex_read(m));
        }
        reads += 64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let writes = writer.count() - w0;
    Duel {
        reads: reads as f64 / secs,
        again: 0.0,
        writes: writes as f64 / secs,
    }
}

fn main() {
    common::mark_start();
    let warm =
        Duration::from_secs_f64(hangsafe_testkit::env::or("HANGSAFE_EXAMINE_WARMUP", 0.5f64));
    let secs = Duration::from_secs_f64(hangsafe_testkit::env::or("HANGSAFE_EXAMINE_SECS", 1.5f64));
    let load_before = common::system_load();
    // No plots: rendering them takes longer than measuring here.
    let mut c = common::criterion().without_plots().configure_from_args();
    let (tally, duels) = groups(&mut c, warm, secs);
    c.final_summary();
    if common::read_estimate(READ, SEQLOCK).is_err() {
        return; // --test, --list or filtered out: no figures
    }
    println!();
    println!("system before: {load_before}");
    println!("system after:  {}", common::system_load());
    common::print_ratios(READ, SEQLOCK, &[SEQLOCK_EX, MUTEX]);
    common::print_ratios(READ_W, SEQLOCK, &[MUTEX]);
    tally.report("seqlock reads under a publishing writer");
    common::print_ratios(PUBLISH, PUBLISH_FN, &[MUTEX_WRITE]);
    common::print_ratios(PUBLISH_R, PUBLISH_FN, &[MUTEX_WRITE]);
    if let Some((seq, mutex)) = duels {
        println!();
        println!(
            "== reader and writer both flat out for {:.1} s (one thread each) ==",
            DUEL.as_secs_f64()
        );
        println!(
            "{:<8}  {:>12}  {:>8}  {:>13}",
            "design", "reads/s", "Again", "writes/s"
        );
        for (name, d) in [(SEQLOCK, &seq), (MUTEX, &mutex)] {
            println!(
                "{:<8}  {:>10.1} M  {:>7.2}%  {:>11.1} M",
                name,
                d.reads / 1e6,
                100.0 * d.again,
                d.writes / 1e6
            );
        }
    }
}
