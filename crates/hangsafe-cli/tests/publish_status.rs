//! End-to-end tests of `hangsafe watch --publish NAME` and `hangsafe
//! status NAME`: the real binary, real shared memory, real SIGKILLs.
//!
//! Every test uses its own NAME and removes its regions at the end (also
//! when it fails: [`Name`] unlinks on drop). Time bounds are generous.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MARGIN: Duration = Duration::from_secs(5);
const PATIENCE: Duration = Duration::from_secs(30);

/// A unique NAME; its regions are removed on drop.
struct Name(String);

impl Name {
    fn new(test: &str) -> Name {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Name(format!(
            "test-{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        for suffix in ["", ".alive"] {
            let _ = std::fs::remove_file(format!("/dev/shm/hangsafe-{}{suffix}", self.0));
        }
    }
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hangsafe-publish-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `watch --publish NAME` on `targets`.
fn publisher(name: &str, stall_ms: Option<u64>, extra: &[&str], targets: &[&Path]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangsafe"));
    c.args(["watch", "--json", "--publish", name])
        .args(extra)
        .args(targets)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ms) = stall_ms {
        c.env("HANGSAFE_TEST_PUBLISH_STALL_MS", ms.to_string());
    }
    c.spawn().expect("run hangsafe watch --publish")
}

/// Runs `status` with `args`, checking it returns within `--timeout`
/// (default 1 s) plus the margin.
fn status(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .arg("status")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run hangsafe status");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1) + MARGIN,
        "status took {took:?}"
    );
    (out, took)
}

