//! `hangsafe bench`: a quick, self-contained comparison of hangsafe's
//! mechanisms with the ways of doing the same thing without hangsafe, run
//! on the user's machine so that the README's performance claims can be
//! checked there.
//!
//! Three parts, each a subject (hangsafe) and its peers in the same
//! process:
//!
//! * runner round trip: `runner::spawn(|_| ..)` + `wait` on the global pool
//!   against a detached pthread per runner (the C design hangsafe replaces)
//!   and `std::thread::spawn` + `join`;
//! * cancel latency: work blocked in a `read` on an empty pipe, from the
//!   cancel to the work's return, against `poll` on the pipe plus an
//!   eventfd that the canceller writes;
//! * cancellable versus plain syscalls: a 1-byte read from `/dev/zero`
//!   through `cancel::read` against `syscall(SYS_read)`, glibc's `read` and
//!   `poll` + eventfd + `read`.
//!
//! * the robust mutex ([`robust`]): uncontended, two processes
//!   (ping-pong, free-running), and recovery from an owner's death,
//!   against glibc's robust process-shared mutex (plain and PI) and std's
//!   `Mutex`.
//!
//! Peers are interleaved round by round (the order rotates every round), so
//! that a change in machine load hits every side alike; each round gives
//! one ratio per peer, and the report shows the median time per operation
//! and the median and quartiles of the per-round ratios. This is what makes
//! an overhead of a few percent measurable on a noisy machine, where two
//! separate time windows of the same syscall can differ by 5-8%.

use hangsafe::cancel::{self, CancelToken};
use hangsafe::runner;
use std::fmt::Write as _;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod robust;

use crate::exit;
use hangsafe_testkit::fd::eventfd;
use hangsafe_testkit::peers::{
    eventfd_cancel_sample, gettid, poll_eventfd_read, thread_per_runner, wait_blocked_in,
    SAMPLE_LIMIT,
};
use hangsafe_testkit::stats::{
    block_len, block_ratios, fmt_ns_with, interleave, quantile, Quartiles,
};

/// Environment variable multiplying the workload (rounds and samples).
const SCALE_ENV: &str = "HANGSAFE_BENCH_SCALE";

/// One-line description of `bench` (`-h`, command list).
const BENCH_ABOUT: &str =
    "Measure hangsafe against its peers on this machine and print the ratios (under a minute)";

/// Description of `bench` (`--help`).
const BENCH_LONG_ABOUT: &str = "\
Measure hangsafe's mechanisms on this machine against the usual ways of
doing the same thing, and print each measurement next to its peer with the
ratio, so that the performance claims of the README can be checked here.

  runner round trip   runner::spawn + wait (pooled) against a detached
                      pthread per runner (64 KiB stack, the C design) and
                      std::thread::spawn + join
  cancel latency      work blocked in read(2) on an empty pipe; time from
                      the cancel to the work's return (p50, p99), against
                      poll(2) on the pipe plus an eventfd the canceller
                      writes
  cancellable read    1-byte read from /dev/zero through cancel::read
                      against syscall(SYS_read), glibc's read and
                      poll + eventfd + read
  robust mutex        RawRobustMutex in shared memory against glibc's
                      robust process-shared mutex (plain and PI) and
                      std's Mutex: uncontended lock + unlock; two
                      processes on two CPUs taking strict turns and
                      free-running; the lock after an owner died with
                      nobody waiting (p50, p99)

Peers run in the same process, interleaved round by round, so that a change
in machine load affects every side alike. Times are medians; a ratio is the
median of the per-round ratios (peer time / hangsafe time: above 1,
hangsafe is faster), with the quartiles in brackets; for cancel latency, a
round is a block of consecutive samples and its ratio that of the medians.
A verdict says \"no clear difference\" when the quartiles straddle 1.

A full run takes about 15-30 seconds on an idle machine; each part stops
adding rounds after a time cap, so the whole run stays under a minute on a
busy one. Close other work for stable figures; the header shows the load
average before and after the run.";

