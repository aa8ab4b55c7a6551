//! Waiting: poll, ppoll, epoll_wait and sleep. These are the calls the
//! kernel never restarts after a signal (R15): an interrupted wait returns
//! `EINTR`, which is `Cancelled` when a cancel is pending and otherwise
//! retried with the time that remains.

use super::error::{Error, Result};
use super::io::raw;
use super::syscall::{cp, OnEintr};
use std::ffi::c_long;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// Cancellable `poll(2)` (made with `ppoll`, which every architecture
/// has). `None` waits forever. Returns the number of ready descriptors.
///
/// ```
/// let (r, w) = std::io::pipe().unwrap();
/// use std::os::fd::AsRawFd;
/// let mut fds = [libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
/// let n = hangsafe::cancel::poll(&mut fds, Some(std::time::Duration::ZERO)).unwrap();
/// assert_eq!(n, 0);
/// # drop(w);
/// ```
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> Result<usize> {
    ppoll(fds, timeout, None)
}

/// Cancellable `ppoll(2)` with an optional signal mask for the wait.
pub fn ppoll(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<&libc::sigset_t>,
) -> Result<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ts = match (timeout, deadline) {
            (None, _) => None,
            (Some(t), None) => Some(timespec(t)),
            (Some(_), Some(d)) => Some(timespec(d.saturating_duration_since(Instant::now()))),
        };
        let tsp = ts
            .as_ref()
            .map_or(0, |t| t as *const libc::timespec as c_long);
        let (mask, size) = match sigmask {
            Some(m) => (m as *const libc::sigset_t as c_long, 8),
            None => (0, 0),
        };
        // SAFETY: `fds` is a live, writable pollfd array of the length
        // passed; `ts` and `sigmask` outlive the call.
        match unsafe {
            cp(
                libc::SYS_ppoll,
                [
                    fds.as_mut_ptr() as c_long,
                    fds.len() as c_long,
                    tsp,
                    mask,
                    size,
                    0,
                ],
                OnEintr::Return,
            )
        } {
            Ok(n) => return Ok(n as usize),
            Err(Error::Os(libc::EINTR)) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Cancellable `epoll_wait(2)` (made with `epoll_pwait`). `None` waits
/// forever. Returns the number of events written to `events`.
pub fn epoll_wait(
    epfd: impl AsFd,
    events: &mut [libc::epoll_event],
    timeout: Option<Duration>,
) -> Result<usize> {
    let epfd = raw(epfd);
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let max = events.len().min(i32::MAX as usize).max(1);
    if events.is_empty() {
        return Err(Error::Os(libc::EINVAL));
    }
    loop {
        let ms: c_long = match (timeout, deadline) {
            (None, _) | (Some(_), None) => -1,
            (Some(_), Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a wait never ends before its timeout.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_long
            }
        };
        // SAFETY: `events` is a live, writable array of at least `max`
        // entries; no signal mask is passed.
        match unsafe {
            cp(
                libc::SYS_epoll_pwait,
                [epfd, events.as_mut_ptr() as c_long, max as c_long, ms, 0, 8],
                OnEintr::Return,
            )
        } {
            Ok(n) => return Ok(n as usize),
            Err(Error::Os(libc::EINTR)) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// Cancellable sleep (`clock_nanosleep` on `CLOCK_MONOTONIC` with an
/// absolute deadline, so retries after a foreign signal never stretch it).
///
/// ```
/// hangsafe::cancel::sleep(std::time::Duration::from_millis(1)).unwrap();
/// ```
pub fn sleep(d: Duration) -> Result<()> {
    let now = monotonic_now();
    // time_t and c_long are i64 on both supported (64-bit) targets.
    let mut sec = now
        .tv_sec
        .saturating_add(d.as_secs().min(i64::MAX as u64) as i64);
    let mut nsec = now.tv_nsec + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    let deadline = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    // SAFETY: the kernel reads one timespec; no remainder is requested
    // with TIMER_ABSTIME.
    unsafe {
        cp(
            libc::SYS_clock_nanosleep,
            [
                libc::CLOCK_MONOTONIC as c_long,
                libc::TIMER_ABSTIME as c_long,
                &deadline as *const libc::timespec as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(())
}
