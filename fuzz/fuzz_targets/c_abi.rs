//! Fuzzes the argument handling of the C ABI (`runner.h`, `hangsafe.h`):
//! sequences of calls with arbitrary sizes, timeouts, flags, buffers,
//! state numbers, descriptors, and arbitrary bytes as a robust mutex.
//!
//! Every call stays inside the C contract (a pointer is NULL or points to
//! memory of the size passed, a handle is released once), so anything the
//! sanitizer or a panic reports is a bug of the library. Where the kernel
//! would block for ever or act outside the process (a blocking read, an
//! ioctl on a real device, a connect over the network), the input is
//! narrowed: descriptors come from a fixed set of non-blocking ones,
//! ioctl requests from a harmless list, sockets are AF_UNIX.
//!
//! The event-loop hooks of a runner set (`hs_set_attach`, ...) get
//! recording hooks that fail on demand, and the `occurred` functions get
//! arbitrary `for_hs` values (garbage, stale, live), fds and events: a
//! `for_hs` is never dereferenced, so any value must be dropped cleanly.
//!
//! Run with `-detect_leaks=0` (`c_abi.flags`, used by CI): the runners run
//! on the global pool, whose detached threads exit after an idle timeout;
//! one exiting at the moment libFuzzer ends the process is reported by
//! LeakSanitizer's exit-time check as a leak of its own start-up closure
//! (seen once in 12 minutes). libFuzzer already turns off its per-input
//! leak check for this target, as the pool is global state.

#![no_main]

use hangsafe_capi_fuzz as c;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

/// The largest runner data and buffer used.
const BUF: usize = 4096;
/// The most calls one input makes.
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug)]
enum Work {
    Null,
    Noop,
    Flip,
    /// Spins on `hs_testcancel` and cancellable sleeps until cancelled,
    /// for at most 20 ms.
    UntilCancelled,
}

#[derive(Arbitrary, Debug)]
enum Fd {
    MinusOne,
    Min,
    Max,
    Huge,
    PipeRead,
    PipeWrite,
    DevNull,
    DevZero,
    Socket,
    Listener,
    Dir,
}

#[derive(Arbitrary, Debug)]
enum Path {
    Null,
    Empty,
    DevNull,
    Missing,
    ProcStat,
    /// A file name inside the fuzzer's private directory (with `Fd::Dir`).
    Local(u8),
}

#[derive(Arbitrary, Debug)]
enum Request {
    FionRead,
    Tcgets,
    Zero,
    Max,
    FioClex,
    FionClex,
}

#[derive(Arbitrary, Debug)]
enum RobustOp {
    Init,
    TryLock,
    /// A past (or invalid) absolute time: never blocks for long.
    TimedLock {
        sec: i64,
        nsec: i64,
    },
    NullTimeout,
    Consistent,
    Unlock,
    /// Writes a byte of the mutex's memory.
    Poke {
        at: u8,
        byte: u8,
    },
    /// Uses the mutex at an offset of 1 to 7 bytes.
    Misalign(u8),
    Null,
}

#[derive(Arbitrary, Debug)]
enum OseventOp {
    Attach,
    AttachNullHooks,
    Detach,
    /// The next register hooks return this value (0: succeed).
    FailWith(i32),
    Spawn {
        until_cancelled: bool,
        timeout_usec: u16,
    },
    /// `for_hs` is arbitrary, or (with `live`) one the hooks were given.
    OccurredFd {
        for_hs: u64,
        live: bool,
        fd: Option<Fd>,
        events: i16,
        revents: i16,
    },
    OccurredTimeout {
        for_hs: u64,
        live: bool,
    },
    Drain,
    NullSet(u64),
}

