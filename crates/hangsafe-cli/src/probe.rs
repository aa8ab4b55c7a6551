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

use crate::report::{Report, State};
use crate::target::{Kind, Target};
use hangsafe::cancel;
use hangsafe::runner::{Ctx, RunError};
use std::ffi::{c_ulong, c_void, CString};
use std::fmt;
use std::net::ToSocketAddrs as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The kind reported: `path`, `block`, `tur`, `tcp` or `unix` (an
    /// `auto` target reports `block` if it turned out to be a block device).
    pub kind: &'static str,
    /// `Ok(detail)` when the target is up, `Err(detail)` when it is down.
    pub result: Result<String, String>,
    /// How long the probe took, measured on its thread.
    pub took: Duration,
}

/// Probes `target` on the calling runner thread; `timeout` is the
/// `--timeout` (used as the SCSI timeout of `tur:`, and as the connect
/// deadline when the runner has no deadline of its own).
#[allow(dead_code)] // the interface for callers that need no tracker; see `work`
pub fn probe(target: &Target, ctx: &Ctx<'_>, timeout: Duration) -> Answer {
    probe_tracked(target, ctx, timeout, None)
}

/// [`probe`], also recording each phase in `tracker`.
fn probe_tracked(
    target: &Target,
    run_ctx: &Ctx<'_>,
    timeout: Duration,
    tracker: Option<&Tracker>,
) -> Answer {
    let ctx = &Phases {
        ctx: run_ctx,
        tracker,
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
        Kind::Auto(p) => auto(p, ctx),
        Kind::Path(p) => ("path", path(p, ctx, None)),
        Kind::Block(p) => ("block", block(p, ctx)),
        Kind::Tur(p) => ("tur", tur(p, ctx, timeout)),
        Kind::Tcp { host, port } => ("tcp", tcp(host, *port, ctx, deadline)),
        Kind::Unix(p) => ("unix", unix(p, ctx)),
    };
    Answer {
        kind,
        result: result.map_err(|f| f.to_string()),
        took: start.elapsed(),
    }
}

/// What a probe's work shares with whoever spawned it: the phase it is in
/// (recorded by the work itself, so it is known even after the work has
/// returned) and whether it has returned.
#[derive(Debug, Default)]
struct Tracker {
    returned: AtomicBool,
    phase: Mutex<Option<(&'static str, Instant)>>,
}

/// A handle on a probe's [`Tracker`]: whether its work has returned
/// (whatever the outcome, even after its runner was cancelled or
/// released) and the last phase it entered. A timed-out probe whose work
/// has not returned shortly after its cancel is stuck (abandoned); one
/// whose work returned was interrupted and its thread is back in the pool.
#[derive(Clone, Debug, Default)]
pub struct Returned(Arc<Tracker>);

impl Returned {
    /// Whether the probe's work has returned.
    pub fn get(&self) -> bool {
        self.0.returned.load(Ordering::Acquire)
    }

