//! Probing: every target is checked in its own hangsafe runner, all runners
//! are started before any is waited for, and each result is collected by
//! its deadline at the latest.
//!
//! The pieces are meant to grow with the tool:
//!
//! * [`Probe`] is anything that can be checked by a blocking call;
//! * [`Target`] is what the user names on the command line (only paths
//!   for now; block devices, TCP and Unix endpoints later);
//! * [`Report`] is one result row, independent of how it is rendered
//!   (table today, JSON later).

use crate::duration;
use hangsafe::runner::{Builder, RunError, Runner, SpawnError};
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Something that can be checked by a blocking call that may hang.
///
/// `run` is executed on a runner thread; it may block forever, in which
/// case its thread is abandoned and the probe is reported as timed out.
pub trait Probe: Send + 'static {
    /// How the probe is named in reports (the first column of the table).
    fn label(&self) -> String;

    /// Performs the check: `Ok` if the target answered and is healthy,
    /// the error otherwise.
    fn run(&self) -> io::Result<()>;
}

/// A target named by the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A filesystem path, checked with stat(2).
    Path(PathBuf),
}

impl Probe for Target {
    fn label(&self) -> String {
        match self {
            Target::Path(p) => p.to_string_lossy().into_owned(),
        }
    }

    fn run(&self) -> io::Result<()> {
        match self {
            Target::Path(p) => stat_path(p),
        }
    }
}

