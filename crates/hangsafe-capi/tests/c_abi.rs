//! Builds the C test programs in `tests/c/` against the freshly built C
//! libraries and runs each of them three ways: linked statically, linked
//! dynamically, and (linked statically) under valgrind.
//!
//! * `runner_test.c`: `runner.h` and the metrics of `hangsafe.h`.
//! * `cancel_test.c`: the cancellable system calls of `hangsafe.h`.
//! * `robust_test.c`: the robust process-shared mutex of `hangsafe.h`
//!   (`hs_robust_mutex_*`), with forked processes sharing a mapping.
//! * `misuse_test.c`: every entry point of both headers with NULL, zero,
//!   huge and extreme arguments, in the wrong order, from inside work and
//!   in a `fork()` child (hazards H38..H56, `docs/races.md`).
//! * `osevent_test.c`: the libxl-style event hooks of a runner set
//!   (`hs_set_attach`, `hs_osevent_occurred_*`): a poll loop driven
//!   through the hooks with stale and garbage events injected from a
//!   second thread (`docs/races.md`).
//!
//! The libraries are `libhangsafe.a` and `libhangsafe.so` in the profile
//! directory that holds this test binary's `deps/` directory. Cargo does
//! not build them for integration tests by itself: a library without an
//! `rlib` crate type is not linkable, so the test targets do not depend on
//! it. The first test that needs them therefore runs
//! `cargo build -p hangsafe-capi --lib` with the same target directory and
//! profile (cheap when they are up to date), so the C test always runs
//! against the current sources.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{build_static, on_path, output_within, run_c_test, show};

/// How long one run of the C test may take natively, and under valgrind.
const NATIVE_LIMIT: Duration = Duration::from_secs(120);
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

/// [`support::build_shared`], and checks with `ldd` that the program loads
/// the library just built, not one installed elsewhere.
fn build_shared(program: &str, name: &str) -> PathBuf {
    let exe = support::build_shared(program, name);
    if let Ok(ldd) = Command::new("ldd").arg(&exe).output() {
        let text = String::from_utf8_lossy(&ldd.stdout);
        println!("{text}");
        let want = support::shared_lib_dir().join("libhangsafe.so.0");
        assert!(
            text.contains(&want.display().to_string()),
            "{name} does not load {}",
            want.display()
        );
    }
    exe
}

/// Runs a C test program: finished within `limit`, exit 0, the harness's
/// success summary.
fn run(cmd: Command, what: &str, limit: Duration) {
    run_c_test(cmd, what, limit);
}

/// Runs `program` linked statically.
fn run_static(program: &str) {
    support::run_static(program, NATIVE_LIMIT);
}

/// Runs `program` linked dynamically.
fn run_shared(program: &str) {
    let exe = build_shared(program, &format!("{program}_shared"));
    run(
        Command::new(&exe),
        &format!("{program} (shared)"),
        NATIVE_LIMIT,
    );
}

/// Runs `program` (linked statically) under valgrind's memcheck
/// ([`support::run_valgrind`]).
fn run_valgrind(program: &str) {
    support::run_valgrind(program, VALGRIND_LIMIT);
}

#[test]
fn c_test_static() {
    run_static("runner_test");
}

#[test]
fn c_test_shared() {
    run_shared("runner_test");
}

#[test]
fn c_test_valgrind() {
    run_valgrind("runner_test");
}

#[test]
fn c_cancel_test_static() {
    run_static("cancel_test");
}

#[test]
fn c_cancel_test_shared() {
    run_shared("cancel_test");
}

#[test]
fn c_cancel_test_valgrind() {
    run_valgrind("cancel_test");
}

#[test]
fn c_robust_test_static() {
    run_static("robust_test");
}

#[test]
fn c_robust_test_shared() {
    run_shared("robust_test");
}

#[test]
fn c_robust_test_valgrind() {
    run_valgrind("robust_test");
}

#[test]
fn c_misuse_test_static() {
    run_static("misuse_test");
}

#[test]
fn c_misuse_test_shared() {
    run_shared("misuse_test");
}

#[test]
fn c_misuse_test_valgrind() {
    run_valgrind("misuse_test");
}

// ---- Event-loop hooks of a runner set (docs/races.md) ---------------------

#[test]
fn hk_osevent_test_static() {
    run_static("osevent_test");
}

#[test]
fn hk_osevent_test_shared() {
    run_shared("osevent_test");
}

#[test]
fn hk_osevent_test_valgrind() {
    run_valgrind("osevent_test");
}

// ---- Process-level hazards (docs/races.md) -------------------------------

#[test]
fn hp_process_test_static() {
    run_static("process_test");
}

#[test]
fn hp_process_test_shared() {
    run_shared("process_test");
}

#[test]
fn hp_process_test_valgrind() {
    run_valgrind("process_test");
}

/// The flags the adopter runs its tests with: no suppression file,
/// the default `--num-callers`, and "possibly lost" counted as an error.
const STRICT_VALGRIND: &[&str] = &[
    "--leak-check=full",
    "--show-possibly-lost=yes",
    "--errors-for-leak-kinds=definite,possible",
    "--error-exitcode=1",
];

/// H14: a C program that used runners and exits (returning from `main`, or
/// calling `exit`) is clean under valgrind with [`STRICT_VALGRIND`]: the
/// idle pool threads and the timer thread were joined at exit. Static and
/// shared. Skipped without valgrind, except on CI.
#[test]
fn h14_c_exit_is_valgrind_clean() {
    if !on_path("valgrind") {
        assert!(std::env::var_os("CI").is_none(), "CI must install valgrind");
        println!("skipped: valgrind is not on PATH (set CI to make this an error)");
        return;
    }
    let programs = [
        build_static("exit_test", "exit_test_static"),
        build_shared("exit_test", "exit_test_shared"),
    ];
    for exe in &programs {
        for mode in ["clean", "exit"] {
            let mut cmd = Command::new("valgrind");
            cmd.args(STRICT_VALGRIND).arg(exe).arg(mode);
            run(
                cmd,
                &format!("{} {mode} (strict valgrind)", exe.display()),
                VALGRIND_LIMIT,
            );
        }
    }
}

/// H15, H16: exit never waits for hung work, and `exit` from inside work
/// ends the process: each within a few seconds, with the status given.
#[test]
fn h15_c_exit_with_hung_work_or_from_work_is_prompt() {
    let exe = build_static("exit_test", "exit_test_modes");
    for (mode, want) in [("hung", 3), ("from-work", 7)] {
        let mut cmd = Command::new(&exe);
        cmd.arg(mode);
        let start = Instant::now();
        let (out, in_time) = output_within(cmd, Duration::from_secs(60));
        let took = start.elapsed();
        show(&format!("exit_test {mode}"), &out);
        assert!(in_time, "exit_test {mode} hung");
        assert_eq!(out.status.code(), Some(want), "exit_test {mode}");
        assert!(
            took < Duration::from_secs(20),
            "exit_test {mode} took {took:?}"
        );
    }
}
