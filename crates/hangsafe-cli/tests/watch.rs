//! End-to-end tests of `hangsafe watch`: the real binary against targets
//! the tests make (FIFOs with and without a writer, a file, a missing
//! path), checked through its JSON events and its human lines.
//!
//! Timing is never asserted tightly: intervals are short (200 ms) so many
//! rounds happen, but every wait has a deadline of many seconds and the
//! only upper bound (SIGINT to exit) has a generous margin, so a loaded
//! 2-core machine passes.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(200);
/// Slack for process scheduling and exit on a loaded machine.
const MARGIN: Duration = Duration::from_secs(5);
/// How long to wait for something that should happen within a few rounds.
const PATIENCE: Duration = Duration::from_secs(30);

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hangsafe-watch-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// A running watch whose stdout lines arrive on a channel; killed (and
/// reaped) on drop if still running.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
            .arg("watch")
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hangsafe watch");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `pred` accepts one (which is returned), or panics
    /// after [`PATIENCE`].
    fn until(&mut self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {PATIENCE:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for exit (at most `limit`), collecting the remaining output.
    fn wait(&mut self, limit: Duration) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = start.elapsed();
                // The reader thread ends at EOF: collect everything.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                let code = status.code().expect("watch was killed by a signal");
                return (code, took);
            }
            if start.elapsed() > limit {
                panic!(
                    "watch did not exit within {limit:?}; output:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Checks the per-target rule on the event stream: a probe is started
/// only when the target's previous probe is over, i.e. finished up or
/// down, or timed out and then returned. Returns the number of probes
/// started per target.
fn check_one_probe_at_a_time(events: &[Value]) -> HashMap<String, usize> {
    // target -> outstanding probe id
    let mut outstanding: HashMap<String, u64> = HashMap::new();
    let mut started: HashMap<String, usize> = HashMap::new();
    for e in events {
        let target = e["target"].as_str().unwrap_or_default().to_owned();
        match e["event"].as_str().unwrap() {
            "probe_started" => {
                let id = e["probe"].as_u64().unwrap();
                if let Some(prev) = outstanding.get(&target) {
                    panic!("probe {id} of {target} started while probe {prev} is in flight: {e}");
                }
                outstanding.insert(target.clone(), id);
                *started.entry(target).or_default() += 1;
            }
            "probe_finished" => {
                let id = e["probe"].as_u64().unwrap();
                assert_eq!(outstanding.get(&target), Some(&id), "{e}");
                let state = e["state"].as_str().unwrap();
                let hung = state == "timeout" && e["work_returned"] == Value::Bool(false);
                if !hung {
                    outstanding.remove(&target);
                }
            }
            "probe_returned" => {
                let id = e["probe"].as_u64().unwrap();
                assert_eq!(outstanding.remove(&target), Some(id), "{e}");
            }
            "probe_skipped" => {
                let reason = e["reason"].as_str().unwrap();
                assert!(
                    reason == "still running" || reason == "still hung",
                    "unexpected skip: {e}"
                );
                if reason == "still running" {
                    assert!(
                        outstanding.contains_key(&target),
                        "skip without a probe: {e}"
                    );
                }
            }
            _ => {}
        }
    }
    started
}

#[test]
fn json_events_never_overlap_probes_a_fifo_recovers_and_sigint_stops_it() {
    let dir = scratch_dir();
    let recovers = dir.join("recovers");
    let hung = dir.join("hung");
    let file = dir.join("file");
    mkfifo(&recovers);
    mkfifo(&hung);
    std::fs::write(&file, b"x").unwrap();
    let (r, h, f) = (
        recovers.to_str().unwrap(),
        hung.to_str().unwrap(),
        file.to_str().unwrap(),
    );
    let mut w = Watch::start(&["--interval", "200ms", "--timeout", "1s", "--json", r, h, f]);

    // Both FIFOs time out first; meanwhile their targets are skipped
    // ("still running": the timeout is five intervals).
    for fifo in [r, h] {
        w.until("a timeout of a FIFO", |l| {
            l.contains("\"transition\"") && l.contains(fifo) && l.contains("\"to\":\"timeout\"")
        });
    }
    // The recovering FIFO gets a writer (read-write: never blocks), so its
    // pending or next open completes: up.
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&recovers)
        .unwrap();
    w.until("the FIFO recovering", |l| {
        l.contains("\"transition\"") && l.contains(r) && l.contains("\"to\":\"up\"")
    });
    // A few more rounds, then Ctrl-C.
    let round_now = w
        .seen
        .iter()
        .filter(|l| l.contains("\"event\":\"round\""))
        .count();
    w.until("three more rounds", |l| {
        l.contains("\"event\":\"round\"") && l.contains(&format!("\"round\":{}", round_now + 3))
    });
    w.signal(libc::SIGINT);
    let (code, took) = w.wait(INTERVAL + MARGIN);
    assert!(took < INTERVAL + MARGIN, "exit took {took:?}");
    // The hung FIFO timed out: exit status 2.
    assert_eq!(code, 2, "{}", w.seen.join("\n"));

    let ev = events(&w.seen);
    let started = check_one_probe_at_a_time(&ev);
    assert!(
        started[r] >= 2 && started[h] >= 1 && started[f] >= 4,
        "{started:?}"
    );
    let skipped = |t: &str| {
        ev.iter()
            .filter(|e| e["event"] == "probe_skipped" && e["target"] == t)
            .count()
    };
    assert!(skipped(h) >= 1, "the hung FIFO was never skipped");
    // The hung FIFO never answered.
    assert!(!ev
        .iter()
        .any(|e| e["event"] == "transition" && e["target"] == h && e["to"] == "up"));
    // The file: exactly one transition (its first result).
    let file_transitions = ev
        .iter()
        .filter(|e| e["event"] == "transition" && e["target"] == f)
        .count();
    assert_eq!(file_transitions, 1);

    let summary = ev.last().unwrap();
    assert_eq!(summary["event"], "summary", "{summary}");
    assert_eq!(summary["reason"], "signal");
    assert_eq!(summary["signal"], "SIGINT");
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["timeout"], 1);
    assert_eq!(summary["up"], 2);
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        for key in ["target", "kind", "state", "latency_ms", "detail"] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn human_lines_show_transitions_and_a_final_summary() {
    let dir = scratch_dir();
    let fifo = dir.join("fifo");
    let file = dir.join("file");
    let missing = dir.join("missing");
    mkfifo(&fifo);
    std::fs::write(&file, b"x").unwrap();
    let args = [
        "--interval",
        "200ms",
        "--timeout",
        "500ms",
        "--count",
        "3",
        file.to_str().unwrap(),
        missing.to_str().unwrap(),
        fifo.to_str().unwrap(),
    ];
    let mut w = Watch::start(&args);
    let (code, _) = w.wait(PATIENCE);
    let out = w.seen.join("\n");
    assert_eq!(code, 2, "{out}");
    let line_for = |path: &Path| {
        w.seen
            .iter()
            .find(|l| l.contains(path.to_str().unwrap()) && l.contains("->"))
            .unwrap_or_else(|| panic!("no transition for {path:?}:\n{out}"))
            .clone()
    };
    // TIME TARGET KIND OLD -> NEW LATENCY DETAIL
    let up = line_for(&file);
    assert!(up.contains(" path  - -> up  "), "{up}");
    assert!(up.as_bytes()[2] == b':' && up.as_bytes()[5] == b':', "{up}");
    let down = line_for(&missing);
    assert!(
        down.contains("- -> down") && down.contains("No such file"),
        "{down}"
    );
    let timeout = line_for(&fifo);
    assert!(timeout.contains("- -> timeout") && timeout.contains("no answer within 500ms"));
    assert!(out.contains("hangsafe watch done after 3 rounds:"), "{out}");
    assert!(out.contains("1 up, 1 down, 1 timed out"), "{out}");
    assert!(out.contains("abandoned threads: "), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_stops_an_idle_watch_with_a_long_interval() {
    let dir = scratch_dir();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let mut w = Watch::start(&["--interval", "1h", "--json", file.to_str().unwrap()]);
    w.until("the first result", |l| l.contains("\"transition\""));
    w.signal(libc::SIGTERM);
    // Not one interval (an hour): at once.
    let (code, took) = w.wait(MARGIN);
    assert_eq!(code, 0);
    assert!(took < MARGIN, "{took:?}");
    let last: Value = serde_json::from_str(w.seen.last().unwrap()).unwrap();
    assert_eq!(last["signal"], "SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["watch", "tcp://nohost"][..],
        &["watch", "--count", "0", "/"],
        &["watch", "--interval", "0", "/"],
        &["watch", "--publish", "bad/name", "/"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
}
