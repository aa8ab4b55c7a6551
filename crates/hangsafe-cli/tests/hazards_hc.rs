//! Regression tests for the CLI hazards of issue 11 (docs/races.md):
//! option values that overflowed time arithmetic, targets with an unknown
//! scheme that were probed as paths, targets that could not be started
//! reported as `down`, a stopped `watch` that dropped undecided targets
//! and exited 0, exit-status documentation that did not match the code,
//! library log lines that were lost (or would repeat thousands of times),
//! and `watch` probing pseudo filesystems that `check` skips.
//!
//! Every test runs the real binary. The thread-limit tests run it as an
//! unprivileged uid under `RLIMIT_NPROC` (`setpriv` + `prlimit`), so that
//! thread creation really fails; they are skipped (with a note) when the
//! tests do not run as root or the tools are missing.

use hangsafe_cli::exit;
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for a command expected to return at once.
const QUICK: Duration = Duration::from_secs(30);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hangsafe")
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("NO_COLOR")
        .env_remove("HANGSAFE_LOG")
        .env_remove("HANGSAFE_CANCEL_SIGNAL");
    c
}

/// Runs `cmd`, killing it if it outlives `bound` (a test failure).
fn run_bounded(mut cmd: Command, bound: Duration) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hangsafe");
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit within {bound:?}\nstdout:\n{}\nstderr:\n{}",
                out.recv().unwrap_or_default(),
                err.recv().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out.recv().unwrap_or_default(),
        stderr: err.recv().unwrap_or_default(),
    };
    assert!(
        status.code().is_some(),
        "{cmd:?} was killed by {status:?}\nstderr:\n{}",
        run.stderr
    );
    run
}

