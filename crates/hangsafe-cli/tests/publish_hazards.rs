//! Hazards of the published table (`watch --publish NAME` / `status NAME`)
//! under attack and misuse: files owned or writable by another user,
//! truncation while reading or publishing, permission errors, clean-up.
//! See `docs/races.md` (H17..) for each case.
//!
//! Real processes, real files in `/dev/shm` (unique names, removed on drop).
//! "Another user" is uid/gid 65534 (`nobody`): the tests chown files to it
//! and run `status` as it. That needs root (CI runs as root); as another
//! user, those parts are skipped with a message and the rest still runs.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
/// The first page of a region: header and lock.
const PAGE: u64 = 4096;
const PATIENCE: Duration = Duration::from_secs(30);

/// `status`: a table the caller may not read (EX_NOINPUT).
const EXIT_NOINPUT: i32 = 66;
/// `status` / `watch --publish`: a table owned by another user or writable
/// by others, refused (EX_NOPERM).
const EXIT_NOPERM: i32 = 77;

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
    fn table(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/hangsafe-{}", self.0))
    }
    fn alive(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/hangsafe-{}.alive", self.0))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.table());
        let _ = std::fs::remove_file(self.alive());
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path valid for the call.
    let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
    assert_eq!(
        rc,
        0,
        "chown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn hangsafe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangsafe"));
    c.env("NO_COLOR", "1");
    c
}

fn status(args: &[&str]) -> Output {
    hangsafe()
        .arg("status")
        .args(args)
        .output()
        .expect("run hangsafe status")
}

