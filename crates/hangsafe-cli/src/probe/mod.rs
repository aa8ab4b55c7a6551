//! The probes, one per target kind. Each runs on a hangsafe runner thread.
//!
//! Every probe publishes the step it is in with [`Ctx::enter_phase`]
//! (`statfs`, `stat`, `open`, `read`, `getdents`, `SG_IO`, `resolve`,
//! `connect`), so a watcher can show "in SG_IO for 41 s" through
//! [`examine`](hangsafe::examine), and a timeout report can say where the
//! probe was stuck.
//!
//! # What a cancel interrupts
//!
//! The calls that can block for long — `open` (a FIFO without a writer, a
//! file under a lease), `read`/`pread`/`getdents64`, `connect`, `poll` and
//! the `SG_IO` ioctl — go through hangsafe's cancellable wrappers
//! ([`hangsafe::cancel`]): when the runner's deadline passes, the blocked
//! call returns `Cancelled` (if it had not taken effect), the probe returns
//! and its thread goes back to the pool.
//!
//! `statfs(2)`, `stat(2)`, `getaddrinfo(3)` and `close(2)` are plain libc
//! calls and are **not** interrupted. A probe stuck in one of them (a hard
//! NFS mount, a FUSE daemon that never answers, a DNS server that does not
//! reply) is released at its deadline and its thread is *abandoned* by the
//! pool: it stays in the kernel until the call returns. The same holds for
//! any call that sleeps uninterruptibly in the kernel (D state), cancellable
//! or not: a signal cannot move a thread out of such a sleep. `SG_IO` is
//! given the `--timeout` as its SCSI command timeout, so the SCSI layer
//! itself ends the command at about the same time.
//!
//! One module per kind of target: [`path`] (and `auto`), [`block`],
//! [`tur`], [`tcp`] and [`unix`]; this module holds what they share (the
//! dispatch, the phase tracker, the failures) and the reports of outcomes.

mod aligned;
mod block;
mod path;
mod tcp;
mod tur;
mod unix;

use crate::fsstats::FsStats;
use crate::report::{Report, State};
use crate::target::{Kind, Target};
use hangsafe::cancel;
use hangsafe::runner::{Ctx, RunError};
use std::cell::Cell;
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The kind reported: `path`, `block`, `tur`, `tcp` or `unix` (an
    /// `auto` target reports `block` if it turned out to be a block device).
    pub kind: &'static str,
    /// `Ok(detail)` when the target is up, `Err(detail)` when it is down.
    pub result: Result<String, String>,
    /// How long the probe took, measured on its thread.
    pub took: Duration,
    /// What `statfs` found, for a path probe that got that far.
    pub fs: Option<FsStats>,
}

/// Probes `target` on the calling runner thread, recording each phase in
/// `tracker`; `timeout` is the `--timeout` (used as the SCSI timeout of
/// `tur:`, and as the connect deadline when the runner has no deadline of
/// its own).
fn probe_tracked(
    target: &Target,
    run_ctx: &Ctx<'_>,
    timeout: Duration,
    tracker: Option<&Tracker>,
) -> Answer {
    let ctx = &Phases {
        ctx: run_ctx,
        tracker,
        statfs: Cell::new(None),
    };
    let start = Instant::now();
    // A runner with a deadline is cancelled at it, which interrupts the
    // connect's poll; the poll's own limit (a second later) only matters
    // when cancellation cannot interrupt it (HANGSAFE_CANCEL_SIGNAL=off),
    // and never races the runner's deadline.
    let deadline = run_ctx
        .deadline()
        .map_or(crate::duration::after(start, timeout), |d| {
            crate::duration::after(d, Duration::from_secs(1))
        });
    let (kind, result) = match &target.kind {
        Kind::Auto(p) => path::auto(p, ctx),
        Kind::Path(p) => ("path", path::path(p, ctx, None)),
        Kind::Block(p) => ("block", block::block(p, ctx)),
        Kind::Tur(p) => ("tur", tur::tur(p, ctx, timeout)),
        Kind::Tcp { host, port } => ("tcp", tcp::tcp(host, *port, ctx, deadline)),
        Kind::Unix(p) => ("unix", unix::unix(p, ctx)),
    };
    Answer {
        kind,
        result: result.map_err(|f| f.to_string()),
        took: start.elapsed(),
        fs: ctx.statfs.get(),
    }
}