/// Reads a pipe to its end on a thread; the text arrives on the channel.
fn reader(mut r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

fn run(args: &[&str]) -> Run {
    run_bounded(command(args), QUICK)
}

/// A fresh directory, removed on drop; world-readable so that an
/// unprivileged uid can probe it.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hangsafe-hc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- H26: durations too large for the clock ----------------------------------

#[test]
fn h26_huge_durations_are_usage_errors_not_panics() {
    let cases: &[&[&str]] = &[
        &["check", "--timeout", "9223372036854775807", "/"],
        &["check", "--timeout", "18446744073709551615", "/"],
        &[
            "watch",
            "--count",
            "1",
            "--interval",
            "9223372036854775807",
            "/",
        ],
        &["watch", "--count", "1", "--timeout", "5000000000000h", "/"],
        &["watch", "--count", "1", "--timeout", "8d", "/"],
        &["status", "--timeout", "9223372036854775807", "x"],
    ];
    for args in cases {
        let r = run(args);
        assert_eq!(
            r.code,
            exit::USAGE.code as i32,
            "hangsafe {args:?}: exit {}\nstdout:\n{}\nstderr:\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        assert!(
            r.stderr.contains("too large") && r.stderr.contains("at most 7d"),
            "hangsafe {args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn h26_the_largest_durations_still_work() {
    let r = run(&["check", "--timeout", "7d", "/"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = run(&[
        "watch",
        "--json",
        "--count",
        "1",
        "--interval",
        "168h",
        "--timeout",
        "604800s",
        "/",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("\"to\":\"up\""), "{}", r.stdout);
}

// ---- H27: unknown schemes and HOST:PORT are not paths ------------------------

#[test]
fn h27_unknown_schemes_are_usage_errors_with_a_hint() {
    for target in [
        "http://127.0.0.1:80",
        "udp://127.0.0.1:53",
        "tcp:127.0.0.1:1",
        "127.0.0.1:7101",
        "localhost:22",
        "tcp://::1:22",
        "tcp://a b:80",
        "file:///etc",
    ] {
        for sub in ["check", "watch"] {
            let args: &[&str] = if sub == "check" {
                &[sub, target]
            } else {
                &[sub, "--count", "1", target]
            };
            let r = run(args);
            assert_eq!(
                r.code,
                exit::USAGE.code as i32,
                "hangsafe {sub} {target}: exit {}\nstdout:\n{}\nstderr:\n{}",
                r.code,
                r.stdout,
                r.stderr
            );
            assert!(
                r.stderr.contains(target) || target.contains(' '),
                "{sub} {target}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("tcp://HOST:PORT") && r.stderr.contains("path:"),
                "{sub} {target}: no hint: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn h27_a_path_with_a_colon_has_an_escape_hatch() {
    let dir = Scratch::new();
    std::fs::write(dir.path("a:b"), b"x").unwrap();
    for target in ["path:a:b", "./a:b"] {
        let r = run_bounded(
            {
                let mut c = command(&["check", "--json", "--timeout", "30s", target]);
                c.current_dir(&dir.0);
                c
            },
            QUICK,
        );
        assert_eq!(r.code, 0, "{target}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("\"state\": \"up\""), "{}", r.stdout);
    }
    // Absolute paths and colons after the first component stay paths.
    let r = run(&["check", "--timeout", "30s", s(&dir.path("a:b"))]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The bare name is refused, and the hint names both escapes.
    let mut c = command(&["check", "a:b"]);
    c.current_dir(&dir.0);
    let r = run_bounded(c, QUICK);
    assert_eq!(r.code, exit::USAGE.code as i32, "{}", r.stderr);
    assert!(
        r.stderr.contains("./a:b") && r.stderr.contains("path:a:b"),
        "{}",
        r.stderr
    );
}

// ---- H28: targets that could not be started ----------------------------------

/// `hangsafe ARGS` as an unprivileged uid whose processes may have at
/// most `nproc` threads (`RLIMIT_NPROC`, counted per real uid), so that
/// thread creation really fails with `EAGAIN`. `None` when that cannot be
/// arranged here (not root, no setpriv/prlimit).
fn limited(nproc: u32, args: &[&str], dir: Option<&Path>) -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("h28: not root: cannot switch to an unprivileged uid; skipped");
        return None;
    }
    for tool in ["setpriv", "prlimit"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("h28: {tool} missing; skipped");
            return None;
        }
    }
    // A uid of its own for every run (the limit counts every thread of
    // the uid, so two runs under one uid would disturb each other).
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) as u32 % 16;
    let uid = 100_000 + (std::process::id() % 100_000) * 16 + n;
    let uid = uid.to_string();
    let limit = format!("--nproc={nproc}:{nproc}");
    let mut c = Command::new("setpriv");
    c.args(["--reuid", &uid, "--regid", &uid, "--clear-groups"])
        .args(["prlimit", &limit, "--", bin()])
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("HANGSAFE_LOG")
        .env_remove("HANGSAFE_CANCEL_SIGNAL");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    Some(c)
}

/// World-readable targets any uid can probe.
const READABLE: [&str; 4] = ["/", "/etc", "/usr", "/proc/self"];

#[test]
fn h28_targets_that_cannot_start_are_error_exit_3() {
    // Two tasks: the main thread and the deadline timer; no runner thread.
    let mut args = vec!["check", "--json", "--timeout", "30s"];
    args.extend(READABLE);
    let Some(cmd) = limited(2, &args, None) else {
        return;
    };
    let r = run_bounded(cmd, QUICK);
    assert_eq!(
        r.code,
        exit::ERROR.code as i32,
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    let rows: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows.len(), READABLE.len());
    for row in &rows {
        assert_eq!(row["state"], "error", "{row}");
        assert!(row["latency_ms"].is_null(), "{row}");
        let detail = row["detail"].as_str().unwrap();
        assert!(
            detail.contains("not started") && detail.contains("Resource temporarily unavailable"),
            "{row}"
        );
    }
    // The table says it too.
    args.retain(|a| *a != "--json");
    let r = run_bounded(limited(2, &args, None).unwrap(), QUICK);
    assert_eq!(r.code, exit::ERROR.code as i32, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().filter(|l| l.contains(" error ")).count(),
        4,
        "{}",
        r.stdout
    );
}

#[test]
fn h28_a_thread_limit_lowers_concurrency_instead_of_failing() {
    // Three tasks: main, timer and one runner thread: the probes run one
    // after another on that thread.
    let mut args = vec!["check", "--json", "--timeout", "60s"];
    args.extend(READABLE);
    let Some(cmd) = limited(3, &args, None) else {
        return;
    };
    let r = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let rows: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(rows.iter().all(|o| o["state"] == "up"), "{}", r.stdout);
}

#[test]
fn h28_watch_reports_error_when_no_probe_can_start() {
    let args = [
        "watch",
        "--json",
        "--count",
        "2",
        "--interval",
        "100ms",
        "--timeout",
        "30s",
        "/",
        "/etc",
    ];
    let Some(cmd) = limited(2, &args, None) else {
        return;
    };
    let r = run_bounded(cmd, QUICK);
    assert_eq!(
        r.code,
        exit::ERROR.code as i32,
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let transitions: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "transition")
        .collect();
    assert_eq!(transitions.len(), 2, "{}", r.stdout);
    assert!(
        transitions.iter().all(|t| t["to"] == "error"),
        "{}",
        r.stdout
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["error"], 2, "{summary}");
    assert_eq!(summary["rows"].as_array().unwrap().len(), 2, "{summary}");
}

// ---- H29: a stopped watch with undecided targets -----------------------------

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Starts `hangsafe watch ARGS`; returns the child and its stdout lines.
fn watch(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = command(&[&["watch"], args].concat())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one contains `needle`; all lines read are appended
/// to `seen`.
fn until(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + QUICK;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line.clone());
        if line.contains(needle) {
            return;
        }
    }
    panic!("no line with {needle:?}:\n{}", seen.join("\n"));
}

/// Waits for the child to exit after SIGTERM; its exit code and the rest
/// of its output.
fn stop(mut child: Child, rx: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> i32 {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > QUICK {
            let _ = child.kill();
            panic!("watch did not stop:\n{}", seen.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    status.code().expect("watch killed by a signal")
}

#[test]
fn h29_a_stopped_watch_lists_undecided_targets_and_does_not_exit_0() {
    let dir = Scratch::new();
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let (child, rx) = watch(&["--interval", "1s", "--timeout", "120s", s(&fifo), "/"]);
    let mut seen = Vec::new();
    until(&rx, "-> up", &mut seen);
    let code = stop(child, &rx, &mut seen);
    let text = seen.join("\n");
    assert_eq!(code, exit::ERROR.code as i32, "{text}");
    let row = seen
        .iter()
        .find(|l| l.starts_with(s(&fifo)))
        .unwrap_or_else(|| panic!("the FIFO is missing from the final table:\n{text}"));
    assert!(row.contains("pending"), "{row}");
    assert!(text.contains("1 pending"), "{text}");
}

#[test]
fn h29_json_summary_rows_include_undecided_targets() {
    let dir = Scratch::new();
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let (child, rx) = watch(&[
        "--json",
        "--interval",
        "1s",
        "--timeout",
        "120s",
        s(&fifo),
        "/",
    ]);
    let mut seen = Vec::new();
    until(&rx, "\"event\":\"transition\"", &mut seen);
    let code = stop(child, &rx, &mut seen);
    assert_eq!(code, exit::ERROR.code as i32, "{}", seen.join("\n"));
    let summary: Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["exit_code"], exit::ERROR.code);
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{summary}");
    let fifo_row = rows.iter().find(|r| r["target"] == s(&fifo)).unwrap();
    assert_eq!(fifo_row["state"], "pending", "{summary}");
    assert!(fifo_row["latency_ms"].is_null());
}

// ---- H30: exit-status documentation -----------------------------------------

#[test]
fn h30_help_lists_exactly_the_exit_codes_of_the_code() {
    let main = run(&["--help"]);
    assert!(
        !main.stdout.contains("64 and up"),
        "the main help still claims every code from 64 is a usage error:\n{}",
        main.stdout
    );
    // `status --remove` has its own list, after "With --remove:".
    for (sub, heading) in [
        ("check", "Exit status:\n"),
        ("watch", "Exit status:\n"),
        ("status", "Exit status:\n"),
        ("status --remove", "With --remove:\n"),
        ("check --format nagios", "With --format nagios:\n"),
        ("bench", "Exit status:\n"),
        ("man", "Exit status:\n"),
        ("serve", "Exit status:\n"),
    ] {
        let cmd = sub.split(' ').next().unwrap();
        let help = run(&[cmd, "--help"]).stdout;
        let section = help
            .split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("{sub}: no Exit status section:\n{help}"));
        let listed: Vec<u8> = section
            .lines()
            .take_while(|l| l.starts_with("  ") || l.is_empty())
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        let want: Vec<u8> = exit::for_command(sub).map(|c| c.code).collect();
        assert_eq!(listed, want, "{sub} --help:\n{section}");
    }
}

#[test]
fn h30_readme_exit_table_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let rows = readme_exit_rows(&readme);
    assert!(!rows.is_empty(), "README has no exit-status table");
    let want: Vec<(u8, String, String)> = exit::CODES
        .iter()
        .map(|c| (c.code, c.commands.join(", "), c.meaning.to_owned()))
        .collect();
    assert_eq!(rows, want);
    assert!(!readme.contains("64 and up"), "README: 64 and up");
}

/// The rows `| code | commands | meaning |` of README's exit-status table.
fn readme_exit_rows(readme: &str) -> Vec<(u8, String, String)> {
    readme
        .lines()
        .skip_while(|l| !l.starts_with("| exit status |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells[1].trim_matches('`').parse().expect("a code");
            (code, cells[2].replace('`', ""), cells[3].to_owned())
        })
        .collect()
}

// ---- H31: library log lines reach stderr, repeats collapsed -------------------

#[test]
fn h31_repeated_library_errors_are_shown_once_with_a_count() {
    let mut args = vec!["check", "--timeout", "30s"];
    let many: Vec<String> = (0..40).map(|i| format!("/etc/./{i}")).collect();
    args.extend(many.iter().map(String::as_str));
    let Some(cmd) = limited(2, &args, None) else {
        return;
    };
    let r = run_bounded(cmd, QUICK);
    let hits = r.stderr.matches("cannot create a runner thread").count();
    assert_eq!(hits, 1, "stderr:\n{}", r.stderr);
    assert!(
        r.stderr.contains("last message repeated 39 times"),
        "stderr:\n{}",
        r.stderr
    );
}

// ---- H32: watch's default targets are check's --------------------------------

#[test]
fn h32_watch_without_targets_skips_pseudo_filesystems_like_check() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let proc_mounted = mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/proc") && l.contains(" - proc "));
    if !proc_mounted {
        eprintln!("h32: /proc is not a proc mount here; skipped");
        return;
    }
    let targets = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["watch", "--json", "--count", "1", "--timeout", "5s"];
        args.extend(extra);
        let r = run_bounded(command(&args), Duration::from_secs(60));
        let start: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
        start["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    let some = targets(&[]);
    assert!(!some.iter().any(|t| t == "/proc"), "{some:?}");
    let all = targets(&["--all"]);
    assert!(all.iter().any(|t| t == "/proc"), "{all:?}");
}