#[derive(Arbitrary, Debug)]
enum Op {
    GetRunner {
        work: Work,
        null_data: bool,
        len: u16,
        size: u32,
        timeout: u64,
    },
    Check {
        which: u8,
        null_data: bool,
        size: u32,
    },
    CheckNull {
        size: u32,
    },
    Release {
        which: u8,
    },
    ReleaseNull,
    StateName(i32),
    Metrics {
        null: bool,
    },
    Version,
    Read {
        fd: Fd,
        null: bool,
        count: u32,
    },
    Write {
        fd: Fd,
        null: bool,
        count: u32,
    },
    Poll {
        fds: Vec<(Fd, i16)>,
        null: bool,
        extra: u8,
        timeout_ms: u8,
    },
    Nanosleep {
        sec: i64,
        nsec: i64,
        null_req: bool,
        rem: bool,
    },
    Openat {
        dir: Fd,
        path: Path,
        flags: i32,
        mode: u32,
    },
    Ioctl {
        fd: Fd,
        request: Request,
        null: bool,
    },
    Accept {
        fd: Fd,
        addr: bool,
        addrlen: Option<u32>,
        flags: i32,
    },
    Connect {
        fd: Fd,
        addr: Option<Vec<u8>>,
        addrlen: u32,
    },
    TestCancel,
    Robust {
        init_bytes: Vec<u8>,
        ops: Vec<RobustOp>,
    },
    Osevent(Vec<OseventOp>),
}

/// Descriptors that exist for the whole run (all non-blocking).
struct Fds {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    null: OwnedFd,
    zero: OwnedFd,
    socket: OwnedFd,
    listener: OwnedFd,
    dir: OwnedFd,
}

fn nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn fds() -> &'static Fds {
    static FDS: OnceLock<Fds> = OnceLock::new();
    FDS.get_or_init(|| {
        let (r, w) = std::io::pipe().expect("pipe");
        let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
        nonblocking(&r);
        nonblocking(&w);
        let open = |p: &str| -> OwnedFd {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .expect("open")
                .into()
        };
        let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
        sock.set_nonblocking(true).expect("nonblocking");
        let dir = std::env::temp_dir().join(format!("hangsafe-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz directory");
        let listener =
            std::os::unix::net::UnixListener::bind(dir.join("listener")).expect("listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let dirfd: OwnedFd = std::fs::File::open(&dir).expect("open dir").into();
        Fds {
            pipe_r: r,
            pipe_w: w,
            null: open("/dev/null"),
            zero: open("/dev/zero"),
            socket: sock.into(),
            listener: listener.into(),
            dir: dirfd,
        }
    })
}

fn raw(fd: &Fd) -> c_int {
    let f = fds();
    match fd {
        Fd::MinusOne => -1,
        Fd::Min => c_int::MIN,
        Fd::Max => c_int::MAX,
        Fd::Huge => 1 << 24,
        Fd::PipeRead => f.pipe_r.as_raw_fd(),
        Fd::PipeWrite => f.pipe_w.as_raw_fd(),
        Fd::DevNull => f.null.as_raw_fd(),
        Fd::DevZero => f.zero.as_raw_fd(),
        Fd::Socket => f.socket.as_raw_fd(),
        Fd::Listener => f.listener.as_raw_fd(),
        Fd::Dir => f.dir.as_raw_fd(),
    }
}

unsafe extern "C" fn work_noop(_data: *mut c_void) {}

unsafe extern "C" fn work_flip(data: *mut c_void) {
    // SAFETY: every runner's data is at least one byte.
    unsafe { *data.cast::<u8>() ^= 0xff };
}

unsafe extern "C" fn work_until_cancelled(_data: *mut c_void) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    for _ in 0..20 {
        if c::hs_testcancel() != 0 {
            return;
        }
        // SAFETY: `ts` is a valid timespec; no remainder is asked for.
        if unsafe { c::hs_nanosleep(&ts, std::ptr::null_mut()) } != 0 {
            return;
        }
    }
}

/// A 16-byte aligned scratch buffer.
#[repr(C, align(16))]
struct Scratch([u8; BUF + 16]);

fn get_runner(
    work: &Work,
    null_data: bool,
    len: u16,
    size: u32,
    timeout: u64,
) -> *mut c::RunnerContext {
    let func: c::RunnerFunc = match work {
        Work::Null => None,
        Work::Noop => Some(work_noop),
        Work::Flip => Some(work_flip),
        Work::UntilCancelled => Some(work_until_cancelled),
    };
    let data = vec![0x5au8; (len as usize % BUF) + 1];
    // Within the contract: size is at most the data's length (0 is
    // allowed: it is refused).
    let size = if null_data {
        size
    } else {
        size % (data.len() as u32 + 1)
    };
    let p = if null_data {
        std::ptr::null_mut()
    } else {
        data.as_ptr().cast_mut().cast::<c_void>()
    };
    // SAFETY: `p` is NULL or readable for `size` bytes; the work functions
    // are sound for any data of at least one byte and return normally.
    unsafe { c::get_runner(func, p, size as c_uint, timeout as c_ulong) }
}