fn status_as(uid: u32, args: &[&str]) -> Output {
    hangsafe()
        .arg("status")
        .args(args)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run hangsafe status as another user")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code; fails the test if a signal killed the process.
fn code(what: &str, s: ExitStatus) -> i32 {
    match s.code() {
        Some(c) => c,
        None => panic!("{what} was killed by signal {:?}", s.signal()),
    }
}

/// `watch --publish NAME` on a file that exists (up), every `interval`.
fn publisher(name: &str, interval: &str) -> Child {
    hangsafe()
        .args(["watch", "--json", "--interval", interval, "--publish", name])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hangsafe watch --publish")
}

fn stop(child: &mut Child) -> ExitStatus {
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap()
}

/// Waits until `status NAME` shows at least one row (exit 0).
fn wait_published(name: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let o = status(&["--json", name]);
        if o.status.code() == Some(0)
            && String::from_utf8_lossy(&o.stdout).contains("\"state\":\"up\"")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no table published within {PATIENCE:?}: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes one round for NAME and exits cleanly: a stale publication.
fn publish_once(name: &str) {
    let o = hangsafe()
        .args(["watch", "--json", "--count", "1", "--publish", name])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "watch --count 1: {}", stderr(&o));
}

#[test]
fn h17_status_refuses_a_table_owned_by_another_user() {
    if !is_root() {
        eprintln!("h17: not root, cannot chown to uid {NOBODY}: skipped");
        return;
    }
    let name = Name::new("h17");
    publish_once(&name.0);
    assert_eq!(status(&[&name.0]).status.code(), Some(0));
    // Another user now owns the files (as if they had created them first):
    // they can rewrite rows and recompute the checksum at will.
    chown(&name.table(), NOBODY, NOBODY);
    chown(&name.alive(), NOBODY, NOBODY);
    let o = status(&[&name.0]);
    assert_eq!(
        code("status", o.status),
        EXIT_NOPERM,
        "a table owned by uid {NOBODY} was used: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let e = stderr(&o);
    assert!(e.contains(&format!("uid {NOBODY}")), "{e}");
    assert!(
        e.contains("--remove") && e.contains("--trust-owner"),
        "no hint: {e}"
    );
    // Explicit opt-in: trust that user.
    let o = status(&["--trust-owner", &NOBODY.to_string(), &name.0]);
    assert_eq!(code("status", o.status), 0, "{}", stderr(&o));
}

#[test]
fn h18_status_refuses_a_table_writable_by_others() {
    let name = Name::new("h18");
    publish_once(&name.0);
    chmod(&name.table(), 0o666);
    let o = status(&[&name.0]);
    assert_eq!(
        code("status", o.status),
        EXIT_NOPERM,
        "a table writable by others was used: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(stderr(&o).contains("writable by others"), "{}", stderr(&o));
    chmod(&name.table(), 0o600);
    chmod(&name.alive(), 0o660);
    let o = status(&[&name.0]);
    assert_eq!(code("status", o.status), EXIT_NOPERM, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writable by its group"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn h19_publisher_refuses_a_region_planted_by_another_user() {
    let name = Name::new("h19");
    publish_once(&name.0);
    if is_root() {
        chown(&name.table(), NOBODY, NOBODY);
    } else {
        eprintln!("h19: not root, cannot chown: checking a world-writable region only");
        chmod(&name.table(), 0o666);
    }
    let o = hangsafe()
        .args(["watch", "--json", "--count", "1", "--publish", &name.0])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        code("watch", o.status),
        EXIT_NOPERM,
        "the publisher adopted a planted region: {}",
        stderr(&o)
    );
}

/// Runs `status` `runs` times while another thread keeps truncating the
/// table to a random length and restoring it. The first page (header and
/// lock word) is kept: a truncation into it is the case H24 documents.
/// Returns the publisher's fate.
fn truncation_storm(name: &Name, runs: usize) -> ExitStatus {
    let mut p = publisher(&name.0, "1ms");
    wait_published(&name.0);
    let original = std::fs::read(name.table()).unwrap();
    let len = original.len() as u64;
    let stop_flag = Arc::new(AtomicBool::new(false));
    let truncator = {
        let path = name.table();
        let stop_flag = stop_flag.clone();
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            while !stop_flag.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let short = PAGE + x % (len - PAGE);
                f.set_len(short).unwrap();
                std::thread::sleep(Duration::from_micros(200));
                f.set_len(len).unwrap();
                f.write_all_at(&original[PAGE as usize..], PAGE).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..runs {
        let o = status(&["--timeout", "5s", &name.0]);
        let c = code("status during truncation", o.status);
        assert!(
            matches!(c, 0 | 65 | 75),
            "unexpected exit {c}: {}",
            stderr(&o)
        );
        *codes.entry(c).or_insert(0) += 1;
    }
    stop_flag.store(true, Ordering::Relaxed);
    truncator.join().unwrap();
    eprintln!("status exit codes during truncation: {codes:?}");
    // The publisher must still be running (not killed by SIGBUS).
    if let Some(s) = p.try_wait().unwrap() {
        let mut err = String::new();
        use std::io::Read as _;
        let _ = p.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the publisher ended during truncation: {s:?} {err}");
    }
    stop(&mut p)
}

#[test]
fn h20_truncation_while_reading_never_kills_status_or_the_publisher() {
    let name = Name::new("h20");
    let s = truncation_storm(&name, 400);
    assert!(
        s.signal().is_none() || s.signal() == Some(libc::SIGTERM),
        "{s:?}"
    );
}

#[test]
fn h21_status_of_a_table_it_may_not_read_is_a_permission_error() {
    if !is_root() {
        eprintln!("h21: not root, cannot run status as uid {NOBODY}: skipped");
        return;
    }
    let name = Name::new("h21");
    publish_once(&name.0);
    let o = status_as(NOBODY, &[&name.0]);
    assert_eq!(
        code("status", o.status),
        EXIT_NOINPUT,
        "not a permission error: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("ermission denied"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("damaged"), "{}", stderr(&o));
}

#[test]
fn h22_a_busy_name_reports_the_live_publishers_pid() {
    let name = Name::new("h22");
    let mut p = publisher(&name.0, "100ms");
    wait_published(&name.0);
    // The table is gone (removed by hand) while the publisher lives: only
    // its liveness record names it.
    std::fs::remove_file(name.table()).unwrap();
    let o = hangsafe()
        .args(["watch", "--json", "--count", "1", "--publish", &name.0])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    stop(&mut p);
    assert_eq!(code("watch", o.status), 73, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(!e.contains("pid 0"), "{e}");
    assert!(e.contains(&format!("pid {}", p.id())), "{e}");
}

#[test]
fn h23_status_remove_cleans_up_only_a_stale_publication_of_ours() {
    let name = Name::new("h23");
    // A live publisher: refused without --force.
    let mut p = publisher(&name.0, "100ms");
    wait_published(&name.0);
    let o = status(&["--remove", &name.0]);
    assert_eq!(code("status --remove", o.status), 75, "{}", stderr(&o));
    assert!(name.table().exists() && name.alive().exists());
    stop(&mut p);
    // Stale (exited): removed, both files.
    let o = status(&["--remove", &name.0]);
    assert_eq!(code("status --remove", o.status), 0, "{}", stderr(&o));
    assert!(!name.table().exists() && !name.alive().exists());
    // Nothing left.
    let o = status(&["--remove", &name.0]);
    assert_eq!(code("status --remove", o.status), 69, "{}", stderr(&o));
    // A live publisher, with --force: removed (it keeps its mapping).
    let mut p = publisher(&name.0, "100ms");
    wait_published(&name.0);
    let o = status(&["--remove", "--force", &name.0]);
    assert_eq!(
        code("status --remove --force", o.status),
        0,
        "{}",
        stderr(&o)
    );
    assert!(!name.table().exists() && !name.alive().exists());
    stop(&mut p);
    // Not ours: refused, left in place (a symlink is never followed).
    publish_once(&name.0);
    if is_root() {
        chown(&name.table(), NOBODY, NOBODY);
        let o = status(&["--remove", &name.0]);
        assert_eq!(
            code("status --remove", o.status),
            EXIT_NOPERM,
            "{}",
            stderr(&o)
        );
        assert!(name.table().exists());
    } else {
        eprintln!("h23: not root, cannot chown: not checking another user's file");
    }
    let _ = std::fs::remove_file(name.table());
    let target = std::env::temp_dir().join(format!("h23-target-{}", std::process::id()));
    std::fs::write(&target, b"keep me").unwrap();
    std::os::unix::fs::symlink(&target, name.table()).unwrap();
    let o = status(&["--remove", &name.0]);
    assert_eq!(
        code("status --remove", o.status),
        EXIT_NOPERM,
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    let _ = std::fs::remove_file(&target);
}
