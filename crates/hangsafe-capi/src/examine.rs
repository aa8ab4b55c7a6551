//! Examine for C (`hs_publish`, `hs_runner_examine`, `hs_set_examine` of
//! `hangsafe.h`): C work publishes up to [`HS_PUBLISH_MAX`] bytes, any
//! thread takes a consistent copy, on top of [`hangsafe_core::examine`]
//! (utrace's examine design: prepare, copy, finish; gone, never stale).
//!
//! C work functions take only their data pointer, so the runner's
//! [`Ctx`] reaches `hs_publish` through a thread-local pointer that is set
//! for exactly the duration of the work function's call
//! ([`with_publisher`]). Off a runner's thread (or outside its work
//! function) the pointer is null and `hs_publish` answers `EPERM`.
//!
//! What is published is a [`Published`]: the bytes and their count, one
//! `Pod` value, so a snapshot is always the bytes of one single publish.

use crate::barrier;
use crate::errno;
use hangsafe_core::examine::{Error, Pod};
use hangsafe_core::runner::Ctx;
use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_void};
use std::ptr;

/// `HS_PUBLISH_MAX`: the most bytes one `hs_publish` carries.
pub const HS_PUBLISH_MAX: usize = 48;

/// One publish: its length and bytes (the rest zero).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Published {
    len: u64,
    bytes: [u8; HS_PUBLISH_MAX],
}

const _: () = assert!(std::mem::size_of::<Published>() == 8 + HS_PUBLISH_MAX);

// SAFETY: `#[repr(C)]` of a `u64` and a byte array whose length is a
// multiple of 8: no padding (checked just above), every bit pattern of
// both fields is valid, and it holds no pointer.
unsafe impl Pod for Published {}

impl Published {
    /// The published bytes (a corrupt length is clamped, never trusted).
    fn as_slice(&self) -> &[u8] {
        let n = usize::try_from(self.len).map_or(HS_PUBLISH_MAX, |n| n.min(HS_PUBLISH_MAX));
        &self.bytes[..n]
    }
}

thread_local! {
    /// The `Ctx` of the C work function running on this thread, erased to
    /// a pointer; null when none runs.
    static PUBLISHER: Cell<*const ()> = const { Cell::new(ptr::null()) };
}

/// Runs `f` (a C work function's call) with `ctx` as this thread's
/// publisher, restoring the previous one afterwards, also on unwind.
pub(crate) fn with_publisher<R>(ctx: &Ctx<'_>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const ());
    impl Drop for Restore {
        fn drop(&mut self) {
            PUBLISHER.with(|p| p.set(self.0));
        }
    }
    let erased = ptr::from_ref(ctx).cast::<()>();
    let _restore = Restore(PUBLISHER.with(|p| p.replace(erased)));
    f()
}

/// Publishes `bytes` through this thread's publisher; `false` if there is
/// none (not inside C work on a runner's thread).
fn publish(bytes: &[u8]) -> bool {
    let p = PUBLISHER.with(Cell::get);
    if p.is_null() {
        return false;
    }
    let mut state = Published {
        len: bytes.len() as u64,
        bytes: [0; HS_PUBLISH_MAX],
    };
    state.bytes[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `p` is non-null, so it was set by `with_publisher` on this
    // thread from a `&Ctx` that stays borrowed until that call returns,
    // and we are inside it (the pointer is reset before it returns, also
    // on unwind). `Ctx` is only used through `&self` here, on the thread
    // that owns it, and no reference derived from it outlives this call,
    // so the erased lifetime is never relied upon.
    let ctx = unsafe { &*p.cast::<Ctx<'static>>() };
    ctx.publish(&state);
    true
}

/// Publishes `size` bytes at `data` for examination: from inside C work
/// only. Returns 0, or -1 with `errno` = `EINVAL` (null `data`, `size` 0
/// or above [`HS_PUBLISH_MAX`]) or `EPERM` (not on a runner's thread,
/// inside its work function). Never blocks, allocates nothing.
///
/// # Safety
///
/// `data` must be null or readable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn hs_publish(data: *const c_void, size: c_uint) -> c_int {
    barrier::run("hs_publish", -1, || {
        let len = size as usize;
        if data.is_null() || len == 0 || len > HS_PUBLISH_MAX {
            log::error!(
                "hs_publish: data {data:?}, size {size}: needs data and 1..={HS_PUBLISH_MAX} bytes"
            );
            errno::set(libc::EINVAL);
            return -1;
        }
        // SAFETY: `data` is non-null and readable for `size` bytes
        // (caller's contract); the bytes are copied before this returns.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        if publish(bytes) {
            0
        } else {
            log::error!("hs_publish: not called from a runner's work function");
            errno::set(libc::EPERM);
            -1
        }
    })
}

