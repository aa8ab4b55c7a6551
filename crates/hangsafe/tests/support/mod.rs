//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hangsafe::runner::{Metrics, Pool};
use std::time::{Duration, Instant};

pub(crate) use hangsafe_testkit::wait::eventually;

/// Waits until the pool has no live runner context, or panics with the
/// metrics after `limit`.
pub(crate) fn await_no_live_contexts(pool: &Pool, limit: Duration) {
    let ok = eventually(limit, || pool.metrics().live_contexts == 0);
    assert!(
        ok,
        "live contexts did not return to zero: {:?}",
        pool.metrics()
    );
}

/// A small deterministic PRNG (xorshift64*), so runs are reproducible from
/// the printed seed without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub(crate) fn from_env_or_time(name: &str) -> (Self, u64) {
        let seed = std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng::new(seed), seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Threads of this process, from /proc/self/status.
pub(crate) fn process_threads() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// CPU time (user + system) this process has used.
pub(crate) fn process_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub(crate) fn show(m: &Metrics) -> String {
    format!("{m:?}")
}

// ---- Helpers of the cancellation tests (tests/cancel_*.rs) ----

/// The calling thread's kernel thread ID.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The syscall number thread `tid` of this process is blocked in, read from
/// `/proc/self/task/<tid>/syscall`: `None` while the thread runs (or after
/// it exited), `Some(-1)` if it is blocked outside a syscall.
pub(crate) fn blocked_syscall(tid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Whether the tests run under user-mode emulation (qemu-user; CI sets
/// `HANGSAFE_UNDER_EMULATION` for its aarch64 run). There,
/// `/proc/self/task/<tid>/syscall` describes the *host* thread (qemu's own
/// syscall, with the host's numbering), so only "blocked in some syscall"
/// can be observed.
pub(crate) fn under_emulation() -> bool {
    std::env::var_os("HANGSAFE_UNDER_EMULATION").is_some()
}

/// Waits until thread `tid` sleeps in syscall `nr`; panics after `limit`.
/// Under emulation: until it sleeps in any syscall, then a short settle.
pub(crate) fn await_blocked_in(tid: i32, nr: i64, limit: Duration) {
    if under_emulation() {
        let ok = eventually(limit, || blocked_syscall(tid).is_some_and(|n| n >= 0));
        assert!(ok, "thread {tid} did not block within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
        return;
    }
    let ok = eventually(limit, || blocked_syscall(tid) == Some(nr));
    assert!(
        ok,
        "thread {tid} did not block in syscall {nr} within {limit:?} (now: {:?})",
        blocked_syscall(tid)
    );
}

/// Busy-waits for `d` (for random sub-millisecond delays).
pub(crate) fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A pipe as (read end, write end), both close-on-exec.
pub(crate) fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nobody else.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Bytes waiting to be read from a pipe or socket (`FIONREAD`).
pub(crate) fn readable_bytes(fd: impl std::os::fd::AsFd) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description.
pub(crate) fn set_nonblocking(fd: impl std::os::fd::AsFd, on: bool) {
    use std::os::fd::AsRawFd;
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert!(fl >= 0);
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl), 0);
    }
}

/// Entries in `/proc/self/fd` (the directory's own descriptor included, so
/// only differences between two calls mean anything).
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A fresh path in the temporary directory (nothing is created there).
pub(crate) fn temp_path(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "hangsafe-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes the file at the path when dropped.
pub(crate) struct RemoveOnDrop(pub std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates a FIFO at a fresh temporary path.
pub(crate) fn mkfifo(tag: &str) -> RemoveOnDrop {
    use std::os::unix::ffi::OsStrExt;
    let path = temp_path(tag);
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    RemoveOnDrop(path)
}

/// Sends `sig` to thread `tid` of this process.
pub(crate) fn tgkill(tid: i32, sig: libc::c_int) {
    // SAFETY: tgkill to a thread of our own process.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
}