fn robust(init_bytes: &[u8], ops: &[RobustOp]) {
    // 64 bytes plus room for misalignment, 8-byte aligned.
    let mut mem = [0u64; 9];
    let bytes = mem.as_mut_ptr().cast::<u8>();
    for (i, b) in init_bytes.iter().take(72).enumerate() {
        // SAFETY: `i` < 72, the size of `mem`.
        unsafe { *bytes.add(i) = *b };
    }
    let mut m = bytes.cast::<c::HsRobustMutex>();
    for op in ops.iter().take(MAX_OPS) {
        let saved = std::io::Error::last_os_error().raw_os_error();
        // SAFETY: `m` is NULL, misaligned (refused before use), or points
        // to at least 64 bytes of `mem`, which outlives every call.
        let rc = unsafe {
            match op {
                RobustOp::Init => c::hs_robust_mutex_init(m),
                RobustOp::TryLock => c::hs_robust_mutex_trylock(m),
                RobustOp::TimedLock { sec, nsec } => {
                    let t = libc::timespec {
                        tv_sec: (*sec).min(0),
                        tv_nsec: *nsec,
                    };
                    c::hs_robust_mutex_timedlock(m, &t)
                }
                RobustOp::NullTimeout => c::hs_robust_mutex_timedlock(m, std::ptr::null()),
                RobustOp::Consistent => c::hs_robust_mutex_consistent(m),
                RobustOp::Unlock => c::hs_robust_mutex_unlock(m),
                RobustOp::Poke { at, byte } => {
                    *bytes.add(usize::from(*at) % 72) = *byte;
                    0
                }
                RobustOp::Misalign(k) => {
                    m = bytes.add(usize::from(*k % 8)).cast();
                    0
                }
                RobustOp::Null => {
                    m = std::ptr::null_mut();
                    0
                }
            }
        };
        assert!(
            matches!(
                rc,
                0 | libc::EOWNERDEAD
                    | libc::EBUSY
                    | libc::ETIMEDOUT
                    | libc::EINVAL
                    | libc::EPERM
                    | libc::EDEADLK
                    | libc::ENOTRECOVERABLE
                    | libc::EXDEV
                    | libc::EIO
            ),
            "{op:?} returned {rc}"
        );
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            saved,
            "{op:?} changed errno"
        );
    }
    // Leave nothing held by this thread: a mutex it still holds would be
    // freed with `mem`, which is fine (the mutex holds no resources), but
    // be tidy anyway.
    // SAFETY: as above.
    unsafe { c::hs_robust_mutex_unlock(m) };
}

