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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Flags every build of the C test uses.
const CFLAGS: &[&str] = &[
    "-Wall",
    "-Wextra",
    "-Werror",
    "-std=c11",
    "-D_GNU_SOURCE",
    "-g",
];

/// System libraries a Rust staticlib needs on Linux
/// (`rustc --print native-static-libs`).
const STATIC_DEPS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The package directory.
fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/`: the test binary is `target/<profile>/deps/<name>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the test binary's path");
    let deps = exe.parent().expect("test binary has no parent directory");
    let profile = deps.parent().expect("deps/ has no parent directory");
    profile.to_path_buf()
}

/// The cargo arguments that select `profile_dir()`: target directory,
/// profile and, for a `--target` build, the target triple.
fn cargo_location_args() -> Vec<String> {
    let profile_dir = profile_dir();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory has no name")
        .to_owned();
    let mut args = Vec::new();
    let above = profile_dir
        .parent()
        .expect("profile directory has no parent");
    // Cargo marks the root of a target directory with CACHEDIR.TAG; if it
    // is not directly above the profile, the layout is
    // <target-dir>/<triple>/<profile>.
    if above.join("CACHEDIR.TAG").is_file() {
        args.push(format!("--target-dir={}", above.display()));
    } else {
        let root = above.parent().expect("target triple dir has no parent");
        let triple = above
            .file_name()
            .and_then(|n| n.to_str())
            .expect("target triple dir has no name");
        args.push(format!("--target-dir={}", root.display()));
        args.push(format!("--target={triple}"));
    }
    match profile.as_str() {
        "debug" => {}
        "release" => args.push("--release".to_owned()),
        other => args.push(format!("--profile={other}")),
    }
    args
}

/// Builds this package's C libraries once per test process.
fn build_libraries() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(manifest_dir())
            .args(["build", "-p", "hangsafe-capi", "--lib"])
            .args(cargo_location_args())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build -p hangsafe-capi failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A library file in the profile directory, built first if needed; fails
/// the test if it still is missing.
fn library(name: &str) -> PathBuf {
    build_libraries();
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found after building the package",
        path.display()
    );
    path
}

/// Where compiled test programs go (a scratch directory cargo provides).
fn out_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hangsafe-capi-c");
    std::fs::create_dir_all(&dir).expect("cannot create the C test output directory");
    dir.join(name)
}

fn show(what: &str, out: &Output) {
    println!("---- {what}: {}", out.status);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
}

/// Compiles `tests/c/<program>.c` with the given link arguments into `exe`.
fn compile(program: &str, exe: &Path, link: &[String]) {
    let dir = manifest_dir();
    let source = format!("tests/c/{program}.c");
    let out = Command::new("cc")
        .current_dir(&dir)
        .args(CFLAGS)
        .arg("-I")
        .arg("include")
        .arg(&source)
        .arg("-o")
        .arg(exe)
        .args(link)
        .output()
        .expect("cannot run cc");
    show("cc", &out);
    assert!(out.status.success(), "compiling {source} failed");
}

/// Builds `program` linked statically against libhangsafe.a, as `name`.
fn build_static(program: &str, name: &str) -> PathBuf {
    let lib = library("libhangsafe.a");
    let exe = out_path(name);
    let mut link = vec![lib.display().to_string()];
    link.extend(STATIC_DEPS.iter().map(|s| (*s).to_owned()));
    compile(program, &exe, &link);
    exe
}

/// A directory laid out as an installed library is: `libhangsafe.so.0`
/// (the SONAME, which programs record and the loader looks for) and the
/// development link `libhangsafe.so`, both symlinks to the library just
/// built. Returns the directory.
fn shared_lib_dir() -> PathBuf {
    let lib = library("libhangsafe.so");
    let dir = out_path("lib");
    std::fs::create_dir_all(&dir).expect("cannot create the library directory");
    for (name, points_to) in [
        ("libhangsafe.so.0", lib.clone()),
        ("libhangsafe.so", PathBuf::from("libhangsafe.so.0")),
    ] {
        let link = dir.join(name);
        // Several tests run at once: replace by renaming a fresh link over it.
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&points_to, &tmp).expect("cannot create a symlink");
        std::fs::rename(&tmp, &link).expect("cannot rename a symlink");
    }
    dir
}

