//! End-to-end tests of `hangsafe check`: they run the real binary and look
//! at its exit status, its table and how long it took.
//!
//! Every probe of a local path answers in microseconds, so the tests use a
//! long `--timeout` where the state matters (a loaded machine cannot turn
//! "up" into "timeout") and only assert generous upper bounds on wall time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Slack allowed on top of the timeout for process start-up, scheduling
/// and exit.
const MARGIN: Duration = Duration::from_secs(5);

/// The result of one run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `hangsafe` with `args` and checks that it did not outlive
/// `timeout` + [`MARGIN`].
fn hangsafe(args: &[&str], timeout: Duration) -> Run {
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .args(args)
        .output()
        .expect("cannot run the hangsafe binary");
    let took = start.elapsed();
    let run = Run {
        code: status.code().expect("hangsafe was killed by a signal"),
        stdout: String::from_utf8(stdout).expect("stdout is not UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is not UTF-8"),
        took,
    };
    assert!(
        run.took < timeout + MARGIN,
        "hangsafe {args:?} took {:?}\nstdout:\n{}\nstderr:\n{}",
        run.took,
        run.stdout,
        run.stderr
    );
    run
}

/// A fresh directory for one test, under Cargo's per-target scratch area.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hangsafe-check-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The table's data rows, split into cells (on runs of blanks, so only
/// for paths without blanks), keyed by the first cell.
fn rows(stdout: &str) -> Vec<Vec<&str>> {
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("no header")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["PATH", "STATE", "LATENCY", "DETAIL"], "{stdout}");
    lines.map(|l| l.split_whitespace().collect()).collect()
}

