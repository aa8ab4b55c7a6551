//! The runner's private copy of the caller's data.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of the copy: enough for any C object type on the supported
/// platforms (`alignof(max_align_t)` is 16 on `x86_64` and `aarch64` Linux).
pub(crate) const ALIGN: usize = 16;

/// A heap buffer of a fixed size, aligned to [`ALIGN`], uniquely owned.
///
/// It is created on the caller's thread, moved into the work closure, handed
/// to the C function on the pool thread, and then either moved back as the
/// runner's result or dropped wherever the runner ends. At every moment
/// exactly one owner can reach the memory.
pub(crate) struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Buffer` owns its allocation exclusively (it is not Clone and
// hands out no pointer that outlives a borrow of it, except to the C work
// function while the pool thread holds the Buffer by value). Moving it to
// another thread moves that exclusive ownership with it; the global
// allocator may free memory on a thread other than the one that allocated
// it.
unsafe impl Send for Buffer {}
// SAFETY: `&Buffer` only reads: `as_slice` borrows the bytes immutably, and
// every write goes through `&mut self` (`as_mut_ptr`) or by value (`Drop`),
// which cannot coexist with a shared borrow. Several threads reading the
// same bytes through `&Buffer` is therefore sound, as for `&[u8]`. This is
// what lets `check_runner` be called on one handle from several C threads
// (it reads the result through `Runner::result`, which needs `T: Sync` to
// be shared; H1 in `docs/races.md`).
unsafe impl Sync for Buffer {}

// What `check_runner`'s shared access relies on, checked at compile time.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<hangsafe_core::runner::Runner<Buffer>>();
};

impl Buffer {
    /// Copies `len` bytes from `src` into a new aligned buffer. `None` if
    /// `len` is zero or the memory cannot be allocated.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `len` bytes.
    pub(crate) unsafe fn copy_from(src: *const u8, len: usize) -> Option<Buffer> {
        if len == 0 {
            return None;
        }
        let layout = Layout::from_size_align(len, ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw)?;
        // SAFETY: `src` is readable for `len` bytes (caller's contract) and
        // `ptr` is a fresh allocation of `len` bytes, so the two cannot
        // overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, ptr.as_ptr(), len) };
        Some(Buffer { ptr, len })
    }

    /// The pointer handed to the C work function. Valid for reads and
    /// writes of `len()` bytes while `self` is alive and not otherwise
    /// borrowed.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The contents.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised bytes (filled by
        // `copy_from`, then only written through `as_mut_ptr`), owned by
        // `self`, and no `&mut self` can exist while this borrow does.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // The layout was valid when the buffer was created, so it still is.
        if let Ok(layout) = Layout::from_size_align(self.len, ALIGN) {
            // SAFETY: `ptr` was returned by `alloc::alloc` with exactly this
            // layout and has not been freed: `Buffer` is its only owner and
            // this is its destructor.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_aligns() {
        let src = [1u8, 2, 3, 4, 5];
        // SAFETY: `src` is readable for its length.
        let mut b = unsafe { Buffer::copy_from(src.as_ptr(), src.len()) }.unwrap();
        assert_eq!(b.as_mut_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice(), &src);
    }

    #[test]
    fn zero_length_is_refused() {
        let src = [0u8; 1];
        // SAFETY: zero bytes are read.
        assert!(unsafe { Buffer::copy_from(src.as_ptr(), 0) }.is_none());
    }
}