fn one(op: &Op, runners: &mut Vec<*mut c::RunnerContext>, scratch: &mut Scratch) {
    let buf = scratch.0.as_mut_ptr();
    match op {
        Op::GetRunner {
            work,
            null_data,
            len,
            size,
            timeout,
        } => {
            let r = get_runner(work, *null_data, *len, *size, *timeout);
            if !r.is_null() {
                runners.push(r);
            }
        }
        Op::Check {
            which,
            null_data,
            size,
        } => {
            if runners.is_empty() {
                return;
            }
            let r = runners[usize::from(*which) % runners.len()];
            let data = if *null_data {
                std::ptr::null_mut()
            } else {
                buf.cast::<c_void>()
            };
            // SAFETY: `r` is live; `data` is NULL or has BUF bytes, more
            // than any runner's data, so min(size, runner's size) fits.
            let st = unsafe { c::check_runner(r, data, *size as c_uint) };
            assert!(
                (c::RUNNER_RUNNING..=c::RUNNER_DEAD).contains(&st),
                "state {st}"
            );
        }
        Op::CheckNull { size } => {
            // SAFETY: NULL is refused before anything is read.
            let st = unsafe { c::check_runner(std::ptr::null_mut(), buf.cast(), *size) };
            assert_eq!(st, -1);
        }
        Op::Release { which } => {
            if !runners.is_empty() {
                let i = usize::from(*which) % runners.len();
                // SAFETY: removed from the list: released exactly once.
                unsafe { c::release_runner(runners.swap_remove(i)) };
            }
        }
        // SAFETY: NULL is ignored.
        Op::ReleaseNull => unsafe { c::release_runner(std::ptr::null_mut()) },
        Op::StateName(s) => {
            // SAFETY: the result is a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(c::runner_state_name(*s)) };
            assert!(!name.to_bytes().is_empty());
        }
        Op::Metrics { null } => {
            let mut m = c::HsRunnerMetrics::default();
            let p = if *null {
                std::ptr::null_mut()
            } else {
                &mut m as *mut _
            };
            // SAFETY: NULL or a writable struct.
            let rc = unsafe { c::hs_runner_metrics(p) };
            assert_eq!(rc, if *null { -1 } else { 0 });
        }
        Op::Version => {
            assert!(!c::hs_version().is_null());
        }
        Op::Read { fd, null, count } => {
            let (p, n) = if *null {
                (std::ptr::null_mut(), *count as usize)
            } else {
                (buf.cast(), *count as usize % (BUF + 1))
            };
            // SAFETY: NULL (the kernel answers EFAULT) or BUF writable bytes.
            unsafe { c::hs_read(raw(fd), p, n) };
        }
        Op::Write { fd, null, count } => {
            let (p, n) = if *null {
                (std::ptr::null(), *count as usize)
            } else {
                (buf.cast_const().cast(), *count as usize % (BUF + 1))
            };
            // SAFETY: NULL (EFAULT) or BUF readable bytes.
            unsafe { c::hs_write(raw(fd), p, n) };
        }
        Op::Poll {
            fds,
            null,
            extra,
            timeout_ms,
        } => {
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .take(16)
                .map(|(fd, events)| libc::pollfd {
                    fd: raw(fd),
                    events: *events,
                    revents: 0,
                })
                .collect();
            let (p, n) = if *null {
                (std::ptr::null_mut(), libc::nfds_t::from(*extra))
            } else {
                (pfds.as_mut_ptr(), pfds.len() as libc::nfds_t)
            };
            // SAFETY: NULL (EFAULT unless n is 0) or `n` entries.
            unsafe { c::hs_poll(p, n, c_int::from(*timeout_ms % 10)) };
        }
        Op::Nanosleep {
            sec,
            nsec,
            null_req,
            rem,
        } => {
            // Valid requests sleep at most a microsecond.
            let nsec = if (0..1_000_000_000).contains(nsec) {
                nsec % 1000
            } else {
                *nsec
            };
            let req = libc::timespec {
                tv_sec: (*sec).min(0),
                tv_nsec: nsec,
            };
            let mut left = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let rq = if *null_req {
                std::ptr::null()
            } else {
                &req as *const _
            };
            let rm = if *rem {
                &mut left as *mut _
            } else {
                std::ptr::null_mut()
            };
            // SAFETY: NULL (EFAULT) or valid timespecs.
            unsafe { c::hs_nanosleep(rq, rm) };
        }
        Op::Openat {
            dir,
            path,
            flags,
            mode,
        } => {
            let local;
            let p: *const libc::c_char = match path {
                Path::Null => std::ptr::null(),
                Path::Empty => c"".as_ptr(),
                Path::DevNull => c"/dev/null".as_ptr(),
                Path::Missing => c"/nonexistent-hangsafe-fuzz/x".as_ptr(),
                Path::ProcStat => c"/proc/self/stat".as_ptr(),
                Path::Local(k) => {
                    local = std::ffi::CString::new(format!("f{}", k % 8)).expect("no NUL");
                    local.as_ptr()
                }
            };
            // A relative path is only ever resolved in the private
            // directory (or fails on a descriptor that is not one).
            let dirfd = match path {
                Path::Local(_) => fds().dir.as_raw_fd(),
                _ => raw(dir),
            };
            // Never block opening something (O_NONBLOCK); O_PATH etc. stay.
            let flags = *flags | libc::O_NONBLOCK | libc::O_CLOEXEC;
            // SAFETY: NULL (EFAULT) or a NUL-terminated string.
            let fd = unsafe { c::hs_openat4(dirfd, p, flags, *mode) };
            if fd >= 0 {
                // SAFETY: the descriptor was just opened and is ours.
                unsafe { libc::close(fd) };
            }
        }
        Op::Ioctl { fd, request, null } => {
            let req: c_ulong = match request {
                Request::FionRead => libc::FIONREAD,
                Request::Tcgets => libc::TCGETS,
                Request::Zero => 0,
                Request::Max => c_ulong::MAX,
                Request::FioClex => libc::FIOCLEX,
                Request::FionClex => libc::FIONCLEX,
            };
            let arg = if *null {
                std::ptr::null_mut()
            } else {
                buf.cast::<c_void>()
            };
            // SAFETY: each request in the list reads or writes at most a
            // struct termios (60 bytes) through `arg`: NULL or BUF bytes.
            unsafe { c::hs_ioctl3(raw(fd), req, arg) };
        }
        Op::Accept {
            fd,
            addr,
            addrlen,
            flags,
        } => {
            let mut len: libc::socklen_t = addrlen.map_or(0, |l| l % (BUF as u32 + 1));
            let a = if *addr {
                buf.cast::<libc::sockaddr>()
            } else {
                std::ptr::null_mut()
            };
            let l = if addrlen.is_some() {
                &mut len as *mut _
            } else {
                std::ptr::null_mut()
            };
            // SAFETY: `a` NULL or BUF bytes, `*l` at most BUF; the
            // descriptors are non-blocking.
            let nfd = unsafe { c::hs_accept4(raw(fd), a, l, *flags) };
            if nfd >= 0 {
                // SAFETY: the accepted descriptor is ours.
                unsafe { libc::close(nfd) };
            }
        }
        Op::Connect { fd, addr, addrlen } => {
            // Only AF_UNIX sockets are ever in the set: no network.
            let bytes = addr.as_deref().map(|b| &b[..b.len().min(BUF)]);
            let (p, n) = match bytes {
                Some(b) => {
                    scratch.0[..b.len()].copy_from_slice(b);
                    // The family stays arbitrary, but a unix path always
                    // starts in an abstract name of our own: never a real
                    // socket of this machine.
                    let tag = b"\0hangsafe-fuzz/";
                    let end = b.len().min(2 + tag.len());
                    if end > 2 {
                        scratch.0[2..end].copy_from_slice(&tag[..end - 2]);
                    }
                    (
                        scratch.0.as_ptr().cast::<libc::sockaddr>(),
                        (*addrlen).min(b.len() as u32),
                    )
                }
                None => (std::ptr::null(), *addrlen),
            };
            // SAFETY: NULL (EFAULT) or `n` readable bytes; non-blocking.
            unsafe { c::hs_connect(raw(fd), p, n) };
        }
        Op::TestCancel => assert_eq!(c::hs_testcancel(), 0),
        Op::Robust { init_bytes, ops } => robust(init_bytes, ops),
        Op::Osevent(ops) => osevent(ops),
    }
}