/// Footer of `bench`'s help before the exit status (generated from
/// [`crate::exit`]): environment.
const BENCH_ENVIRONMENT: &str = "\
Environment:
  HANGSAFE_BENCH_SCALE=F  multiply the number of rounds and samples by F
                          (for example 0.05 for a smoke test, 3 for more
                          precision); the time caps still apply";

/// Options of `hangsafe bench`.
#[derive(Debug, clap::Args)]
#[command(
    about = BENCH_ABOUT,
    long_about = BENCH_LONG_ABOUT,
    after_help = format!("{BENCH_ENVIRONMENT}\n\n{}", exit::help_section("bench"))
)]
pub(crate) struct BenchArgs {
    /// Run a fifth of the rounds and samples (a few seconds; less precise)
    #[arg(long)]
    quick: bool,

    /// Print one JSON object instead of the tables
    #[arg(long)]
    json: bool,
}

/// Runs `hangsafe bench`.
pub(crate) fn run(args: BenchArgs) -> ExitCode {
    let scale = match std::env::var(SCALE_ENV) {
        Ok(s) => match parse_scale(&s) {
            Some(f) => f,
            None => {
                eprintln!("hangsafe bench: {SCALE_ENV}={s:?} is not a positive number");
                return ExitCode::from(exit::USAGE.code);
            }
        },
        Err(_) => 1.0,
    };
    let work = Workload::new(if args.quick { 0.2 } else { 1.0 } * scale, args.quick);

    // glibc's syscall wrappers take their multi-threaded paths once a
    // second thread exists, as in any program with a runner pool; keep one
    // for the whole run so that every part measures those paths.
    std::thread::spawn(|| loop {
        std::thread::park();
    });

    let before = Machine::now();
    let mut sections = Vec::new();
    type Part = fn(&Workload) -> Result<Section, String>;
    let parts: [(&str, Part); 7] = [
        ("runner round trip", runner_round_trip),
        ("cancel latency", cancel_latency),
        ("cancellable read", cancellable_read),
        ("robust mutex, uncontended", robust::uncontended),
        ("robust mutex, ping-pong", robust::ping_pong),
        ("robust mutex, free-running", robust::free_running),
        ("robust mutex, owner-death recovery", robust::recovery),
    ];
    for (name, part) in parts {
        eprint!("hangsafe bench: {name}... ");
        let t = Instant::now();
        match part(&work) {
            Ok(s) => {
                eprintln!("{:.1} s", t.elapsed().as_secs_f64());
                sections.push(s);
            }
            Err(e) => {
                eprintln!("failed");
                eprintln!("hangsafe bench: {name}: {e}");
                return ExitCode::from(exit::SOFTWARE.code);
            }
        }
    }
    let after = Machine::now();

    let text = if args.json {
        let mut s = render_json(&before, &after, &work, &sections);
        s.push('\n');
        s
    } else {
        render_text(&before, &after, &work, &sections)
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hangsafe bench: cannot write the report: {e}");
            ExitCode::from(exit::IOERR.code)
        }
    }
}

// ---------------------------------------------------------------------------
// Workload

/// How much to measure.
#[derive(Debug, Clone)]
struct Workload {
    /// The multiplier applied to the full workload.
    scale: f64,
    /// Runner round trip: rounds, and round trips per variant per round.
    runner_rounds: usize,
    runner_batch: u32,
    /// Cancel latency: samples per design.
    latency_samples: usize,
    /// Cancellable read: rounds, and calls per arm per round.
    read_rounds: usize,
    read_batch: u32,
    /// Each part stops adding rounds (or samples) after this long.
    cap: Duration,
}

impl Workload {
    fn new(scale: f64, quick: bool) -> Workload {
        Workload {
            scale,
            runner_rounds: scaled(201, scale, 5),
            runner_batch: 300,
            latency_samples: scaled(3000, scale, 50),
            read_rounds: scaled(201, scale, 5),
            read_batch: 20_000,
            cap: Duration::from_secs(if quick { 4 } else { 15 }),
        }
    }
}

/// Parses a workload multiplier: a finite number greater than zero.
fn parse_scale(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
}