/// Builds `program` linked dynamically against libhangsafe.so, as `name`,
/// and makes sure it loads the library just built (through its SONAME).
fn build_shared(program: &str, name: &str) -> PathBuf {
    let dir = shared_lib_dir();
    let exe = out_path(name);
    let link = vec![
        format!("-L{}", dir.display()),
        format!("-Wl,-rpath,{}", dir.display()),
        "-lhangsafe".to_string(),
        "-lpthread".to_string(),
    ];
    compile(program, &exe, &link);
    let ldd = Command::new("ldd").arg(&exe).output();
    if let Ok(ldd) = ldd {
        let text = String::from_utf8_lossy(&ldd.stdout);
        println!("{text}");
        let want = dir.join("libhangsafe.so.0");
        assert!(
            text.contains(&want.display().to_string()),
            "{name} does not load {}",
            want.display()
        );
    }
    exe
}

/// How long one run of the C test may take natively, and under valgrind.
const NATIVE_LIMIT: Duration = Duration::from_secs(120);
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

/// Runs `cmd` to completion, or kills it after `limit`. Returns its output
/// and whether it finished in time.
fn output_within(mut cmd: Command, limit: Duration) -> std::io::Result<(Output, bool)> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Drain both pipes on their own threads so the child never blocks.
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let mut in_time = true;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            in_time = false;
            // Only the child this function started is killed.
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((
        Output {
            status,
            stdout,
            stderr,
        },
        in_time,
    ))
}

/// Runs a built test program and asserts it passed within `limit`.
fn run(cmd: Command, what: &str, limit: Duration) {
    let (out, in_time) =
        output_within(cmd, limit).unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    show(what, &out);
    assert!(
        in_time,
        "{what} did not finish within {limit:?} and was killed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} failed ({})", out.status);
    assert!(
        stdout.contains(" passed, 0 failed"),
        "{what}: no success summary"
    );
}

/// Runs `program` linked statically.
fn run_static(program: &str) {
    let exe = build_static(program, &format!("{program}_static"));
    run(
        Command::new(&exe),
        &format!("{program} (static)"),
        NATIVE_LIMIT,
    );
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

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs `program` (linked statically) under valgrind's memcheck: any error
/// or definite leak fails it. Skipped without valgrind, except on CI.
///
/// Valgrind follows `fork()` without being asked (`--trace-children` is
/// about `exec`): a forked child runs under memcheck too, and its exit
/// status becomes `--error-exitcode` if it had errors, which the C tests
/// check for every child they reap.
fn run_valgrind(program: &str) {
    if !on_path("valgrind") {
        assert!(std::env::var_os("CI").is_none(), "CI must install valgrind");
        println!("skipped: valgrind is not on PATH (set CI to make this an error)");
        return;
    }
    let exe = build_static(program, &format!("{program}_valgrind"));
    let mut cmd = Command::new("valgrind");
    // The cancel signal stays installed: its handler defers (masks and
    // re-raises) only when a cancel lands in another signal handler that
    // interrupted a cancellable call, so valgrind (which ignores a
    // handler's changes to `uc_sigmask`) runs the cancellation paths too.
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ])
    .arg(&exe)
    // Tells the C tests to skip the checks that hand deliberately bad
    // pointers to the kernel: memcheck reports those as errors before the
    // kernel can answer EFAULT.
    .env("HANGSAFE_TEST_VALGRIND", "1");
    run(cmd, &format!("{program} (valgrind)"), VALGRIND_LIMIT);
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
        let (out, in_time) = output_within(cmd, Duration::from_secs(60)).unwrap();
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