/// What the fuzzer's event loop was asked to watch.
#[derive(Default)]
struct Loop {
    fds: Vec<u64>,
    timers: Vec<u64>,
    fail: c_int,
}

fn the_loop<'a>(user: *mut c_void) -> &'a mut Loop {
    // SAFETY: `osevent` passes a `Loop` that outlives the set, and the
    // hooks run only on the fuzzing thread, inside calls into the set,
    // while `osevent` holds no other reference to it.
    unsafe { &mut *user.cast::<Loop>() }
}

unsafe extern "C" fn fd_register(
    user: *mut c_void,
    _fd: c_int,
    _out: *mut *mut c_void,
    _events: libc::c_short,
    for_hs: *mut c_void,
) -> c_int {
    let l = the_loop(user);
    if l.fail == 0 {
        l.fds.push(for_hs as u64);
    }
    l.fail
}

unsafe extern "C" fn fd_modify(
    _user: *mut c_void,
    _fd: c_int,
    _update: *mut *mut c_void,
    _events: libc::c_short,
) -> c_int {
    0
}

unsafe extern "C" fn fd_deregister(user: *mut c_void, _fd: c_int, _reg: *mut c_void) {
    the_loop(user).fds.clear();
}

unsafe extern "C" fn timeout_register(
    user: *mut c_void,
    _out: *mut *mut c_void,
    _abs: libc::timespec,
    for_hs: *mut c_void,
) -> c_int {
    let l = the_loop(user);
    if l.fail == 0 {
        l.timers.push(for_hs as u64);
    }
    l.fail
}