/// `n * scale` rounded to an odd number (so that the median is a sample),
/// at least `min`.
fn scaled(n: usize, scale: f64, min: usize) -> usize {
    let v = ((n as f64) * scale).round().max(min as f64) as usize;
    v | 1
}

// ---------------------------------------------------------------------------
// Statistics

/// The verdict on per-round ratios `peer time / hangsafe time`: faster or
/// slower only if the quartiles agree on the direction.
fn ratio_verdict(r: &Quartiles) -> String {
    if r.q1 > 1.0 {
        format!("hangsafe is {} faster", fmt_times(r.median))
    } else if r.q3 < 1.0 {
        format!("hangsafe is {} slower", fmt_times(1.0 / r.median))
    } else {
        String::from("no clear difference (the quartiles straddle 1)")
    }
}

/// `12.7×`, `1.06×`.
fn fmt_times(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

/// A ratio without its sign: `12.7`, `1.06`.
fn fmt_ratio(x: f64) -> String {
    fmt_times(x).trim_end_matches('×').to_owned()
}

/// A workload multiplier: `1`, `0.2`, `0.01`.
fn fmt_scale(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A percentage with its sign: `+2.7%`.
fn fmt_pct(p: f64) -> String {
    format!("{p:+.1}%")
}

// ---------------------------------------------------------------------------
// Report model

/// One measured way of doing the thing.
#[derive(Debug)]
struct Row {
    name: &'static str,
    /// The figures shown, in the section's column order, in nanoseconds.
    values_ns: Vec<f64>,
    /// Per-round `peer time / hangsafe time`; `None` for the subject.
    ratio: Option<Quartiles>,
    /// One line: what the figures say.
    verdict: Option<String>,
}

/// One part of the run.
#[derive(Debug)]
struct Section {
    key: &'static str,
    title: &'static str,
    /// How it was measured (rounds, batch, ...).
    method: String,
    /// Labels of [`Row::values_ns`].
    columns: &'static [&'static str],
    rows: Vec<Row>,
    /// Notes shown under the table.
    notes: Vec<String>,
}

/// What the header says about the machine.
#[derive(Debug)]
struct Machine {
    cpus: usize,
    /// 1, 5 and 15 minute load averages.
    load: Option<[f64; 3]>,
    kernel: Option<String>,
    cpu_model: Option<String>,
}

impl Machine {
    fn now() -> Machine {
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| parse_loadavg(&s));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load,
            kernel,
            cpu_model,
        }
    }

    fn load_text(&self) -> String {
        match self.load {
            Some([a, b, c]) => format!("{a:.2} {b:.2} {c:.2}"),
            None => String::from("unknown"),
        }
    }
}

/// The three load averages of `/proc/loadavg`.
fn parse_loadavg(s: &str) -> Option<[f64; 3]> {
    let mut it = s.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn render_text(before: &Machine, after: &Machine, work: &Workload, sections: &[Section]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hangsafe bench {}: {} CPU{}{}, load average {} (1/5/15 min) before, {} after",
        env!("CARGO_PKG_VERSION"),
        before.cpus,
        if before.cpus == 1 { "" } else { "s" },
        before
            .cpu_model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        before.load_text(),
        after.load_text(),
    );
    let _ = writeln!(
        s,
        "Linux {}; {}; workload scale {}",
        before.kernel.as_deref().unwrap_or("(unknown kernel)"),
        if cfg!(debug_assertions) {
            "DEBUG build: the figures are not representative (build with --release)"
        } else {
            "release build"
        },
        fmt_scale(work.scale),
    );
    if let Some([l1, ..]) = before.load {
        if l1 >= 0.5 * before.cpus as f64 {
            let _ = writeln!(
                s,
                "note: the machine was busy (1-min load {l1:.2} on {} CPUs); expect noisy figures",
                before.cpus
            );
        }
    }
    let _ = writeln!(
        s,
        "Peers run in this process, interleaved round by round. Ratio = peer time /\n\
         hangsafe time, median of the per-round ratios [quartiles]."
    );
    for sec in sections {
        render_section(&mut s, sec);
    }
    s
}