/// The row for `path`.
fn row<'a>(rows: &'a [Vec<&'a str>], path: &Path) -> &'a [&'a str] {
    let path = path.to_str().unwrap();
    rows.iter()
        .find(|r| r.first() == Some(&path))
        .unwrap_or_else(|| panic!("no row for {path} in {rows:?}"))
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_directory_and_a_file_are_up() {
    let dir = scratch_dir();
    let file = dir.join("regular-file");
    std::fs::write(&file, b"x").unwrap();
    let run = hangsafe(
        &[
            "check",
            "--timeout",
            "30s",
            dir.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        LONG,
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let rows = rows(&run.stdout);
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    for path in [&dir, &file] {
        let r = row(&rows, path);
        assert_eq!(r[1], "up", "{}", run.stdout);
        assert!(
            r[2].ends_with("ms") || r[2].ends_with('s'),
            "latency {:?}",
            r[2]
        );
        assert_eq!(r.len(), 3, "up rows have no detail: {}", run.stdout);
    }
    assert_eq!(run.stderr, "");
}

#[test]
fn a_missing_path_is_down() {
    let missing = scratch_dir().join("does-not-exist");
    let run = hangsafe(&["check", "-t", "30s", missing.to_str().unwrap()], LONG);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let rows = rows(&run.stdout);
    assert_eq!(rows.len(), 1);
    let r = row(&rows, &missing);
    assert_eq!(r[1], "down");
    assert!(
        run.stdout.contains("No such file or directory"),
        "detail should name the error: {}",
        run.stdout
    );
}

#[test]
fn a_mix_is_down_and_keeps_every_row_in_order() {
    let dir = scratch_dir();
    let missing = dir.join("missing");
    let not_a_dir = dir.join("file").join("child");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let run = hangsafe(
        &[
            "check",
            "--timeout=30s",
            missing.to_str().unwrap(),
            dir.to_str().unwrap(),
            not_a_dir.to_str().unwrap(),
        ],
        LONG,
    );
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let rows = rows(&run.stdout);
    let paths: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        paths,
        [
            missing.to_str().unwrap(),
            dir.to_str().unwrap(),
            not_a_dir.to_str().unwrap()
        ]
    );
    assert_eq!(row(&rows, &missing)[1], "down");
    assert_eq!(row(&rows, &dir)[1], "up");
    assert_eq!(row(&rows, &not_a_dir)[1], "down");
    assert!(run.stdout.contains("Not a directory"), "{}", run.stdout);
}

#[test]
fn bad_timeouts_are_usage_errors() {
    for bad in ["abc", "0", "5x", "1.2.3s", "", "-1s", "2 hours"] {
        let arg = format!("--timeout={bad}");
        let run = hangsafe(&["check", &arg, "/"], Duration::ZERO);
        assert_eq!(run.code, 64, "--timeout {bad:?}: {}", run.stderr);
        assert!(run.stderr.contains("--timeout"), "{bad:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{bad:?}");
    }
}

#[test]
fn other_usage_errors_exit_64_and_help_exits_0() {
    for args in [
        &["check", "--bogus"][..],
        &["frobnicate"],
        &[],
        &["check", "--timeout"],
    ] {
        let run = hangsafe(args, Duration::ZERO);
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    let run = hangsafe(&["--help"], Duration::ZERO);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("check"), "{}", run.stdout);
    let run = hangsafe(&["check", "--help"], Duration::ZERO);
    assert_eq!(run.code, 0);
    for needle in ["--timeout", "[default: 2s]", "mountinfo", "64", "timeout"] {
        assert!(run.stdout.contains(needle), "{needle}: {}", run.stdout);
    }
    let run = hangsafe(&["--version"], Duration::ZERO);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("hangsafe "), "{}", run.stdout);
}

#[test]
fn no_arguments_checks_the_mount_points() {
    let timeout = Duration::from_secs(2);
    let run = hangsafe(&["check"], timeout);
    assert!(
        [0, 1, 2].contains(&run.code),
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let mut lines = run.stdout.lines();
    let header = lines.next().expect("no header");
    assert!(header.starts_with("PATH "), "{header}");
    let data: Vec<&str> = lines.collect();
    assert!(!data.is_empty(), "no rows:\n{}", run.stdout);
    for line in &data {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(
            cells.iter().any(|c| ["up", "down", "timeout"].contains(c)),
            "row without a state: {line:?}"
        );
    }
    // The mount points are deduplicated.
    let mut firsts: Vec<&str> = data.iter().map(|l| l.split("  ").next().unwrap()).collect();
    let n = firsts.len();
    firsts.sort_unstable();
    firsts.dedup();
    assert_eq!(firsts.len(), n, "duplicate rows:\n{}", run.stdout);
}

/// A real kernel hang: a FUSE filesystem whose daemon never answers, so a
/// stat of its root blocks in the kernel until the connection is aborted.
///
/// Needs root (`CAP_SYS_ADMIN`) and a usable `/dev/fuse`; where either is
/// missing the test says so on stderr and passes without checking anything.
/// The mount is made in a private mount namespace of the test's own thread
/// (inherited by the hangsafe child only), so nothing else sees it.
#[test]
fn a_hung_fuse_mount_times_out_and_the_command_returns() {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: a FUSE mount needs root");
        return;
    }
    let fuse = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skipped: /dev/fuse is not usable here: {e}");
            return;
        }
    };
    let dir = scratch_dir();
    let mnt = dir.join("hung");
    std::fs::create_dir(&mnt).unwrap();
    let c_mnt = CString::new(mnt.as_os_str().as_bytes()).unwrap();
    let opts = CString::new(format!(
        "fd={},rootmode=40000,user_id=0,group_id=0",
        fuse.as_raw_fd()
    ))
    .unwrap();
    // SAFETY: plain syscalls on valid NUL-terminated strings. unshare
    // affects only this test's thread; the child spawned from it inherits
    // the namespace.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            eprintln!(
                "skipped: no private mount namespace: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let root = c"/";
        let rc = libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        assert_eq!(rc, 0, "making / private");
        let rc = libc::mount(
            c"hangsafe-test".as_ptr(),
            c_mnt.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        );
        assert_eq!(rc, 0, "mounting fuse: {}", std::io::Error::last_os_error());
    }

    let timeout = Duration::from_secs(1);
    let run = hangsafe(
        &[
            "check",
            "-t",
            "1s",
            mnt.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        timeout,
    );

    // SAFETY: as above. Detaching and closing /dev/fuse aborts the
    // connection, which releases the abandoned stat (already gone with the
    // child, whose exit killed it).
    unsafe { libc::umount2(c_mnt.as_ptr(), libc::MNT_DETACH) };
    drop(fuse);

    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let rows = rows(&run.stdout);
    assert_eq!(row(&rows, &mnt)[1..3], ["timeout", "-"]);
    assert!(run.stdout.contains("no answer within 1s"), "{}", run.stdout);
    assert_eq!(row(&rows, &dir)[1], "up");
    assert!(
        run.stderr.contains("uninterruptible sleep"),
        "{}",
        run.stderr
    );
}
