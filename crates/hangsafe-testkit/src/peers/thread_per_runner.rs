//! A C-style thread-per-runner baseline: the design of multipath-tools'
//! original `libmpathutil` runner, with its start race fixed, written
//! against libc the way the C code is, so that benchmarks can compare a
//! pooled runner against "one fresh detached pthread per probe". The
//! criterion benchmark `runner` and `hangsafe bench` both time
//! [`round_trip`].
//!
//! What is kept from the C design, because it is what costs time:
//!
//! * one `malloc` per runner: a header (reference count, status, function,
//!   deadline, buffer size) followed by a copy of the caller's data buffer;
//! * an atomic reference count of 2 (caller + thread), set *before*
//!   `pthread_create` so that neither side can free the context under the
//!   other (this is the fix of the start race the multipath-tools runner review found, which had the thread
//!   take its own reference);
//! * an atomic status word, `RUNNING -> DONE` by compare-and-swap on the
//!   thread, `RUNNING -> CANCELLED` by compare-and-swap on the caller, with
//!   the values of the C `enum runner_status`;
//! * a new pthread per runner, created `PTHREAD_CREATE_DETACHED` with an
//!   explicit 64 KiB stack (`pthread_attr_setstacksize`); nobody joins it;
//! * a deadline taken from `CLOCK_MONOTONIC` at creation and checked lazily
//!   by [`Runner::check`], as `check_runner()` does.
//!
//! What differs, and why:
//!
//! * The C runner has no blocking wait (multipathd polls `check_runner`).
//!   For a round-trip benchmark the caller must block, so [`Runner::wait`]
//!   waits the way `hangsafe::runner::Runner::wait` does: spin on the status
//!   word for [`WAIT_SPIN`] (the same 20 µs hangsafe uses), then sleep in
//!   `FUTEX_WAIT` on the status word itself. std's `thread::park`, which
//!   hangsafe parks with, is a futex on Linux too, so both sides pay the same
//!   kind of sleep/wake-up. The thread issues `FUTEX_WAKE` only if the caller
//!   announced itself (a Dekker handshake through two `SeqCst` words), so a
//!   caller that is still spinning costs the thread no system call, just as a
//!   spinning hangsafe caller has no waiter registered.
//! * Cancelling only flips the status word; the original patch's `pthread_cancel` is
//!   not reproduced, because forcing an unwind through Rust frames is
//!   undefined behaviour. A benchmark of completed round trips never cancels,
//!   so this does not change what is measured.
//! * A panic in the work function aborts the process (it cannot unwind out of
//!   an `extern "C"` thread entry), where the C code has no notion of one.

use std::ffi::c_void;
use std::io;
use std::mem::{align_of, size_of};
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Stack size of every runner thread.
pub const STACK_SIZE: usize = 64 * 1024;

/// How long [`Runner::wait`] spins before it sleeps on the futex; the same
/// value as hangsafe's `handle::WAIT_SPIN`.
pub const WAIT_SPIN: Duration = Duration::from_micros(20);

/// The C `enum runner_status` values.
pub const RUNNING: u32 = 1;
/// The work returned before any cancel; the data buffer holds its output.
pub const DONE: u32 = 2;
/// The caller cancelled (or the deadline passed) while the work ran.
pub const CANCELLED: u32 = 3;
/// The work returned after a cancel; its output is discarded.
pub const DEAD: u32 = 4;

/// The work: reads its input from, and writes its output to, the runner's
/// private copy of the data buffer.
pub type RunnerFn = fn(data: &mut [u8]);

/// The heap context shared by the caller and the thread. The data buffer of
/// `size` bytes follows the header in the same allocation.
#[repr(C)]
struct Context {
    refcount: AtomicU32,
    status: AtomicU32,
    /// Non-zero once the caller may be sleeping in `FUTEX_WAIT` on `status`.
    waiters: AtomicU32,
    func: RunnerFn,
    deadline: libc::timespec,
    size: usize,
}

/// Offset of the data buffer from the start of the allocation. `malloc`
/// returns memory aligned for any fundamental type, and the header's size
/// is a multiple of its alignment, so the buffer is 8-byte aligned.
const DATA_OFFSET: usize = size_of::<Context>();
const _: () = assert!(DATA_OFFSET.is_multiple_of(align_of::<Context>()));

