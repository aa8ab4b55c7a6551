//! Helpers shared by the integration tests that inspect or load the built
//! C library (`shared_lib.rs`, `logging.rs`): building the library with the
//! same profile as the test, laying out an installed-style library
//! directory, compiling and running C programs with a time limit.
//!
//! The C test drivers (`c_abi.rs`, `c_set.rs`) run their programs with
//! [`run_static`], [`build_shared`] and [`run_valgrind`].

#![allow(dead_code)] // each test file uses a different subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Flags every C build uses.
pub(crate) const CFLAGS: &[&str] = &[
    "-Wall",
    "-Wextra",
    "-Werror",
    "-std=c11",
    "-D_GNU_SOURCE",
    "-g",
];

/// System libraries a Rust staticlib needs on Linux.
pub(crate) const STATIC_DEPS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/`: the test binary is `target/<profile>/deps/<name>`.
pub(crate) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the test binary's path");
    let deps = exe.parent().expect("test binary has no parent directory");
    deps.parent().expect("deps/ has no parent").to_path_buf()
}

/// The cargo arguments that select `profile_dir()`.
fn cargo_location_args() -> Vec<String> {
    let profile_dir = profile_dir();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory has no name")
        .to_owned();
    let above = profile_dir
        .parent()
        .expect("profile directory has no parent");
    let mut args = Vec::new();
    if above.join("CACHEDIR.TAG").is_file() {
        args.push(format!("--target-dir={}", above.display()));
    } else {
        let root = above.parent().expect("target triple dir has no parent");
        let triple = above
            .file_name()
            .and_then(|n| n.to_str())
            .expect("no triple");
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

/// Builds this package's C libraries once per test process (the test
/// targets do not depend on a library without an rlib).
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

/// A library file in the profile directory, built first if needed.
pub(crate) fn library(name: &str) -> PathBuf {
    build_libraries();
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found after building",
        path.display()
    );
    path
}

/// A scratch path for this test file's outputs.
pub(crate) fn out_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hangsafe-capi-c");
    std::fs::create_dir_all(&dir).expect("cannot create the C test output directory");
    dir.join(name)
}

/// A directory laid out as an installed library: `libhangsafe.so.0` and
/// `libhangsafe.so`, symlinks to the library just built.
pub(crate) fn shared_lib_dir() -> PathBuf {
    let lib = library("libhangsafe.so");
    let dir = out_path("lib");
    std::fs::create_dir_all(&dir).expect("cannot create the library directory");
    for (name, points_to) in [
        ("libhangsafe.so.0", lib.clone()),
        ("libhangsafe.so", PathBuf::from("libhangsafe.so.0")),
    ] {
        // Several tests run at once: rename a fresh link over the old one.
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&points_to, &tmp).expect("cannot create a symlink");
        std::fs::rename(&tmp, dir.join(name)).expect("cannot rename a symlink");
    }
    dir
}

pub(crate) fn show(what: &str, out: &Output) {
    println!("---- {what}: {}", out.status);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
}

/// Compiles `tests/c/<program>.c` with `link` into `exe`.
pub(crate) fn compile(program: &str, exe: &Path, link: &[String]) {
    let source = format!("tests/c/{program}.c");
    let out = Command::new("cc")
        .current_dir(manifest_dir())
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

/// Builds `program` against libhangsafe.a.
pub(crate) fn build_static(program: &str, name: &str) -> PathBuf {
    let lib = library("libhangsafe.a");
    let exe = out_path(name);
    let mut link = vec![lib.display().to_string()];
    link.extend(STATIC_DEPS.iter().map(|s| (*s).to_owned()));
    compile(program, &exe, &link);
    exe
}

/// Builds `program` against libhangsafe.so (found through an rpath to
/// [`shared_lib_dir`]).
pub(crate) fn build_shared(program: &str, name: &str) -> PathBuf {
    let dir = shared_lib_dir();
    let exe = out_path(name);
    let link = vec![
        format!("-L{}", dir.display()),
        format!("-Wl,-rpath,{}", dir.display()),
        "-lhangsafe".to_string(),
        "-lpthread".to_string(),
    ];
    compile(program, &exe, &link);
    exe
}

/// Runs `cmd` to completion, or kills it after `limit`. Returns its output
/// and whether it finished in time.
pub(crate) fn output_within(mut cmd: Command, limit: Duration) -> (Output, bool) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the program");
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
        if let Some(status) = child.try_wait().expect("wait failed") {
            break status;
        }
        if Instant::now() >= deadline {
            in_time = false;
            let _ = child.kill(); // only the child this function started
            break child.wait().expect("wait failed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        in_time,
    )
}

/// Runs a C test program; asserts it finished within `limit`, exited 0
/// and printed the harness summary. Returns its output.
pub(crate) fn run_c_test(cmd: Command, what: &str, limit: Duration) -> Output {
    let (out, in_time) = output_within(cmd, limit);
    show(what, &out);
    assert!(
        in_time,
        "{what} did not finish within {limit:?} and was killed"
    );
    assert!(out.status.success(), "{what} failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" passed, 0 failed"),
        "{what}: no success summary"
    );
    out
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Builds `program` (`tests/c/<program>.c`) linked statically and runs it
/// as a C test ([`run_c_test`]).
pub(crate) fn run_static(program: &str, limit: Duration) {
    let exe = build_static(program, &format!("{program}_static"));
    run_c_test(Command::new(&exe), &format!("{program} (static)"), limit);
}

/// valgrind's memcheck, as the C tests run under it: any error or definite
/// leak fails the run. `None` (the test is skipped, with a line saying so)
/// without valgrind, except on CI, where that fails.
///
/// Valgrind follows `fork()` without being asked (`--trace-children` is
/// about `exec`): a forked child runs under memcheck too, and its exit
/// status becomes `--error-exitcode` if it had errors, which the C tests
/// check for every child they reap. The cancel signal stays installed: its
/// handler defers (masks and re-raises) only when a cancel lands in another
/// signal handler that interrupted a cancellable call, so valgrind (which
/// ignores a handler's changes to `uc_sigmask`) runs the cancellation
/// paths too.
pub(crate) fn valgrind_memcheck() -> Option<Command> {
    if !on_path("valgrind") {
        assert!(std::env::var_os("CI").is_none(), "CI must install valgrind");
        println!("skipped: valgrind is not on PATH (set CI to make this an error)");
        return None;
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ])
    // Tells the C tests to skip the checks that hand deliberately bad
    // pointers to the kernel: memcheck reports those as errors before the
    // kernel can answer EFAULT.
    .env("HANGSAFE_TEST_VALGRIND", "1");
    Some(cmd)
}

/// Runs `program` (linked statically) under [`valgrind_memcheck`] as a C
/// test ([`run_c_test`]).
pub(crate) fn run_valgrind(program: &str, limit: Duration) {
    let Some(mut cmd) = valgrind_memcheck() else {
        return;
    };
    let exe = build_static(program, &format!("{program}_valgrind"));
    cmd.arg(&exe);
    run_c_test(cmd, &format!("{program} (valgrind)"), limit);
}