/// What a probe's work shares with whoever spawned it: the phase it is in
/// (recorded by the work itself, so it is known even after the work has
/// returned) and whether it has returned.
#[derive(Debug, Default)]
struct Tracker {
    returned: AtomicBool,
    phase: Mutex<Option<(&'static str, Instant)>>,
    statfs: Mutex<Option<FsStats>>,
}

/// A handle on a probe's [`Tracker`]: whether its work has returned
/// (whatever the outcome, even after its runner was cancelled or
/// released) and the last phase it entered. A timed-out probe whose work
/// has not returned shortly after its cancel is stuck (abandoned); one
/// whose work returned was interrupted and its thread is back in the pool.
#[derive(Clone, Debug, Default)]
pub(crate) struct Returned(Arc<Tracker>);

impl Returned {
    /// Whether the probe's work has returned.
    pub(crate) fn get(&self) -> bool {
        self.0.returned.load(Ordering::Acquire)
    }

    /// The last phase the probe entered, and when.
    pub(crate) fn phase(&self) -> Option<(&'static str, Instant)> {
        *self.0.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the probe's `statfs` found, if it got that far (path probes).
    pub(crate) fn statfs(&self) -> Option<FsStats> {
        *self.0.statfs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The work for a runner that probes `target`, and the handle that tells
/// its phase and whether it returned. Use it with `Builder::spawn` or
/// `RunnerSet::spawn`.
pub(crate) fn work(
    target: Target,
    timeout: Duration,
) -> (impl FnOnce(&Ctx<'_>) -> Answer + Send + 'static, Returned) {
    let returned = Returned::default();
    let tracker = Arc::clone(&returned.0);
    let f = move |ctx: &Ctx<'_>| {
        /// Sets the flag when the work ends, even by a panic.
        struct SetOnDrop(Arc<Tracker>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.returned.store(true, Ordering::Release);
            }
        }
        let set = SetOnDrop(tracker);
        probe_tracked(&target, ctx, timeout, Some(&set.0))
    };
    (f, returned)
}

/// The probe's view of its runner: publishes phases through the runner's
/// [`Ctx`] (for examine) and records them in the tracker, if any; keeps
/// what `statfs` found for the answer.
struct Phases<'a, 'b> {
    ctx: &'a Ctx<'b>,
    tracker: Option<&'a Tracker>,
    statfs: Cell<Option<FsStats>>,
}

impl Phases<'_, '_> {
    fn enter_phase(&self, phase: &'static str) {
        self.ctx.enter_phase(phase);
        if let Some(t) = self.tracker {
            *t.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some((phase, Instant::now()));
        }
    }

    /// Keeps what `statfs` found: in the answer (for `check`'s thresholds)
    /// and in the tracker, if any (for the exporter's filesystem series,
    /// known even while a later phase of the probe hangs).
    fn record_statfs(&self, sfs: &libc::statfs) {
        let fs = FsStats::from_statfs(sfs);
        self.statfs.set(Some(fs));
        if let Some(t) = self.tracker {
            *t.statfs.lock().unwrap_or_else(|e| e.into_inner()) = Some(fs);
        }
    }

    fn set_progress(&self, done: u32, total: u32) {
        self.ctx.set_progress(done, total);
    }
}

/// What is known about a probe that did not answer in time, to explain
/// its timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hang {
    /// The phase the probe was in when it timed out (see
    /// [`Returned::phase`]), and how long it had been in it.
    pub phase: Option<(String, Duration)>,
    /// Whether the work returned after its cancel (`Some(true)`: cancelled,
    /// thread back in the pool), is still stuck after a grace period
    /// (`Some(false)`: abandoned), or unknown (`None`).
    pub returned: Option<bool>,
    /// The time the probe had: shorter than `--timeout` when the command's
    /// overall deadline cut it short.
    pub allowed: Option<Duration>,
}

/// Phases that only the block probe publishes: an `auto` target stuck in
/// one of them is a block device.
const BLOCK_PHASES: [&str; 2] = ["BLKSSZGET", "read sector 0"];

/// The report for a probe's outcome: `Ok` answers are up or down, a
/// deadline is `timeout`, a panic is down.
///
/// A timeout's detail cannot tell, from the outcome alone, whether the
/// probe's thread came back: it says the probe was cancelled, and that its
/// thread returns to the pool or is abandoned if it is stuck in the kernel.
/// [`timeout_report`] says which when the caller knows more.
pub(crate) fn report(
    target: &Target,
    outcome: Result<Answer, RunError>,
    timeout: Duration,
) -> Report {
    match outcome {
        Ok(a) => Report {
            target: target.spec.clone(),
            kind: a.kind,
            state: if a.result.is_ok() {
                State::Up
            } else {
                State::Down
            },
            latency: Some(a.took),
            detail: match a.result {
                Ok(d) | Err(d) => d,
            },
        },
        Err(RunError::TimedOut) => timeout_report(target, timeout, &Hang::default()),
        Err(RunError::Cancelled) => Report {
            target: target.spec.clone(),
            kind: target.kind.name(),
            state: State::Timeout,
            latency: None,
            detail: "probe cancelled before it answered".to_owned(),
        },
        Err(RunError::Panicked(msg)) => Report {
            target: target.spec.clone(),
            kind: target.kind.name(),
            state: State::Down,
            latency: None,
            detail: format!("probe failed: {msg}"),
        },
        Err(e) => Report {
            target: target.spec.clone(),
            kind: target.kind.name(),
            state: State::Down,
            latency: None,
            detail: format!("probe failed: {e}"),
        },
    }
}

/// The `timeout` report of a probe that did not answer within `timeout`
/// (or `hang.allowed`), with what is known about where it hung.
pub(crate) fn timeout_report(target: &Target, timeout: Duration, hang: &Hang) -> Report {
    let allowed = hang.allowed.unwrap_or(timeout);
    let mut detail = format!("no answer within {}", crate::duration::format(allowed));
    if allowed < timeout {
        detail.push_str(" (cut short by the command's deadline)");
    }
    if let Some((phase, since)) = &hang.phase {
        if !phase.is_empty() {
            detail.push_str(&format!(
                "; in {phase} for {}",
                crate::duration::format_latency(*since)
            ));
        }
    }
    detail.push_str(match hang.returned {
        Some(true) => "; cancelled, thread back in the pool",
        Some(false) => "; abandoned: its thread is stuck in the kernel",
        None => {
            "; cancelled (its thread returns to the pool, or is abandoned if stuck in the kernel)"
        }
    });
    let kind = match (&target.kind, &hang.phase) {
        (Kind::Auto(_), Some((p, _))) if BLOCK_PHASES.contains(&p.as_str()) => "block",
        _ => target.kind.name(),
    };
    Report {
        target: target.spec.clone(),
        kind,
        state: State::Timeout,
        latency: None,
        detail,
    }
}

// ---- failures ------------------------------------------------------------

/// Why a probe failed: the phase and what went wrong there.
#[derive(Debug)]
struct Fail {
    phase: &'static str,
    what: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase, self.what)
    }
}