/// One section of the text report: title, header, rows with their
/// verdicts, notes.
fn render_section(s: &mut String, sec: &Section) {
    {
        let _ = writeln!(s);
        let _ = writeln!(s, "{} ({})", sec.title, sec.method);
        let name_w = sec
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut header = format!("  {:<name_w$}", "way");
        for c in sec.columns {
            let _ = write!(header, "  {c:>10}");
        }
        let _ = write!(header, "  ratio");
        let _ = writeln!(s, "{header}");
        for r in &sec.rows {
            let mut line = format!("  {:<name_w$}", r.name);
            for v in &r.values_ns {
                let _ = write!(line, "  {:>10}", fmt_ns_with(*v, 2));
            }
            match r.ratio {
                Some(q) => {
                    let _ = write!(
                        line,
                        "  {} [{}, {}]",
                        fmt_times(q.median),
                        fmt_ratio(q.q1),
                        fmt_ratio(q.q3)
                    );
                }
                None => line.push_str("  (hangsafe)"),
            }
            let _ = writeln!(s, "{}", line.trim_end());
            if let Some(v) = &r.verdict {
                let _ = writeln!(s, "  {:<name_w$}    -> {v}", "");
            }
        }
        for n in &sec.notes {
            let _ = writeln!(s, "  note: {n}");
        }
    }
}

fn render_json(before: &Machine, after: &Machine, work: &Workload, sections: &[Section]) -> String {
    let machine = |m: &Machine| {
        serde_json::json!({
            "cpus": m.cpus,
            "load_average": m.load,
            "kernel": m.kernel,
            "cpu_model": m.cpu_model,
        })
    };
    let sections: Vec<_> = sections
        .iter()
        .map(|sec| {
            let rows: Vec<_> = sec
                .rows
                .iter()
                .map(|r| {
                    let values: serde_json::Map<String, serde_json::Value> = sec
                        .columns
                        .iter()
                        .zip(&r.values_ns)
                        .map(|(c, v)| (format!("{c}_ns"), serde_json::json!(v)))
                        .collect();
                    serde_json::json!({
                        "name": r.name,
                        "values": values,
                        "ratio": r.ratio.map(|q| serde_json::json!({
                            "median": q.median, "q1": q.q1, "q3": q.q3,
                        })),
                        "verdict": r.verdict,
                    })
                })
                .collect();
            serde_json::json!({
                "key": sec.key,
                "title": sec.title,
                "method": sec.method,
                "rows": rows,
                "notes": sec.notes,
            })
        })
        .collect();
    let v = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "debug_build": cfg!(debug_assertions),
        "scale": work.scale,
        "machine_before": machine(before),
        "machine_after": machine(after),
        "ratio": "peer time / hangsafe time, median and quartiles of the per-round ratios",
        "sections": sections,
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|_| String::from("{}"))
}

// ---------------------------------------------------------------------------
// Interleaved rounds

/// A row from per-round batch times of a peer (`times`) and of hangsafe
/// (`subject`), `batch` operations each.
fn peer_row(name: &'static str, times: &[f64], subject: &[f64], batch: u32) -> Row {
    let mut per_op: Vec<f64> = times.iter().map(|t| t / f64::from(batch)).collect();
    let mut ratios: Vec<f64> = times.iter().zip(subject).map(|(p, h)| p / h).collect();
    let ratio = Quartiles::of(&mut ratios);
    Row {
        name,
        values_ns: vec![Quartiles::of(&mut per_op).median],
        ratio: Some(ratio),
        verdict: Some(ratio_verdict(&ratio)),
    }
}

/// The subject's row.
fn subject_row(name: &'static str, times: &[f64], batch: u32) -> Row {
    let mut per_op: Vec<f64> = times.iter().map(|t| t / f64::from(batch)).collect();
    Row {
        name,
        values_ns: vec![Quartiles::of(&mut per_op).median],
        ratio: None,
        verdict: None,
    }
}

/// Whether a target is met: `Some(true)` if the whole interquartile range
/// meets it, `Some(false)` if none of it does, `None` (inconclusive) if the
/// quartiles straddle it.
fn target_met(q: &Quartiles, meets: impl Fn(f64) -> bool) -> Option<bool> {
    match (meets(q.q1), meets(q.median), meets(q.q3)) {
        (true, true, true) => Some(true),
        (false, false, false) => Some(false),
        _ => None,
    }
}