    /// The last phase the probe entered, and when.
    pub fn phase(&self) -> Option<(&'static str, Instant)> {
        *self.0.phase.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The work for a runner that probes `target`, and the handle that tells
/// its phase and whether it returned. Use it with `Builder::spawn` or
/// `RunnerSet::spawn`.
pub fn work(
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
/// [`Ctx`] (for examine) and records them in the tracker, if any.
struct Phases<'a, 'b> {
    ctx: &'a Ctx<'b>,
    tracker: Option<&'a Tracker>,
}

impl Phases<'_, '_> {
    fn enter_phase(&self, phase: &'static str) {
        self.ctx.enter_phase(phase);
        if let Some(t) = self.tracker {
            *t.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some((phase, Instant::now()));
        }
    }

    fn set_progress(&self, done: u32, total: u32) {
        self.ctx.set_progress(done, total);
    }
}

/// What is known about a probe that did not answer in time, to explain
/// its timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hang {
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
pub fn report(target: &Target, outcome: Result<Answer, RunError>, timeout: Duration) -> Report {
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
pub fn timeout_report(target: &Target, timeout: Duration, hang: &Hang) -> Report {
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

// ---- auto and path ---------------------------------------------------------

/// `stat` decides: a block device gets the block probe, anything else the
/// path probe.
fn auto(p: &Path, ctx: &Phases<'_, '_>) -> (&'static str, Outcome) {
    match stat(p, ctx) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFBLK => ("block", block(p, ctx)),
        Ok(st) => ("path", path(p, ctx, Some(st))),
        Err(f) => ("path", Err(f)),
    }
}

/// `stat(2)`, following symbolic links (plain libc: not interruptible).
fn stat(p: &Path, ctx: &Phases<'_, '_>) -> Result<libc::stat, Fail> {
    ctx.enter_phase("stat");
    let c = c_path("stat", p)?;
    // SAFETY: all-zero bytes are a valid `struct stat` (integers only).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` writable; both outlive the call.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
        return Err(last_os_fail("stat"));
    }
    Ok(st)
}

/// statfs, stat, then by file type: read the first block of a regular file
/// (O_DIRECT if possible) or of a directory's entries, open a FIFO, or stop
/// at stat for anything else. `st` is a stat already taken (auto).
fn path(p: &Path, ctx: &Phases<'_, '_>, st: Option<libc::stat>) -> Outcome {
    ctx.enter_phase("statfs");
    let c = c_path("statfs", p)?;
    // SAFETY: all-zero bytes are a valid `struct statfs` (integers only).
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `sfs` writable; both outlive the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut sfs) } != 0 {
        return Err(last_os_fail("statfs"));
    }
    let fs = fs_name(sfs.f_type as i64);
    let st = match st {
        Some(st) => st,
        None => stat(p, ctx)?,
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => read_file(p, ctx).map(|what| format!("file on {fs}, {what}")),
        libc::S_IFDIR => read_dir(p, ctx).map(|what| format!("directory on {fs}, {what}")),
        libc::S_IFIFO => {
            // Blocks until a writer opens the FIFO; cancellable.
            ctx.enter_phase("open");
            let fd =
                cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?;
            ctx.enter_phase("close");
            let _ = cancel::close(fd);
            Ok(format!("fifo on {fs}, opened (a writer is present)"))
        }
        other => Ok(format!("{} on {fs}, stat only", type_name(other))),
    }
}

/// The name of a file type (`S_IFMT` bits).
fn type_name(fmt: libc::mode_t) -> &'static str {
    match fmt {
        libc::S_IFBLK => "block device",
        libc::S_IFCHR => "character device",
        libc::S_IFSOCK => "socket",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Reads the first block of a regular file, with O_DIRECT unless the
/// filesystem refuses it (EINVAL at open or read).
fn read_file(p: &Path, ctx: &Phases<'_, '_>) -> Result<String, Fail> {
    const BLOCK: usize = 4096;
    let mut buf = AlignedBuf::new(BLOCK, BLOCK);
    ctx.enter_phase("open");
    match cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECT, 0) {
        Ok(fd) => {
            ctx.enter_phase("read");
            match cancel::pread(&fd, buf.as_mut(), 0) {
                Ok(n) => return Ok(format!("read {n} B, directio")),
                Err(cancel::Error::Os(libc::EINVAL)) => {}
                Err(e) => return Err(cancel_fail("read", e)),
            }
        }
        Err(cancel::Error::Os(libc::EINVAL)) => {}
        Err(e) => return Err(cancel_fail("open", e)),
    }
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?;
    ctx.enter_phase("read");
    let n = cancel::pread(&fd, buf.as_mut(), 0).map_err(|e| cancel_fail("read", e))?;
    Ok(format!("read {n} B, no directio"))
}

/// Opens a directory and reads its first block of entries (getdents64).
fn read_dir(p: &Path, ctx: &Phases<'_, '_>) -> Result<String, Fail> {
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| cancel_fail("open", e))?;
    ctx.enter_phase("getdents");
    let mut buf = vec![0u8; 4096];
    // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`, which
    // lives until after the call; `fd` is an open directory.
    let n = unsafe {
        cancel::syscall(
            libc::SYS_getdents64,
            [
                fd.as_raw_fd() as libc::c_long,
                buf.as_mut_ptr() as libc::c_long,
                buf.len() as libc::c_long,
                0,
                0,
                0,
            ],
        )
    }
    .map_err(|e| cancel_fail("getdents", e))?;
    let n = usize::try_from(n).unwrap_or(0).min(buf.len());
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    let mut entries = 0;
    let mut at = 0;
    while at + 19 <= n {
        let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
        if reclen == 0 {
            break;
        }
        entries += 1;
        at += reclen;
    }
    Ok(format!("read {entries} entries"))
}

/// The name of a filesystem, from `statfs`'s `f_type` magic.
fn fs_name(magic: i64) -> String {
    let name = match magic as u32 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x794C_7630 => "overlay",
        0x9FA0 => "proc",
        0x6265_6572 => "sysfs",
        0x6367_7270 => "cgroup2",
        0x0027_E0EB => "cgroup",
        0x1CD1 => "devpts",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x00C3_6400 => "ceph",
        0x4D44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x5346_544E => "ntfs",
        0x9660 => "iso9660",
        0x7371_7368 => "squashfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x8584_58F6 => "ramfs",
        0x9584_58F6 => "hugetlbfs",
        0x7472_6163 => "tracefs",
        0x6462_6720 => "debugfs",
        0x0187 => "autofs",
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x0BAD_1DEA => "9p",
        0x0102_1997 => "9p",
        0x1373 => "devfs",
        0x6E73_6673 => "nsfs",
        0x1980_0202 => "mqueue",
        _ => return format!("fs 0x{:x}", magic as u64),
    };
    name.to_owned()
}

