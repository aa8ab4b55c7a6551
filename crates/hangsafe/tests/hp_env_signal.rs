//! H13: an invalid `HANGSAFE_CANCEL_SIGNAL` is an error that is logged,
//! never a silent fallback; the usual spellings of a real-time signal are
//! understood.
//!
//! The variable is read once per process, so each value is tried in a
//! fresh process: this test binary runs itself with `H13_CHILD` set.

use std::process::Command;
use std::sync::Mutex;

static LOGGED: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if let Ok(mut l) = LOGGED.lock() {
            l.push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// The child's side: uses a runner (which installs the cancel signal) and
/// prints what it saw.
fn child() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let r = hangsafe::runner::spawn(|_| 1).unwrap();
    assert_eq!(r.wait(), Ok(1));
    let loud = LOGGED
        .lock()
        .unwrap()
        .iter()
        .any(|(l, m)| *l <= log::Level::Warn && m.contains("HANGSAFE_CANCEL_SIGNAL"));
    println!(
        "H13 signal={} loud={loud}",
        hangsafe::cancel::signal().unwrap_or(0)
    );
}

fn run_with(value: &str) -> (i32, bool) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "h13_invalid_cancel_signal_env_is_loud",
            "--nocapture",
        ])
        .env("H13_CHILD", "1")
        .env("HANGSAFE_CANCEL_SIGNAL", value)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{value}: {text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("H13 "))
        .unwrap_or_else(|| panic!("{value}: no result line in {text}"));
    let mut sig = -1;
    let mut loud = false;
    for kv in line.split(' ') {
        match kv.split_once('=') {
            Some(("signal", v)) => sig = v.parse().unwrap(),
            Some(("loud", v)) => loud = v == "true",
            _ => {}
        }
    }
    (sig, loud)
}

#[test]
fn h13_invalid_cancel_signal_env_is_loud() {
    if std::env::var_os("H13_CHILD").is_some() {
        child();
        return;
    }
    if std::env::var_os("HANGSAFE_UNDER_EMULATION").is_some() {
        // The child is this test binary, re-executed; under qemu-user it is
        // a foreign ELF the host cannot exec directly. Parsing the variable
        // does not depend on the architecture and runs natively on x86_64.
        eprintln!("skipped under emulation: cannot re-execute the test binary");
        return;
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    // Invalid: refused (no signal: cooperative cancellation), and said so
    // at warn level or above.
    for bad in ["abc", "RTMIN+99", "RTMIN+-1", "1", "SIGKILL"] {
        assert_eq!(run_with(bad), (0, true), "{bad:?}");
    }
    // Valid spellings.
    for (good, sig) in [
        ("RTMIN+5", min + 5),
        ("SIGRTMIN+5", min + 5),
        ("rtmin+3", min + 3),
        ("RTMAX-2", max - 2),
        ("SIGRTMAX-2", max - 2),
        (&(min + 6).to_string(), min + 6),
    ] {
        assert_eq!(run_with(good), (sig, false), "{good:?}");
    }
}