/// `met`, `MISSED` or `inconclusive (...)`.
fn target_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "inconclusive (the quartiles straddle it; rerun on a quiet machine)",
    }
}

/// Appends the README's target to a row's verdict.
fn with_target(mut row: Row, target: &str, met: Option<bool>) -> Row {
    let v = row.verdict.take().unwrap_or_default();
    row.verdict = Some(format!("{v}; README target {target}: {}", target_text(met)));
    row
}

// ---------------------------------------------------------------------------
// Runner round trip

fn runner_round_trip(work: &Workload) -> Result<Section, String> {
    let batch = work.runner_batch;
    let spawn_err = |e: runner::SpawnError| format!("runner::spawn: {e}");
    // Sanity, outside the timing: every variant computes the same thing.
    let one = runner::spawn(|_| black_box(1u32))
        .map_err(spawn_err)?
        .wait()
        .map_err(|e| format!("runner: {e}"))?;
    if one != 1 || thread_per_runner::round_trip().map_err(|e| format!("pthread_create: {e}"))? != 1
    {
        return Err(String::from("a round trip computed the wrong value"));
    }

    let mut hangsafe = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            let r = runner::spawn(|_| black_box(1u32)).map_err(spawn_err)?;
            black_box(r.wait().map_err(|e| format!("runner: {e}"))?);
        }
        Ok(t.elapsed())
    };
    let mut pthread = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(thread_per_runner::round_trip().map_err(|e| format!("pthread_create: {e}"))?);
        }
        Ok(t.elapsed())
    };
    let mut std_thread = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            let h = std::thread::spawn(|| black_box(1u32));
            black_box(h.join().map_err(|_| String::from("thread panicked"))?);
        }
        Ok(t.elapsed())
    };
    let t = interleave(
        &mut [&mut hangsafe, &mut pthread, &mut std_thread],
        work.runner_rounds,
        work.cap,
    )?;
    let pthread_row = peer_row(
        "detached pthread per runner (C design)",
        &t[1],
        &t[0],
        batch,
    );
    let met = pthread_row
        .ratio
        .and_then(|q| target_met(&q, |r| r >= 10.0));
    Ok(Section {
        key: "runner_round_trip",
        title: "Runner round trip: spawn trivial work, wait for its result",
        method: format!("{} rounds of {batch} per way", t[0].len()),
        columns: &["median/op"],
        rows: vec![
            subject_row("hangsafe runner::spawn + wait (pooled)", &t[0], batch),
            with_target(pthread_row, ">= 10x faster", met),
            peer_row("std::thread::spawn + join", &t[2], &t[0], batch),
        ],
        notes: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// Cancel latency

/// One sample of hangsafe's cancel latency: a runner blocked in
/// `cancel::read` on an empty pipe; from `cancel()` to the work's return
/// (timestamped by the work). The flag says whether the block was
/// confirmed.
fn hangsafe_sample() -> Result<(Duration, bool), String> {
    let (r, w) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let runner = runner::spawn(move |_| {
        let _ = tid_tx.send(gettid());
        let mut b = [0u8; 1];
        let res = cancel::read(&r, &mut b);
        let _ = done_tx.send((Instant::now(), res));
    })
    .map_err(|e| format!("runner::spawn: {e}"))?;
    let tid = tid_rx
        .recv_timeout(SAMPLE_LIMIT)
        .map_err(|_| String::from("the runner's work never started"))?;
    let confirmed = wait_blocked_in(tid, libc::SYS_read)?;
    let t0 = Instant::now();
    runner.cancel();
    let Ok((t1, res)) = done_rx.recv_timeout(SAMPLE_LIMIT) else {
        let _ = (&w).write_all(b"x"); // release the work
        return Err(String::from(
            "a cancel did not interrupt the blocked read within 5 s \
             (is the cancel signal in use by something else?)",
        ));
    };
    if res != Err(cancel::Error::Cancelled) {
        return Err(format!(
            "the cancelled read returned {res:?}, not Cancelled"
        ));
    }
    drop(w);
    Ok((t1.duration_since(t0), confirmed))
}

fn cancel_latency(work: &Workload) -> Result<Section, String> {
    // Warm-up (also installs the cancel signal handler).
    for _ in 0..5 {
        hangsafe_sample()?;
        eventfd_cancel_sample()?;
    }
    let mut h = Vec::with_capacity(work.latency_samples);
    let mut e = Vec::with_capacity(work.latency_samples);
    let mut unconfirmed = 0usize;
    let start = Instant::now();
    for i in 0..work.latency_samples {
        if i >= 20 && start.elapsed() > work.cap {
            break;
        }
        let (a, b) = if i % 2 == 0 {
            let a = hangsafe_sample()?;
            (a, eventfd_cancel_sample()?)
        } else {
            let b = eventfd_cancel_sample()?;
            (hangsafe_sample()?, b)
        };
        unconfirmed += usize::from(!a.1) + usize::from(!b.1);
        h.push(a.0.as_nanos() as f64);
        e.push(b.0.as_nanos() as f64);
    }
    let mut blocks = block_ratios(&h, &e);
    let ratio = Quartiles::of(&mut blocks);
    h.sort_by(f64::total_cmp);
    e.sort_by(f64::total_cmp);
    let mut notes = Vec::new();
    let overall = quantile(&e, 0.5) / quantile(&h, 0.5);
    if overall < ratio.q1 || overall > ratio.q3 {
        notes.push(format!(
            "the ratio of the overall p50s ({}) lies outside the blocks' quartiles: \
             latencies changed during the run or are bimodal; take the p50s as rough",
            fmt_ratio(overall)
        ));
    }
    if unconfirmed > 0 {
        notes.push(format!(
            "{unconfirmed} samples could not confirm through /proc that the call was \
             blocked before the cancel (waited 2 ms instead)"
        ));
    }
    Ok(Section {
        key: "cancel_latency",
        title: "Cancel latency: read(2) blocked on an empty pipe, cancel to return",
        method: format!(
            "{} samples per design, alternating; ratio of the p50s per block of {}",
            h.len(),
            block_len(h.len())
        ),
        columns: &["p50", "p99"],
        rows: vec![
            Row {
                name: "hangsafe runner.cancel() (signal)",
                values_ns: vec![quantile(&h, 0.5), quantile(&h, 0.99)],
                ratio: None,
                verdict: None,
            },
            Row {
                name: "poll + eventfd the canceller writes",
                values_ns: vec![quantile(&e, 0.5), quantile(&e, 0.99)],
                ratio: Some(ratio),
                verdict: Some(format!(
                    "p50: {}; p99 ratio {}",
                    ratio_verdict(&ratio),
                    fmt_ratio(quantile(&e, 0.99) / quantile(&h, 0.99))
                )),
            },
        ],
        notes,
    })
}

// ---------------------------------------------------------------------------
// Cancellable read

fn cancellable_read(work: &Workload) -> Result<Section, String> {
    let batch = work.read_batch;
    let zero = File::open("/dev/zero").map_err(|e| format!("/dev/zero: {e}"))?;
    let fd = zero.as_raw_fd();
    let efd = eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let efd_raw = efd.as_raw_fd();
    // In a cancellation scope, as a runner's work is: the stub path.
    let token = CancelToken::new();
    let _scope = token
        .enter()
        .map_err(|e| format!("cancellation scope: {e:?}"))?;

    let mut b_raw = [0u8; 1];
    let mut raw = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            // SAFETY: a 1-byte buffer for a 1-byte read.
            black_box(unsafe {
                libc::syscall(libc::SYS_read, black_box(fd), b_raw.as_mut_ptr(), 1usize)
            });
        }
        Ok(t.elapsed())
    };
    let mut b_hs = [0u8; 1];
    let mut hangsafe = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(cancel::read(black_box(&zero), &mut b_hs).map_err(|e| format!("{e:?}"))?);
        }
        Ok(t.elapsed())
    };
    let mut b_libc = [0u8; 1];
    let mut glibc = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            // SAFETY: a 1-byte buffer for a 1-byte read.
            black_box(unsafe { libc::read(black_box(fd), b_libc.as_mut_ptr().cast(), 1) });
        }
        Ok(t.elapsed())
    };
    let mut b_poll = [0u8; 1];
    let mut polled = || -> Result<Duration, String> {
        let t = Instant::now();
        for _ in 0..batch {
            let n = poll_eventfd_read(black_box(fd), efd_raw, &mut b_poll)
                .ok_or_else(|| String::from("the idle eventfd fired"))?;
            black_box(n);
        }
        Ok(t.elapsed())
    };
    let t = interleave(
        &mut [&mut hangsafe, &mut raw, &mut glibc, &mut polled],
        work.read_rounds,
        work.cap,
    )?;
    let mut overhead: Vec<f64> = t[0]
        .iter()
        .zip(&t[1])
        .map(|(h, r)| (h / r - 1.0) * 100.0)
        .collect();
    let ov = Quartiles::of(&mut overhead);
    let mut raw_row = peer_row("raw syscall(SYS_read)", &t[1], &t[0], batch);
    raw_row.verdict = Some(format!(
        "hangsafe's overhead: {} median [{}, {}]; README target <= +3%: {}",
        fmt_pct(ov.median),
        fmt_pct(ov.q1),
        fmt_pct(ov.q3),
        target_text(target_met(&ov, |p| p <= 3.0))
    ));
    Ok(Section {
        key: "cancellable_read",
        title: "Cancellable read: 1-byte read(2) from /dev/zero",
        method: format!("{} rounds of {batch} calls per way", t[0].len()),
        columns: &["median/call"],
        rows: vec![
            subject_row("hangsafe cancel::read (in a scope)", &t[0], batch),
            raw_row,
            peer_row("glibc read", &t[2], &t[0], batch),
            peer_row("poll(fd + cancel eventfd), then read", &t[3], &t[0], batch),
        ],
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.25) - 1.75).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        // Out-of-range q is clamped.
        assert_eq!(quantile(&v, 2.0), 4.0);
    }

    #[test]
    fn quartiles_sort_first() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        let q = Quartiles::of(&mut v);
        assert_eq!(
            q,
            Quartiles {
                q1: 2.0,
                median: 3.0,
                q3: 4.0
            }
        );
        assert_eq!(v, [1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn verdict_needs_agreeing_quartiles() {
        let q = |q1, median, q3| Quartiles { q1, median, q3 };
        assert_eq!(
            ratio_verdict(&q(12.1, 12.7, 13.4)),
            "hangsafe is 12.7× faster"
        );
        assert_eq!(
            ratio_verdict(&q(1.02, 1.06, 1.1)),
            "hangsafe is 1.06× faster"
        );
        assert_eq!(ratio_verdict(&q(0.4, 0.5, 0.6)), "hangsafe is 2.00× slower");
        assert!(ratio_verdict(&q(0.97, 1.02, 1.05)).starts_with("no clear difference"));
        assert!(ratio_verdict(&q(1.0, 1.0, 1.0)).starts_with("no clear difference"));
    }

    #[test]
    fn scaling_is_odd_and_bounded() {
        assert_eq!(scaled(101, 1.0, 5), 101);
        assert_eq!(scaled(101, 0.2, 5), 21); // 20.2 -> 20 -> 21
        assert_eq!(scaled(101, 0.001, 5), 5);
        assert_eq!(scaled(2000, 0.05, 50), 101);
        assert_eq!(scaled(2000, 0.01, 50), 51);
        assert_eq!(parse_scale("0.05"), Some(0.05));
        assert_eq!(parse_scale(" 3 "), Some(3.0));
        assert_eq!(parse_scale("0"), None);
        assert_eq!(parse_scale("-1"), None);
        assert_eq!(parse_scale("inf"), None);
        assert_eq!(parse_scale("NaN"), None);
        assert_eq!(parse_scale("fast"), None);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ns_with(123.456, 2), "123.5 ns");
        assert_eq!(fmt_ns_with(1_290.0, 2), "1.29 µs");
        assert_eq!(fmt_ns_with(16_300_000.0, 2), "16.30 ms");
        assert_eq!(fmt_ns_with(2.5e9, 2), "2.50 s");
        assert_eq!(fmt_times(12.66), "12.7×");
        assert_eq!(fmt_times(1.064), "1.06×");
        assert_eq!(fmt_ratio(12.66), "12.7");
        assert_eq!(fmt_scale(1.0), "1");
        assert_eq!(fmt_scale(0.2 * 0.05), "0.01");
        assert_eq!(fmt_scale(2.5), "2.5");
        assert_eq!(fmt_pct(2.66), "+2.7%");
        assert_eq!(fmt_pct(-0.04), "-0.0%");
    }

    #[test]
    fn loadavg_parses() {
        assert_eq!(
            parse_loadavg("2.80 1.95 1.87 2/102 12583\n"),
            Some([2.80, 1.95, 1.87])
        );
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn interleave_rotates_and_warms_up() {
        use std::cell::RefCell;
        let log = RefCell::new(Vec::new());
        let mut a = || {
            log.borrow_mut().push('a');
            Ok(Duration::from_nanos(10))
        };
        let mut b = || {
            log.borrow_mut().push('b');
            Ok(Duration::from_nanos(20))
        };
        let t = interleave(&mut [&mut a, &mut b], 3, Duration::from_secs(60)).unwrap();
        assert_eq!(t, vec![vec![10.0; 3], vec![20.0; 3]]);
        // Warm-up a b, then rounds: a b, b a, a b.
        assert_eq!(log.borrow().iter().collect::<String>(), "ababbaab");
    }

    #[test]
    fn rows_take_medians_and_ratios() {
        let subject = [100.0, 110.0, 90.0];
        let peer = [1000.0, 1210.0, 810.0];
        let row = peer_row("peer", &peer, &subject, 10);
        assert_eq!(row.values_ns, vec![100.0]);
        let r = row.ratio.unwrap();
        assert!((r.median - 10.0).abs() < 1e-9, "{r:?}");
        assert_eq!(row.verdict.as_deref(), Some("hangsafe is 10.0× faster"));
        let s = subject_row("hangsafe", &subject, 10);
        assert_eq!(s.values_ns, vec![10.0]);
        assert!(s.ratio.is_none());
    }

    #[test]
    fn targets_need_the_whole_iqr() {
        let q = |q1, median, q3| Quartiles { q1, median, q3 };
        let ge10 = |r: f64| r >= 10.0;
        assert_eq!(target_met(&q(11.0, 12.0, 13.0), ge10), Some(true));
        assert_eq!(target_met(&q(7.0, 8.0, 9.0), ge10), Some(false));
        assert_eq!(target_met(&q(9.0, 12.0, 13.0), ge10), None);
        let le3 = |p: f64| p <= 3.0;
        assert_eq!(target_met(&q(-29.3, 1.2, 78.0), le3), None);
        assert_eq!(target_met(&q(0.2, 1.1, 1.8), le3), Some(true));
        assert!(target_text(None).starts_with("inconclusive"));
    }

    #[test]
    fn latency_blocks() {
        assert_eq!(block_len(3001), 150);
        assert_eq!(block_len(51), 5);
        assert_eq!(block_len(3), 5);
        // 12 samples, blocks of 5: [0..5) and [5..12).
        let h = [1.0; 12];
        let p = [2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0];
        assert_eq!(block_ratios(&h, &p), vec![2.0, 3.0]);
        // Fewer samples than a block: one block.
        assert_eq!(block_ratios(&[2.0, 4.0], &[4.0, 8.0]), vec![2.0]);
    }

    #[test]
    fn detached_round_trip_works() {
        for _ in 0..50 {
            assert_eq!(thread_per_runner::round_trip().unwrap(), 1);
        }
    }

    #[test]
    fn latency_samples_are_real() {
        let (d, _) = hangsafe_sample().unwrap();
        assert!(d < SAMPLE_LIMIT);
        let (d, _) = eventfd_cancel_sample().unwrap();
        assert!(d < SAMPLE_LIMIT);
    }
}