type Outcome = Result<String, Fail>;

fn fail(phase: &'static str, what: impl fmt::Display) -> Fail {
    Fail {
        phase,
        what: what.to_string(),
    }
}

fn os_fail(phase: &'static str, errno: i32) -> Fail {
    fail(phase, std::io::Error::from_raw_os_error(errno))
}

fn last_os_fail(phase: &'static str) -> Fail {
    fail(phase, std::io::Error::last_os_error())
}

/// A cancellable call's error. `Cancelled` only happens after the runner
/// was cancelled, when nobody looks at the result any more.
fn cancel_fail(phase: &'static str, e: cancel::Error) -> Fail {
    match e {
        cancel::Error::Cancelled => fail(phase, "cancelled"),
        cancel::Error::Os(errno) => os_fail(phase, errno),
    }
}

fn c_path(phase: &'static str, p: &Path) -> Result<CString, Fail> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| fail(phase, "path contains a NUL byte"))
}

/// The calling thread's `errno` (EIO if there is none).
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangsafe::runner::Builder;

    fn run(spec: &str) -> Answer {
        let t = Target::parse(spec).unwrap();
        let timeout = Duration::from_secs(30);
        Builder::new()
            .timeout(timeout)
            .spawn(move |ctx| probe_tracked(&t, ctx, timeout, None))
            .unwrap()
            .wait()
            .unwrap()
    }

    #[test]
    fn probes_a_directory_and_a_file() {
        let dir = std::env::temp_dir();
        let a = run(dir.to_str().unwrap());
        assert_eq!(a.kind, "path");
        let up = a.result.unwrap();
        assert!(up.starts_with("directory on "), "{up}");
        let exe = std::env::current_exe().unwrap();
        let a = run(exe.to_str().unwrap());
        let up = a.result.unwrap();
        assert!(
            up.starts_with("file on ") && up.contains("read 4096 B"),
            "{up}"
        );
    }

    #[test]
    fn a_missing_path_is_down_with_the_phase() {
        let a = run("/nonexistent/hangsafe/probe");
        assert_eq!(a.kind, "path");
        let err = a.result.unwrap_err();
        assert!(err.starts_with("stat: "), "{err}");
    }

    #[test]
    fn a_character_device_is_stat_only() {
        let up = run("/dev/null").result.unwrap();
        assert!(
            up.starts_with("character device on ") && up.ends_with(", stat only"),
            "{up}"
        );
    }

    #[test]
    fn tur_on_a_non_scsi_file_is_down() {
        let a = run("tur:/dev/null");
        assert_eq!(a.kind, "tur");
        let err = a.result.unwrap_err();
        assert!(err.contains("not a SCSI device"), "{err}");
    }

    #[test]
    fn block_on_a_non_block_file_is_down() {
        let a = run("block:/dev/null");
        assert_eq!(a.result.unwrap_err(), "open: not a block device");
    }

    #[test]
    fn timeout_reports_say_what_is_known() {
        let t = Target::parse("/mnt/nfs").unwrap();
        let two = Duration::from_secs(2);
        let r = report(&t, Err(RunError::TimedOut), two);
        assert_eq!(r.state, State::Timeout);
        assert_eq!(r.latency, None);
        assert!(
            r.detail.starts_with("no answer within 2s; cancelled"),
            "{}",
            r.detail
        );
        let hang = Hang {
            phase: Some(("statfs".into(), Duration::from_millis(1990))),
            returned: Some(false),
            allowed: None,
        };
        let r = timeout_report(&t, two, &hang);
        assert_eq!(
            r.detail,
            "no answer within 2s; in statfs for 1.99s; abandoned: its thread is stuck in the kernel"
        );
        let hang = Hang {
            phase: Some(("read sector 0".into(), Duration::from_millis(500))),
            returned: Some(true),
            allowed: Some(Duration::from_millis(500)),
        };
        let r = timeout_report(&Target::parse("/dev/sdz").unwrap(), two, &hang);
        assert_eq!(r.kind, "block");
        assert!(r.detail.contains("cut short"), "{}", r.detail);
        assert!(
            r.detail.ends_with("cancelled, thread back in the pool"),
            "{}",
            r.detail
        );
    }
}
