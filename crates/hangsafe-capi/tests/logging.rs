//! The log callback as a C daemon uses it: `tests/c/log_test.c`, linked
//! statically and dynamically and under valgrind, must deliver every
//! message to its callback and nothing to stderr (H36, H37 and the
//! routing itself are checked inside the program; see docs/races.md).

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

/// Runs the program and checks that the library wrote nothing to stderr
/// (the harness writes only "FAIL" lines there, which fail the run anyway).
fn run_log_test(mut cmd: Command, what: &str, limit: Duration) {
    // Not a level: the complaint about it must reach the callback too.
    cmd.env("HANGSAFE_LOG", "loud");
    let out = run_c_test(cmd, what, limit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("hangsafe:"),
        "{what}: library messages reached stderr:\n{stderr}"
    );
}

#[test]
fn log_callback_static() {
    let exe = build_static("log_test", "log_test_static");
    run_log_test(
        Command::new(exe),
        "log_test (static)",
        Duration::from_secs(120),
    );
}

#[test]
fn log_callback_shared() {
    let exe = build_shared("log_test", "log_test_shared");
    run_log_test(
        Command::new(exe),
        "log_test (shared)",
        Duration::from_secs(120),
    );
}

#[test]
fn log_callback_valgrind() {
    if !on_path("valgrind") {
        assert!(std::env::var_os("CI").is_none(), "CI must install valgrind");
        println!("skipped: valgrind is not on PATH (set CI to make this an error)");
        return;
    }
    let exe = build_static("log_test", "log_test_valgrind");
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ])
    .arg(exe)
    .env("HANGSAFE_TEST_VALGRIND", "1")
    .env("HANGSAFE_LOG", "loud");
    let (out, in_time) = output_within(cmd, Duration::from_secs(600));
    show("log_test (valgrind)", &out);
    assert!(in_time, "log_test under valgrind was killed");
    assert!(out.status.success(), "log_test under valgrind failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" passed, 0 failed"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.lines().any(|l| l.starts_with("hangsafe:")),
        "library messages reached stderr"
    );
}