/// The caller's reference to a runner. Dropping it releases the runner:
/// cancels it if it still runs, then drops the caller's reference.
pub struct Runner {
    ctx: NonNull<Context>,
    /// Kept for parity with the C handle, which stores the thread id for
    /// `pthread_cancel`; unused here (see the module docs).
    _thread: libc::pthread_t,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

// SAFETY: the handle only touches the context through atomics, and the data
// buffer only after observing DONE with acquire ordering, after which the
// thread never touches it again. Moving the handle to another thread is
// therefore as safe as using it on this one.
unsafe impl Send for Runner {}

fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

fn add_timeout(mut ts: libc::timespec, d: Duration) -> libc::timespec {
    ts.tv_sec = ts
        .tv_sec
        .saturating_add(libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX));
    ts.tv_nsec += libc::c_long::from(d.subsec_nanos());
    if ts.tv_nsec >= 1_000_000_000 {
        ts.tv_nsec -= 1_000_000_000;
        ts.tv_sec = ts.tv_sec.saturating_add(1);
    }
    ts
}

/// Pointer to the data buffer of the context at `ctx`.
fn data_ptr(ctx: NonNull<Context>) -> *mut u8 {
    // SAFETY: the allocation is DATA_OFFSET + size bytes long, so the
    // offset stays inside it (or one past its end when size is 0).
    unsafe { ctx.as_ptr().cast::<u8>().add(DATA_OFFSET) }
}