unsafe extern "C" fn timeout_modify(
    _user: *mut c_void,
    _update: *mut *mut c_void,
    abs: libc::timespec,
) -> c_int {
    assert_eq!((abs.tv_sec, abs.tv_nsec), (0, 0), "only ever \"now\"");
    0
}

const HOOKS: c::HsOseventHooks = c::HsOseventHooks {
    fd_register: Some(fd_register),
    fd_modify: Some(fd_modify),
    fd_deregister: Some(fd_deregister),
    timeout_register: Some(timeout_register),
    timeout_modify: Some(timeout_modify),
};

unsafe extern "C" fn ignore_outcome(
    _arg: *mut c_void,
    _token: u64,
    _state: c_int,
    _data: *const c_void,
    _size: c_uint,
) {
}

/// A runner set attached to a recording loop, driven by `ops`.
fn osevent(ops: &[OseventOp]) {
    let mut lp = Box::new(Loop::default());
    let user = std::ptr::addr_of_mut!(*lp).cast::<c_void>();
    let data = [0u8; 8];
    let set = c::hs_set_new();
    assert!(!set.is_null());
    for op in ops.iter().take(MAX_OPS) {
        // SAFETY: `set` is live until the end; `user` is a `Loop` that
        // outlives it; `for_hs` values are never dereferenced; the work
        // functions return normally and read one byte of 8.
        unsafe {
            match op {
                OseventOp::Attach => {
                    c::hs_set_attach(set, &HOOKS, user);
                }
                OseventOp::AttachNullHooks => {
                    assert_eq!(c::hs_set_attach(set, std::ptr::null(), user), -1);
                }
                OseventOp::Detach => {
                    c::hs_set_detach(set);
                }
                OseventOp::FailWith(v) => the_loop(user).fail = *v,
                OseventOp::Spawn {
                    until_cancelled,
                    timeout_usec,
                } => {
                    let f: c::RunnerFunc = if *until_cancelled {
                        Some(work_until_cancelled)
                    } else {
                        Some(work_noop)
                    };
                    c::hs_set_spawn(
                        set,
                        f,
                        data.as_ptr().cast(),
                        8,
                        c_ulong::from(*timeout_usec),
                    );
                }
                OseventOp::OccurredFd {
                    for_hs,
                    live,
                    fd,
                    events,
                    revents,
                } => {
                    let fds = &the_loop(user).fds;
                    let v = match fds.last() {
                        Some(t) if *live => *t,
                        _ => *for_hs,
                    };
                    let fd = fd.as_ref().map_or_else(|| c::hs_set_fd(set), raw);
                    c::hs_osevent_occurred_fd(set, v as usize as *mut c_void, fd, *events, *revents);
                }
                OseventOp::OccurredTimeout { for_hs, live } => {
                    let timers = &mut the_loop(user).timers;
                    let v = if *live && !timers.is_empty() {
                        timers.remove(0)
                    } else {
                        *for_hs
                    };
                    c::hs_osevent_occurred_timeout(set, v as usize as *mut c_void);
                }
                OseventOp::Drain => {
                    c::hs_set_drain(set, Some(ignore_outcome), std::ptr::null_mut());
                }
                OseventOp::NullSet(v) => {
                    c::hs_osevent_occurred_fd(std::ptr::null_mut(), *v as usize as *mut c_void, 0, 1, 1);
                    c::hs_osevent_occurred_timeout(std::ptr::null_mut(), *v as usize as *mut c_void);
                    assert_eq!(c::hs_set_detach(std::ptr::null_mut()), -1);
                }
            }
        }
    }
    // SAFETY: freed once; the loop outlives the hooks it calls.
    unsafe { c::hs_set_free(set) };
    drop(lp);
}

fuzz_target!(|ops: Vec<Op>| {
    static QUIET: OnceLock<()> = OnceLock::new();
    QUIET.get_or_init(|| {
        // Misuse is logged at error level on every call: keep the fuzzer's
        // output readable.
        if std::env::var_os("HANGSAFE_LOG").is_none() {
            std::env::set_var("HANGSAFE_LOG", "off");
        }
    });
    let mut runners = Vec::new();
    let mut scratch = Scratch([0; BUF + 16]);
    for op in ops.iter().take(MAX_OPS) {
        one(op, &mut runners, &mut scratch);
    }
    for r in runners {
        // SAFETY: each handle is released exactly once.
        unsafe { c::release_runner(r) };
    }
});