/// Checks an examine call's output buffer: the `errno` value if it is
/// unusable (null, or size 0).
pub(crate) fn check_out(what: &str, out: *mut c_void, size: c_uint) -> Result<(), c_int> {
    if out.is_null() || size == 0 {
        log::error!("{what}: out {out:?}, size {size}: needs a buffer of at least 1 byte");
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// Copies a snapshot to the caller: its first `size` bytes, the rest of
/// `out` (if `size` is larger than what was published) zero-filled.
///
/// # Safety
///
/// `out` must be writable for `size` bytes.
pub(crate) unsafe fn copy_out(snapshot: &Published, out: *mut c_void, size: c_uint) {
    let bytes = snapshot.as_slice();
    let size = size as usize;
    let n = size.min(bytes.len());
    let out = out.cast::<u8>();
    // SAFETY: `out` is writable for `size >= n` bytes (caller's contract)
    // and cannot overlap the snapshot, a local copy.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), out, n) };
    // SAFETY: the remaining `size - n` bytes of `out` are writable too.
    unsafe { ptr::write_bytes(out.add(n), 0, size - n) };
}

/// Takes a snapshot with `examine` (a runner's or an examiner's) and
/// reports it the C way: 0 with `out` filled, or the `errno` value.
///
/// # Safety
///
/// `out` must be writable for `size` bytes.
pub(crate) unsafe fn snapshot_into(
    examine: impl FnOnce() -> Result<Published, Error>,
    out: *mut c_void,
    size: c_uint,
) -> Result<(), c_int> {
    match examine() {
        Ok(p) => {
            // SAFETY: forwarded from the caller.
            unsafe { copy_out(&p, out, size) };
            Ok(())
        }
        Err(e) => Err(errno_of(e)),
    }
}

/// The `errno` value of an examination error (utrace's codes).
pub(crate) fn errno_of(e: Error) -> c_int {
    match e {
        Error::Gone => libc::ESRCH,
        Error::Again => libc::EAGAIN,
        Error::Unpublished => libc::ENODATA,
        // Only `hs_publish` publishes for C work, always a `Published`;
        // another type or a foreign ticket would be an internal error.
        other => {
            log::error!("hangsafe: internal error: examine from C failed: {other}");
            libc::EIO
        }
    }
}

/// The snapshot function for a runner or examiner: `|f| x.examine(f)`.
pub(crate) fn copy_of(p: &Published) -> Published {
    *p
}

/// Takes a consistent copy of what the work of `r` (from `get_runner`)
/// last published: its first `size` bytes (zero-filled past the published
/// length). Returns 0, or -1 with `errno`: `EINVAL` (null `r` or `out`,
/// `size` 0), `EAGAIN` (the work kept publishing; retry), `ESRCH` (the work
/// has ended), `ENODATA` (nothing published yet).
///
/// # Safety
///
/// `r` must be null or a live handle from `get_runner`; `out` must be null
/// or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn hs_runner_examine(
    r: *mut crate::runner::RunnerContext,
    out: *mut c_void,
    size: c_uint,
) -> c_int {
    barrier::run("hs_runner_examine", -1, || {
        if r.is_null() {
            log::error!("hs_runner_examine: r is NULL");
            errno::set(libc::EINVAL);
            return -1;
        }
        if let Err(code) = check_out("hs_runner_examine", out, size) {
            errno::set(code);
            return -1;
        }
        // SAFETY: `r` is non-null and a live handle (caller's contract);
        // only shared access is taken, as `check_runner` does.
        let ctx = unsafe { &*r };
        // SAFETY: `out` is writable for `size` bytes (caller's contract).
        match unsafe { snapshot_into(|| ctx.runner.examine(copy_of), out, size) } {
            Ok(()) => 0,
            Err(code) => {
                errno::set(code);
                -1
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    #[test]
    fn publish_off_a_runner_is_eperm_and_bad_sizes_einval() {
        let b = [1u8; 64];
        // SAFETY: `b` is readable for 64 bytes.
        unsafe {
            assert_eq!(hs_publish(b.as_ptr().cast(), 4), -1);
            assert_eq!(errno(), Some(libc::EPERM));
            assert_eq!(hs_publish(b.as_ptr().cast(), 0), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(hs_publish(b.as_ptr().cast(), 49), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(hs_publish(ptr::null(), 4), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn copy_out_zero_fills_and_truncates() {
        let mut p = Published {
            len: 3,
            bytes: [0; HS_PUBLISH_MAX],
        };
        p.bytes[..3].copy_from_slice(&[7, 8, 9]);
        let mut out = [0xffu8; 6];
        // SAFETY: `out` is writable for 6 bytes.
        unsafe { copy_out(&p, out.as_mut_ptr().cast(), 6) };
        assert_eq!(out, [7, 8, 9, 0, 0, 0]);
        let mut two = [0u8; 2];
        // SAFETY: `two` is writable for 2 bytes.
        unsafe { copy_out(&p, two.as_mut_ptr().cast(), 2) };
        assert_eq!(two, [7, 8]);
        p.len = u64::MAX;
        assert_eq!(p.as_slice().len(), HS_PUBLISH_MAX);
    }
}