/// A zeroed, aligned heap buffer for O_DIRECT.
struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    /// `len` bytes aligned to `align` (a power of two); both at least 1.
    fn new(len: usize, align: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(1), align.max(1))
            .expect("buffer size and alignment are valid");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, layout }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed) bytes
        // that this value owns exclusively for the borrow's duration.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the buffer is plain owned memory with no thread affinity.
unsafe impl Send for AlignedBuf {}

// ---- block -----------------------------------------------------------------

/// An O_DIRECT read of sector 0, of the device's logical block size.
fn block(p: &Path, ctx: &Phases<'_, '_>) -> Outcome {
    ctx.enter_phase("open");
    let (fd, direct) = match cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECT, 0) {
        Ok(fd) => (fd, true),
        Err(cancel::Error::Os(libc::EINVAL)) => (
            cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?,
            false,
        ),
        Err(e) => return Err(cancel_fail("open", e)),
    };
    // SAFETY: all-zero bytes are a valid `struct stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` writable for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_os_fail("fstat"));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
        return Err(fail("open", "not a block device"));
    }
    ctx.enter_phase(BLOCK_PHASES[0]);
    let mut lbs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int into `lbs`, which outlives the call.
    unsafe {
        cancel::ioctl(
            fd.as_raw_fd(),
            libc::BLKSSZGET as c_ulong,
            (&mut lbs as *mut libc::c_int).cast::<c_void>(),
        )
    }
    .map_err(|e| cancel_fail("BLKSSZGET", e))?;
    let size = usize::try_from(lbs)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(512);
    let mut buf = AlignedBuf::new(size, size.max(4096));
    ctx.enter_phase(BLOCK_PHASES[1]);
    let n = cancel::pread(&fd, buf.as_mut(), 0).map_err(|e| cancel_fail("read sector 0", e))?;
    if n == 0 {
        return Err(fail("read sector 0", "end of device (empty medium?)"));
    }
    Ok(format!(
        "read {n} B of sector 0 (logical block {size} B), {}",
        if direct { "directio" } else { "no directio" }
    ))
}

// ---- tur -------------------------------------------------------------------

/// `struct sg_io_hdr` of `<scsi/sg.h>`.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut c_void,
    cmdp: *mut u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

const SG_IO: c_ulong = 0x2285;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_INFO_OK_MASK: u32 = 0x1;

/// SCSI TEST UNIT READY through SG_IO, with the SCSI timeout set to
/// `timeout`.
fn tur(p: &Path, ctx: &Phases<'_, '_>, timeout: Duration) -> Outcome {
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|e| cancel_fail("open", e))?;
    let mut cdb = [0u8; 6]; // TEST UNIT READY: opcode 0x00, all zeros
    let mut sense = [0u8; 32];
    let mut hdr = SgIoHdr {
        interface_id: libc::c_int::from(b'S'),
        dxfer_direction: SG_DXFER_NONE,
        cmd_len: cdb.len() as u8,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len: 0,
        dxferp: std::ptr::null_mut(),
        cmdp: cdb.as_mut_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1),
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    ctx.enter_phase("SG_IO");
    // SAFETY: `hdr` is a valid sg_io_hdr whose pointers (`cdb`, `sense`)
    // point to live buffers of the lengths given; all outlive the call.
    let r = unsafe {
        cancel::ioctl(
            fd.as_raw_fd(),
            SG_IO,
            (&mut hdr as *mut SgIoHdr).cast::<c_void>(),
        )
    };
    match r {
        Ok(_) => {}
        Err(cancel::Error::Os(e @ (libc::ENOTTY | libc::EINVAL | libc::ENOSYS))) => {
            return Err(fail(
                "SG_IO",
                format!(
                    "not a SCSI device (SG_IO: {})",
                    std::io::Error::from_raw_os_error(e)
                ),
            ))
        }
        Err(e) => return Err(cancel_fail("SG_IO", e)),
    }
    if hdr.info & SG_INFO_OK_MASK == 0 {
        return Ok(format!("TEST UNIT READY: GOOD ({} ms)", hdr.duration));
    }
    let mut what = format!(
        "TEST UNIT READY failed: status 0x{:02x}, host 0x{:02x} ({}), driver 0x{:02x}",
        hdr.status,
        hdr.host_status,
        host_status_name(hdr.host_status),
        hdr.driver_status
    );
    let sb = &sense[..usize::from(hdr.sb_len_wr).min(sense.len())];
    if let Some((key, asc, ascq)) = sense_key(sb) {
        what.push_str(&format!(
            ", sense key {} (0x{key:x}), asc/ascq 0x{asc:02x}/0x{ascq:02x}",
            sense_key_name(key)
        ));
    }
    Err(fail("SG_IO", what))
}

