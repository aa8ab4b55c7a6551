//! The C runner sets and examine (`hs_set_*`, `hs_publish`,
//! `hs_runner_examine`, `hs_set_examine` of `hangsafe.h`), through the
//! built C libraries: `tests/c/set_test.c`, `tests/c/examine_test.c` and
//! the checker loop example `examples/checker_loop.c`, each linked
//! statically, dynamically, and (statically) under valgrind with no
//! suppressions. Hazards H97..H109 and races R55..R58 of
//! `docs/races.md`.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{build_shared, build_static, output_within, run_c_test, show, valgrind_memcheck};

const NATIVE_LIMIT: Duration = Duration::from_secs(180);
const VALGRIND_LIMIT: Duration = Duration::from_secs(900);

/// The example, as `compile` (which reads `tests/c/<name>.c`) reaches it.
const CHECKER_LOOP: &str = "../../examples/checker_loop";

fn run_static(program: &str) {
    support::run_static(program, NATIVE_LIMIT);
}

fn run_shared(program: &str) {
    let exe = build_shared(program, &format!("{program}_shared"));
    run_c_test(
        Command::new(&exe),
        &format!("{program} (shared)"),
        NATIVE_LIMIT,
    );
}

fn run_valgrind(program: &str) {
    support::run_valgrind(program, VALGRIND_LIMIT);
}

#[test]
fn hs_set_test_static() {
    run_static("set_test");
}

#[test]
fn hs_set_test_shared() {
    run_shared("set_test");
}

#[test]
fn hs_set_test_valgrind() {
    run_valgrind("set_test");
}

#[test]
fn hs_examine_test_static() {
    run_static("examine_test");
}

#[test]
fn hs_examine_test_shared() {
    run_shared("examine_test");
}

#[test]
fn hs_examine_test_valgrind() {
    run_valgrind("examine_test");
}

/// Runs the checker loop example with `args`; it must print "checker
/// loop: ok" and exit 0.
fn run_checker_loop(mut cmd: Command, args: &[&str], what: &str, limit: Duration) {
    cmd.args(args);
    let (out, in_time) = output_within(cmd, limit);
    show(what, &out);
    assert!(in_time, "{what} did not finish within {limit:?}");
    assert!(out.status.success(), "{what} failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("checker loop: ok"),
        "{what}: no success line"
    );
}

/// The checker loop: 1,000 paths, every round, random release,
/// cancel and deadlines; exactly-once outcomes, none for released probes,
/// `live_contexts` back to 0 (R55, R56, H102, H103, H109).
#[test]
fn hs_checker_loop_static_and_shared() {
    let exe = build_static(CHECKER_LOOP, "checker_loop_static");
    run_checker_loop(
        Command::new(&exe),
        &["1000", "20", "1"],
        "checker_loop (static)",
        NATIVE_LIMIT,
    );
    let exe = build_shared(CHECKER_LOOP, "checker_loop_shared");
    run_checker_loop(
        Command::new(&exe),
        &["1000", "10", "2"],
        "checker_loop (shared)",
        NATIVE_LIMIT,
    );
}

/// The checker loop under valgrind: 1,000 paths, fewer rounds.
#[test]
fn hs_checker_loop_valgrind() {
    let Some(mut cmd) = valgrind_memcheck() else {
        return;
    };
    let exe = build_static(CHECKER_LOOP, "checker_loop_valgrind");
    cmd.arg(&exe);
    run_checker_loop(
        cmd,
        &["1000", "5", "3"],
        "checker_loop (valgrind)",
        VALGRIND_LIMIT,
    );
}