fn status_json(name: &str) -> (i32, Value) {
    let (out, _) = status(&["--json", name]);
    let code = out.status.code().expect("status killed");
    let text = String::from_utf8(out.stdout).unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {text:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

/// Polls `status --json` until `pred` holds.
fn wait_status(name: &str, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (out, _) = status(&["--json", name]);
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            if pred(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill9(child: &mut Child) {
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
}

/// The rows of a table published for `[file, missing]`: every row is one
/// of them in its known state, each at most once; a consistent table.
fn check_rows(v: &Value, file: &Path, missing: &Path) {
    let rows = v["rows"].as_array().expect("rows");
    assert!(rows.len() <= 2, "{v}");
    let mut targets = Vec::new();
    for row in rows {
        let t = row["target"].as_str().unwrap();
        assert!(!targets.contains(&t), "duplicate row: {v}");
        targets.push(t);
        for key in ["kind", "state", "latency_ms", "detail"] {
            assert!(row.get(key).is_some(), "{key} missing: {row}");
        }
        if t == file.to_str().unwrap() {
            assert_eq!(row["state"], "up", "{row}");
        } else if t == missing.to_str().unwrap() {
            assert_eq!(row["state"], "down", "{row}");
        } else {
            panic!("unknown row {row}");
        }
    }
    // Nothing is published before a first result.
    if v["generation"].as_u64().unwrap() >= 1 {
        assert!(!rows.is_empty(), "{v}");
    }
}

#[test]
fn status_of_a_missing_or_invalid_name_fails_cleanly() {
    let name = Name::new("missing");
    let (out, _) = status(&[&name.0]);
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such table"));
    assert!(out.stdout.is_empty());
    let (out, _) = status(&["bad/name"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[test]
fn status_shows_an_alive_then_exited_publisher() {
    let name = Name::new("alive");
    let dir = scratch_dir();
    let file = dir.join("file");
    let missing = dir.join("missing");
    std::fs::write(&file, b"x").unwrap();
    let mut p = publisher(&name.0, None, &["--interval", "100ms"], &[&file, &missing]);
    let v = wait_status(&name.0, "two rows", |v| {
        v["rows"].as_array().is_some_and(|r| r.len() == 2)
    });
    assert_eq!(v["publisher"]["state"], "alive", "{v}");
    assert_eq!(v["publisher"]["pid"], p.id());
    assert_eq!(v["owner_died"], false);
    check_rows(&v, &file, &missing);
    let (code, _) = status_json(&name.0);
    assert_eq!(code, 1, "a target is down");
    // Human output: the table and the publisher line.
    let (out, _) = status(&[&name.0]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("publisher alive"), "{text}");
    assert!(text.contains(file.to_str().unwrap()), "{text}");

    // A second publisher for the same name is refused while this one runs.
    let second = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .args(["watch", "--publish", &name.0, "--count", "1"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(73), "{second:?}");

    // SIGTERM: a clean exit; the table stays, the publisher "exited".
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(p.id() as i32, libc::SIGTERM) }, 0);
    assert!(p.wait().unwrap().code().is_some());
    let (code, v) = status_json(&name.0);
    assert_eq!(v["publisher"]["state"], "exited", "{v}");
    assert_eq!(code, 1);
    check_rows(&v, &file, &missing);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_mid_update_in_a_loop_status_stays_consistent_and_a_new_publisher_recovers() {
    let name = Name::new("kill");
    let dir = scratch_dir();
    let file = dir.join("file");
    let missing = dir.join("missing");
    std::fs::write(&file, b"x").unwrap();
    let mut owner_deaths = 0;
    let mut last_generation = 0;
    const ROUNDS: u64 = 8;
    for i in 0..ROUNDS {
        // Every update stalls 100 ms with the lock held, between writing
        // the new copy and completing it: a kill lands mid-update.
        let mut p = publisher(
            &name.0,
            Some(100),
            &["--interval", "50ms"],
            &[&file, &missing],
        );
        // Wait until this publisher has published at least once.
        let v = wait_status(&name.0, "an update by the new publisher", |v| {
            v["publisher"]["pid"] == p.id() && v["generation"].as_u64() > Some(last_generation)
        });
        check_rows(&v, &file, &missing);
        // Let it run a varying while, then kill it.
        std::thread::sleep(Duration::from_millis(30 + 37 * i));
        kill9(&mut p);
        let mut stderr = String::new();
        std::io::Read::read_to_string(p.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        if i > 0 {
            // It took over from the one killed before (whose death the
            // last status had already noticed).
            assert!(stderr.contains("died"), "publisher {i} stderr: {stderr}");
        }

        let (code, v) = status_json(&name.0);
        assert_eq!(v["publisher"]["state"], "died", "{v}");
        assert_eq!(v["publisher"]["pid"], p.id(), "{v}");
        check_rows(&v, &file, &missing);
        let generation = v["generation"].as_u64().unwrap();
        assert!(generation > last_generation, "{v}");
        last_generation = generation;
        if v["owner_died"] == true {
            owner_deaths += 1;
            // The interrupted update is the next generation; it is not
            // shown.
            assert_eq!(
                v["interrupted_generation"].as_u64(),
                Some(generation + 1),
                "{v}"
            );
        }
        assert!([0, 1, 2].contains(&code), "{code}");
        // Recovered: the next read finds a consistent lock, same table.
        let (_, again) = status_json(&name.0);
        assert_eq!(again["owner_died"], false, "{again}");
        assert_eq!(again["generation"], v["generation"]);
        assert_eq!(again["publisher"]["state"], "died");
    }
    // With a 100 ms stall per update and 50 ms rounds, the publisher is
    // inside an update nearly all the time: most kills land mid-update.
    assert!(
        owner_deaths >= 1,
        "no kill landed mid-update in {ROUNDS} tries"
    );

    // The human report of an owner death.
    let mut p = publisher(
        &name.0,
        Some(200),
        &["--interval", "50ms"],
        &[&file, &missing],
    );
    wait_status(&name.0, "an update", |v| {
        v["publisher"]["pid"] == p.id() && v["generation"].as_u64() > Some(last_generation)
    });
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        // Kill it while it is in an update: poll until a kill lands there.
        std::thread::sleep(Duration::from_millis(120));
        kill9(&mut p);
        let (out, _) = status(&[&name.0]);
        let text = String::from_utf8(out.stdout).unwrap();
        if text.contains("owner died") {
            break text;
        }
        assert!(Instant::now() < deadline, "no mid-update kill: {text}");
        p = publisher(
            &name.0,
            Some(200),
            &["--interval", "50ms"],
            &[&file, &missing],
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.contains("publisher died"), "{text}");
    // The last consistent table: one or both targets (the first update
    // may hold only the first result).
    assert!(
        text.contains(file.to_str().unwrap()) || text.contains(missing.to_str().unwrap()),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