/// Sense key, ASC and ASCQ from fixed (0x70/0x71) or descriptor
/// (0x72/0x73) sense data.
fn sense_key(sb: &[u8]) -> Option<(u8, u8, u8)> {
    match sb.first()? & 0x7f {
        0x70 | 0x71 if sb.len() >= 3 => Some((
            sb[2] & 0x0f,
            sb.get(12).copied().unwrap_or(0),
            sb.get(13).copied().unwrap_or(0),
        )),
        0x72 | 0x73 if sb.len() >= 2 => Some((
            sb[1] & 0x0f,
            sb.get(2).copied().unwrap_or(0),
            sb.get(3).copied().unwrap_or(0),
        )),
        _ => None,
    }
}

fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0xb => "ABORTED COMMAND",
        _ => "other",
    }
}

fn host_status_name(h: u16) -> &'static str {
    match h {
        0x00 => "DID_OK",
        0x01 => "DID_NO_CONNECT",
        0x02 => "DID_BUS_BUSY",
        0x03 => "DID_TIME_OUT",
        0x04 => "DID_BAD_TARGET",
        0x05 => "DID_ABORT",
        0x06 => "DID_PARITY",
        0x07 => "DID_ERROR",
        0x08 => "DID_RESET",
        0x0e => "DID_TRANSPORT_DISRUPTED",
        0x0f => "DID_TRANSPORT_FAILFAST",
        _ => "other",
    }
}

// ---- tcp and unix ------------------------------------------------------------

/// Resolves `host` (on this thread: DNS can hang; not interruptible), then
/// tries each address with a non-blocking connect until `deadline`.
fn tcp(host: &str, port: u16, ctx: &Phases<'_, '_>, deadline: Instant) -> Outcome {
    ctx.enter_phase("resolve");
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail("resolve", e))?
        .collect();
    if addrs.is_empty() {
        return Err(fail("resolve", "no address"));
    }
    let mut errors = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        ctx.enter_phase("connect");
        ctx.set_progress(i as u32 + 1, addrs.len() as u32);
        match connect_tcp(*addr, deadline) {
            Ok(()) => return Ok(format!("connected to {addr}")),
            Err(cancel::Error::Cancelled) => return Err(fail("connect", "cancelled")),
            Err(cancel::Error::Os(e)) => {
                errors.push(format!("{addr}: {}", std::io::Error::from_raw_os_error(e)))
            }
        }
    }
    Err(fail("connect", errors.join("; ")))
}

/// One non-blocking connect, waited for (cancellably) until `deadline`.
fn connect_tcp(addr: std::net::SocketAddr, deadline: Instant) -> cancel::Result<()> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(cancel::Error::Os(errno()));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    match cancel::connect(&fd, &cancel::SockAddr::from(addr)) {
        Ok(()) => return Ok(()),
        Err(cancel::Error::Os(libc::EINPROGRESS)) => {}
        Err(e) => return Err(e),
    }
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    let left = deadline.saturating_duration_since(Instant::now());
    if cancel::poll(&mut pfd, Some(left))? == 0 {
        return Err(cancel::Error::Os(libc::ETIMEDOUT));
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one int) into `err`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(cancel::Error::Os(errno()));
    }
    if err != 0 {
        return Err(cancel::Error::Os(err));
    }
    Ok(())
}

/// A blocking, cancellable connect to a unix stream socket (it blocks
/// while the listener's backlog is full).
fn unix(p: &Path, ctx: &Phases<'_, '_>) -> Outcome {
    ctx.enter_phase("connect");
    let addr = cancel::SockAddr::unix(p).map_err(|_| fail("connect", "socket path too long"))?;
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(last_os_fail("socket"));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    cancel::connect(&fd, &addr).map_err(|e| cancel_fail("connect", e))?;
    Ok("connected".to_owned())
}

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
            .spawn(move |ctx| probe(&t, ctx, timeout))
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
    fn sense_data_is_decoded() {
        let fixed = [0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x02];
        assert_eq!(sense_key(&fixed), Some((2, 4, 2)));
        assert_eq!(sense_key(&[0x72, 0x06, 0x29, 0x00]), Some((6, 0x29, 0)));
        assert_eq!(sense_key(&[]), None);
        assert_eq!(sense_key(&[0x00, 1, 2]), None);
    }

    #[test]
    fn sg_io_hdr_has_the_kernel_layout() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<SgIoHdr>(), 88);
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