/// stat(2)s `path`, following symbolic links like stat(2) does, without
/// triggering an automount of the final component (`AT_NO_AUTOMOUNT`,
/// also stat(2)'s behaviour), so that checking an autofs mount point has no
/// side effect. The metadata itself is not needed: answering is the check.
fn stat_path(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: all-zero bytes are a valid `struct stat` (integers only).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a valid,
    // writable `struct stat`; both outlive the call.
    let rc = unsafe {
        libc::fstatat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &mut st,
            libc::AT_NO_AUTOMOUNT,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The state of one target after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The probe answered successfully.
    Up,
    /// The probe answered with an error, or could not be run.
    Down,
    /// The probe did not answer before its deadline.
    Timeout,
}

impl Status {
    /// The lower-case name shown to users: `up`, `down` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of checking one target: one row of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The probe's label (for paths, the path, lossily converted to UTF-8).
    pub target: String,
    /// Up, down or timeout.
    pub status: Status,
    /// How long the probe took, measured on its thread; `None` if it did
    /// not answer (timeout) or never ran.
    pub latency: Option<Duration>,
    /// The error for `Down`, the deadline for `Timeout`, empty for `Up`.
    pub detail: String,
}

/// What a probe's runner hands back: its result and how long it took.
type Answer = (io::Result<()>, Duration);

/// Checks every probe with the given per-probe timeout and returns one
/// report per probe, in the input order.
///
/// All runners are spawned first, so the probes run concurrently and the
/// call returns within about `timeout` after it starts, however many probes
/// hang: a runner that misses its deadline is released, not joined.
pub fn run_all<P: Probe>(probes: Vec<P>, timeout: Duration) -> Vec<Report> {
    let started: Vec<(String, Result<Runner<Answer>, SpawnError>)> = probes
        .into_iter()
        .map(|probe| {
            let label = probe.label();
            let runner = Builder::new().timeout(timeout).spawn(move |_ctx| {
                let start = Instant::now();
                let result = probe.run();
                (result, start.elapsed())
            });
            (label, runner)
        })
        .collect();

    started
        .into_iter()
        .map(|(target, runner)| {
            let (status, latency, detail) = match runner.map(Runner::wait) {
                Ok(Ok((Ok(()), took))) => (Status::Up, Some(took), String::new()),
                Ok(Ok((Err(e), took))) => (Status::Down, Some(took), e.to_string()),
                Ok(Err(RunError::TimedOut)) => (
                    Status::Timeout,
                    None,
                    format!("no answer within {}", duration::format(timeout)),
                ),
                Ok(Err(e)) => (Status::Down, None, format!("probe failed: {e}")),
                Err(e) => (Status::Down, None, format!("probe not started: {e}")),
            };
            Report {
                target,
                status,
                latency,
                detail,
            }
        })
        .collect()
}

/// Exit status when every target is up.
pub const EXIT_UP: u8 = 0;
/// Exit status when at least one target is down and none timed out.
pub const EXIT_DOWN: u8 = 1;
/// Exit status when at least one probe timed out.
pub const EXIT_TIMEOUT: u8 = 2;

/// The process exit status for a set of reports: [`EXIT_TIMEOUT`] if any
/// probe timed out, else [`EXIT_DOWN`] if any target is down, else
/// [`EXIT_UP`].
pub fn exit_code(reports: &[Report]) -> u8 {
    if reports.iter().any(|r| r.status == Status::Timeout) {
        EXIT_TIMEOUT
    } else if reports.iter().any(|r| r.status == Status::Down) {
        EXIT_DOWN
    } else {
        EXIT_UP
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    /// A probe whose behaviour the test decides.
    enum Fake {
        Ok,
        Fail(&'static str),
        /// Blocks until the sender is dropped (never, within the test).
        Hang(Arc<Mutex<mpsc::Receiver<()>>>),
        Panic,
    }

    impl Probe for Fake {
        fn label(&self) -> String {
            match self {
                Fake::Ok => "ok".into(),
                Fake::Fail(_) => "fail".into(),
                Fake::Hang(_) => "hang".into(),
                Fake::Panic => "panic".into(),
            }
        }

        fn run(&self) -> io::Result<()> {
            match self {
                Fake::Ok => Ok(()),
                Fake::Fail(msg) => Err(io::Error::other(*msg)),
                Fake::Hang(rx) => {
                    let _ = rx.lock().unwrap().recv();
                    Ok(())
                }
                Fake::Panic => panic!("boom"),
            }
        }
    }

    #[test]
    fn reports_up_down_and_keeps_order() {
        let reports = run_all(
            vec![Fake::Fail("broken"), Fake::Ok],
            Duration::from_secs(30),
        );
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].target, "fail");
        assert_eq!(reports[0].status, Status::Down);
        assert_eq!(reports[0].detail, "broken");
        assert!(reports[0].latency.is_some());
        assert_eq!(reports[1].target, "ok");
        assert_eq!(reports[1].status, Status::Up);
        assert_eq!(reports[1].detail, "");
        assert!(reports[1].latency.is_some());
        assert_eq!(exit_code(&reports), 1);
    }

    #[test]
    fn a_hung_probe_times_out_without_holding_up_the_others() {
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let reports = run_all(
            vec![Fake::Hang(Arc::clone(&rx)), Fake::Ok, Fake::Hang(rx)],
            timeout,
        );
        let took = start.elapsed();
        // Generous bound: the point is "returns", not precise timing.
        assert!(took < timeout + Duration::from_secs(5), "took {took:?}");
        let statuses: Vec<Status> = reports.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Status::Timeout, Status::Up, Status::Timeout]);
        assert_eq!(reports[0].detail, "no answer within 200ms");
        assert_eq!(reports[0].latency, None);
        assert_eq!(exit_code(&reports), 2);
        drop(tx); // lets the hung probes return and their threads retire
    }

    #[test]
    fn a_panicking_probe_is_down() {
        let reports = run_all(vec![Fake::Panic], Duration::from_secs(30));
        assert_eq!(reports[0].status, Status::Down);
        assert!(reports[0].detail.contains("boom"), "{}", reports[0].detail);
    }

    #[test]
    fn stats_real_paths() {
        let dir = std::env::temp_dir();
        let missing = dir.join("hangsafe-cli-unit-test-missing/nope");
        let reports = run_all(
            vec![Target::Path(dir.clone()), Target::Path(missing.clone())],
            Duration::from_secs(30),
        );
        assert_eq!(reports[0].status, Status::Up);
        assert_eq!(reports[0].target, dir.to_string_lossy());
        assert_eq!(reports[1].status, Status::Down);
        assert_eq!(
            reports[1].detail,
            io::Error::from_raw_os_error(libc::ENOENT).to_string()
        );
        assert_eq!(reports[1].target, missing.to_string_lossy());
    }

    #[test]
    fn exit_code_ranks_timeout_over_down_over_up() {
        let row = |status| Report {
            target: String::new(),
            status,
            latency: None,
            detail: String::new(),
        };
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[row(Status::Up)]), 0);
        assert_eq!(exit_code(&[row(Status::Up), row(Status::Down)]), 1);
        assert_eq!(exit_code(&[row(Status::Timeout), row(Status::Down)]), 2);
        assert_eq!(exit_code(&[row(Status::Timeout)]), 2);
    }
}