/// Drops one reference; the last one frees the allocation.
///
/// # Safety
///
/// The caller owns one of the context's references and never uses `ctx`
/// again afterwards.
unsafe fn release(ctx: NonNull<Context>) {
    // SAFETY: our reference keeps the context allocated until this point.
    let prev = unsafe { ctx.as_ref() }
        .refcount
        .fetch_sub(1, Ordering::Release);
    debug_assert!(prev >= 1, "runner context over-released");
    if prev == 1 {
        // Pairs with the other side's release decrement: everything it did
        // to the context happens before the free.
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero, so no one else holds a reference;
        // the header has no destructor and was allocated with malloc.
        unsafe { libc::free(ctx.as_ptr().cast::<c_void>()) };
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, 4-byte aligned u32 for the whole call (the
    // caller holds a reference to the context); FUTEX_WAIT only reads it.
    // Every outcome (woken, EAGAIN because the value changed, EINTR) is
    // handled by the caller re-reading the word, so the result is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32 (the thread still holds its
    // reference to the context); FUTEX_WAKE does not access its memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// The thread entry: run the work, publish DONE (or DEAD after a cancel),
/// wake a sleeping caller, drop the thread's reference.
extern "C" fn runner_thread(arg: *mut c_void) -> *mut c_void {
    let ctx = NonNull::new(arg.cast::<Context>()).expect("runner thread without context");
    // SAFETY: this thread owns one of the two references taken before
    // pthread_create, so the header stays allocated until `release` below.
    // Only a shared reference to the header is formed; the data buffer
    // lies outside it.
    let c = unsafe { ctx.as_ref() };
    // SAFETY: the buffer is `size` initialised bytes inside the allocation,
    // and this thread is its only user until the status leaves RUNNING: the
    // caller reads it only after observing DONE.
    let data = unsafe { std::slice::from_raw_parts_mut(data_ptr(ctx), c.size) };
    (c.func)(data);
    if let Err(seen) = c
        .status
        .compare_exchange(RUNNING, DONE, Ordering::SeqCst, Ordering::SeqCst)
    {
        debug_assert_eq!(seen, CANCELLED);
        // The cancel won; the output is not wanted.
        let _ = c
            .status
            .compare_exchange(CANCELLED, DEAD, Ordering::SeqCst, Ordering::SeqCst);
    }
    // SeqCst CAS above, SeqCst load here; the caller does SeqCst store of
    // `waiters` then SeqCst load of `status`: one of us sees the other.
    if c.waiters.load(Ordering::SeqCst) != 0 {
        futex_wake(&c.status);
    }
    // SAFETY: the thread's reference is dropped exactly once, and neither
    // `c` nor `data` is used afterwards.
    unsafe { release(ctx) };
    ptr::null_mut()
}

/// Starts `func` on a new detached thread with a private copy of `data`,
/// and a deadline `timeout` from now (checked lazily by [`Runner::check`]).
pub fn get_runner(func: RunnerFn, data: &[u8], timeout: Duration) -> io::Result<Runner> {
    let deadline = add_timeout(monotonic_now(), timeout);
    // SAFETY: plain allocation; the result is checked for null below.
    let raw = unsafe { libc::malloc(DATA_OFFSET + data.len()) };
    let ctx = NonNull::new(raw.cast::<Context>())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: `ctx` points to fresh memory large enough and suitably
    // aligned for a Context followed by `data.len()` bytes, and no other
    // thread knows about it yet. Both references (caller + thread) are
    // taken here, before the thread can exist.
    unsafe {
        ctx.as_ptr().write(Context {
            refcount: AtomicU32::new(2),
            status: AtomicU32::new(RUNNING),
            waiters: AtomicU32::new(0),
            func,
            deadline,
            size: data.len(),
        });
        ptr::copy_nonoverlapping(data.as_ptr(), data_ptr(ctx), data.len());
    }

    // SAFETY: all-zero bytes are a valid placeholder for these plain C
    // structs; pthread_attr_init initialises the attribute object properly.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `attr` is a valid attribute object for init/set/destroy, and
    // `thread` a writable pthread_t. The context pointer handed to the new
    // thread carries the thread's reference, taken above.
    let rc = unsafe {
        let mut rc = libc::pthread_attr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            if rc == 0 {
                rc = libc::pthread_attr_setstacksize(&mut attr, STACK_SIZE);
            }
            if rc == 0 {
                rc = libc::pthread_create(
                    &mut thread,
                    &attr,
                    runner_thread,
                    ctx.as_ptr().cast::<c_void>(),
                );
            }
            libc::pthread_attr_destroy(&mut attr);
        }
        rc
    };
    if rc != 0 {
        // SAFETY: no thread was created, so both references are ours and
        // nobody else has seen the context.
        unsafe {
            release(ctx);
            release(ctx);
        }
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Runner {
        ctx,
        _thread: thread,
    })
}

impl Runner {
    fn ctx(&self) -> &Context {
        // SAFETY: the handle owns a reference, so the context is allocated
        // for as long as `self` is borrowed.
        unsafe { self.ctx.as_ref() }
    }

    /// The status, without side effects.
    pub fn status(&self) -> u32 {
        self.ctx().status.load(Ordering::Acquire)
    }

    /// The status after the lazy deadline check of `check_runner()`: a
    /// runner still RUNNING past its deadline is cancelled here.
    pub fn check(&self) -> u32 {
        let c = self.ctx();
        let st = c.status.load(Ordering::Acquire);
        if st != RUNNING {
            return st;
        }
        let now = monotonic_now();
        if (now.tv_sec, now.tv_nsec) >= (c.deadline.tv_sec, c.deadline.tv_nsec) {
            return self.cancel();
        }
        RUNNING
    }

    /// `RUNNING -> CANCELLED`; returns the resulting status.
    pub fn cancel(&self) -> u32 {
        match self.ctx().status.compare_exchange(
            RUNNING,
            CANCELLED,
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => CANCELLED,
            Err(seen) => seen,
        }
    }

    /// Blocks until the status leaves RUNNING and returns it: spins for
    /// [`WAIT_SPIN`], then sleeps on the status word (see the module docs).
    pub fn wait(&self) -> u32 {
        let c = self.ctx();
        let start = Instant::now();
        loop {
            let st = c.status.load(Ordering::Acquire);
            if st != RUNNING {
                return st;
            }
            if start.elapsed() >= WAIT_SPIN {
                break;
            }
            std::hint::spin_loop();
        }
        c.waiters.store(1, Ordering::SeqCst);
        loop {
            let st = c.status.load(Ordering::SeqCst);
            if st != RUNNING {
                return st;
            }
            futex_wait(&c.status, RUNNING);
        }
    }

    /// The work's output, if the runner is DONE.
    pub fn result(&self) -> Option<&[u8]> {
        if self.status() != DONE {
            return None;
        }
        // SAFETY: DONE is final and was set by the thread's CAS after its
        // last write to the buffer; the acquire load above synchronises with
        // it, and the thread never touches the buffer again. The slice lives
        // no longer than `self`, which keeps the allocation alive.
        Some(unsafe { std::slice::from_raw_parts(data_ptr(self.ctx), self.ctx().size) })
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // release_runner(): cancel if still running, drop our reference.
        self.cancel();
        // SAFETY: the handle's reference is dropped exactly once, here.
        unsafe { release(self.ctx) };
    }
}

/// Far enough never to fire during a round trip, so that the deadline only
/// costs its bookkeeping.
const ROUND_TRIP_DEADLINE: Duration = Duration::from_secs(10);

/// The round trip's work: read the input, write the result (`1` more than
/// the input) over it.
fn round_trip_work(data: &mut [u8]) {
    if let Some(b) = data.get_mut(..4) {
        let input = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let out = std::hint::black_box(1u32).wrapping_add(input);
        b.copy_from_slice(&out.to_ne_bytes());
    }
}

/// One round trip of trivial work: a runner for `round_trip_work` on
/// input 0, waited for; returns the work's result (1).
pub fn round_trip() -> io::Result<u32> {
    let r = get_runner(round_trip_work, &0u32.to_ne_bytes(), ROUND_TRIP_DEADLINE)?;
    if r.wait() != DONE {
        return Err(io::Error::other("thread-per-runner: not done after wait"));
    }
    match r.result() {
        Some(&[a, b, c, d, ..]) => Ok(u32::from_ne_bytes([a, b, c, d])),
        _ => Err(io::Error::other("thread-per-runner: no result")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compute_the_result() {
        for _ in 0..50 {
            assert_eq!(round_trip().unwrap(), 1);
        }
    }
}
