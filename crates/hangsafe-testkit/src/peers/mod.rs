//! The designs hangsafe is measured against, written against libc only,
//! shared by the criterion benchmarks and `hangsafe bench` so that both
//! measure against the same peers:
//!
//! * [`thread_per_runner`]: the C runner hangsafe's pool replaces;
//! * [`poll_eventfd_read`]: a cancellable read done the usual way, `poll`
//!   on the descriptor plus a cancel eventfd, then `read`;
//! * [`eventfd_cancel_sample`]: the cancel latency of that design, from
//!   the canceller's eventfd write to the blocked work's return;
//! * [`glibc_mutex`]: glibc's robust process-shared mutex, plain and PI,
//!   the peers of hangsafe's robust mutex.

pub mod glibc_mutex;
pub mod thread_per_runner;

use crate::fd::{eventfd, eventfd_signal, poll_two};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a cancel-latency sample may take before the run gives up.
pub const SAMPLE_LIMIT: Duration = Duration::from_secs(5);

/// The syscall glibc's `poll` makes.
#[cfg(target_arch = "x86_64")]
pub const POLL_NR: libc::c_long = libc::SYS_poll;
/// The syscall glibc's `poll` makes.
#[cfg(not(target_arch = "x86_64"))]
pub const POLL_NR: libc::c_long = libc::SYS_ppoll;

/// The poll + eventfd read of 1 byte from `fd`: `None` if the eventfd
/// `efd` fired first (cancelled), else what `read` returned.
pub fn poll_eventfd_read(fd: RawFd, efd: RawFd, buf: &mut [u8; 1]) -> Option<isize> {
    if !poll_two(fd, efd) {
        return None;
    }
    // SAFETY: reads at most 1 byte into a live 1-byte buffer.
    Some(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 1) })
}

/// The calling thread's kernel id.
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Waits until thread `tid` of this process is blocked in syscall `nr`,
/// per `/proc/self/task/<tid>/syscall`. Returns false if that file cannot
/// be read (then it sleeps 2 ms instead: the call is very likely blocked,
/// but not confirmed).
pub fn wait_blocked_in(tid: libc::pid_t, nr: libc::c_long) -> Result<bool, String> {
    let path = format!("/proc/self/task/{tid}/syscall");
    let t = Instant::now();
    loop {
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let cur = s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<libc::c_long>().ok());
                if cur == Some(nr) {
                    return Ok(true);
                }
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                return Ok(false);
            }
        }
        if t.elapsed() > SAMPLE_LIMIT {
            return Err(format!("thread {tid} never blocked in syscall {nr}"));
        }
        std::thread::yield_now();
    }
}

/// One sample of the peer's cancel latency: a thread blocked in `poll` on
/// an empty pipe and an eventfd; from the canceller's eventfd write to the
/// thread's return (timestamped by the thread). The flag says whether the
/// block was confirmed (see [`wait_blocked_in`]).
pub fn eventfd_cancel_sample() -> Result<(Duration, bool), String> {
    let (r, w) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let efd = eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let efd_raw = efd.as_raw_fd();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tid_tx.send(gettid());
        let readable = poll_two(r.as_raw_fd(), efd_raw);
        let _ = done_tx.send((Instant::now(), readable));
    });
    let tid = tid_rx
        .recv_timeout(SAMPLE_LIMIT)
        .map_err(|_| String::from("the peer thread never started"))?;
    let confirmed = wait_blocked_in(tid, POLL_NR)?;
    let t0 = Instant::now();
    eventfd_signal(efd.as_raw_fd());
    let (t1, readable) = done_rx
        .recv_timeout(SAMPLE_LIMIT)
        .map_err(|_| String::from("the eventfd did not wake the poll within 5 s"))?;
    let _ = worker.join();
    drop(w);
    if readable {
        return Err(String::from("the empty pipe became readable"));
    }
    Ok((t1.duration_since(t0), confirmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_cancel_samples_are_real() {
        let (d, _) = eventfd_cancel_sample().unwrap();
        assert!(d < SAMPLE_LIMIT);
    }

    #[test]
    fn poll_eventfd_read_reads_or_is_cancelled() {
        let zero = std::fs::File::open("/dev/zero").unwrap();
        let efd = eventfd().unwrap();
        let mut b = [7u8];
        assert_eq!(
            poll_eventfd_read(zero.as_raw_fd(), efd.as_raw_fd(), &mut b),
            Some(1)
        );
        assert_eq!(b, [0]);
        let (r, _w) = io::pipe().unwrap();
        eventfd_signal(efd.as_raw_fd());
        assert_eq!(
            poll_eventfd_read(r.as_raw_fd(), efd.as_raw_fd(), &mut b),
            None
        );
    }
}
