//! Platform code: everything that depends on the CPU architecture lives
//! behind this module, one file per architecture.
//!
//! This module is a leaf: it imports nothing from the rest of the crate.
//! The cancellation machinery (`cancel`) builds on it, not the other way
//! round: the part of a thread's cancel word that the assembly reads and
//! writes, [`StubWord`], is defined here, next to the compile-time checks
//! that tie the assembly's offsets to its Rust layout.
//!
//! # The platform contract
//!
//! Each architecture module (`x86_64.rs`, `aarch64.rs`) provides a type
//! `Arch` implementing [`Platform`], and defines, in `global_asm!`:
//!
//! * the **cancellable syscall stub** (`syscall_cp`), with its own calling
//!   convention used only by [`Platform::cancellable_syscall`], which calls
//!   it from inline assembly with the syscall's registers already loaded
//!   and the [`StubWord`]'s address in a scratch register;
//! * five labels inside it, each made global and hidden by `hs_label!`:
//!   * `cp_begin`, right after the stub incremented
//!     [`StubWord::in_call`]: from here on no stack or callee-saved
//!     register changes until the syscall instruction;
//!   * `cp_end`, right after the syscall instruction: `[begin, end)` is
//!     exactly "load the cancel bit, branch to `cp_cancel` if set, trap
//!     into the kernel", so a signal handler that finds the PC in it and a
//!     cancel pending may move the PC to `cp_cancel` and the syscall has
//!     had no effect (a restarted syscall is rewound to its syscall
//!     instruction, inside the range);
//!   * `cp_cancel`, which undoes the prologue and returns `-ECANCELED`;
//!   * `cp_end_done` and `cp_cancel_done`, right after the decrement of
//!     `in_call` that follows `cp_end` and `cp_cancel`: the call is counted
//!     in `in_call` exactly while the PC is in `[begin, end_done)` or
//!     `[cancel, cancel_done)` ([`StubRange::counts`]).
//!
//! The stub tests bit [`CANCEL_BIT`] of [`StubWord::word`] (as the byte at
//! [`CANCEL_BYTE`], bit [`CANCEL_BYTE_BIT`]: the target is little-endian)
//! and counts in the `u32` at [`IN_CALL_OFFSET`]; both offsets reach the
//! assembly as `const` operands computed with `offset_of!` below, and the
//! layout is asserted at compile time. Only the owning thread (and its
//! signal handlers, which nest and restore the count) touches `in_call`.
//!
//! Symbols carry the crate's major and minor version
//! (`hangsafe_<major>_<minor>_…`), so two versions of the crate can be
//! linked into one program, and are hidden from shared-object export
//! tables.

use std::ffi::c_long;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Builds a versioned, crate-specific symbol name.
macro_rules! hs_symbol {
    ($name:literal) => {
        concat!(
            "hangsafe_",
            env!("CARGO_PKG_VERSION_MAJOR"),
            "_",
            env!("CARGO_PKG_VERSION_MINOR"),
            "_",
            $name
        )
    };
}

/// Defines a stub label: a global, hidden (not exported from a shared
/// object) symbol at the current position, named by `hs_symbol!`.
macro_rules! hs_label {
    ($name:literal) => {
        concat!(
            ".globl ",
            hs_symbol!($name),
            "\n.hidden ",
            hs_symbol!($name),
            "\n",
            hs_symbol!($name),
            ":"
        )
    };
}

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as arch;

/// The part of a thread's cancel word that the stub reads and writes, in
/// the layout the assembly addresses.
///
/// `W` is the word's atomic type: `AtomicU64` for the word the stub sees
/// (the only instantiation [`Platform::cancellable_syscall`] accepts, and
/// the one whose layout is asserted); a model checker's double in a model,
/// which never reaches the stub.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct StubWord<W = AtomicU64> {
    /// The cancel word; the stub tests its bit [`CANCEL_BIT`]. The rest of
    /// it is the owner's business (`cancel::word`).
    pub(crate) word: W,
    /// How many cancellable calls of the owning thread are in progress
    /// (more than one only when a signal handler makes one while another
    /// is interrupted). Written only by the stub, on the owning thread;
    /// read by that thread's signal handler.
    pub(crate) in_call: AtomicU32,
}

impl<W> StubWord<W> {
    /// A stub word around `word`, in no call.
    pub(crate) fn new(word: W) -> Self {
        StubWord {
            word,
            in_call: AtomicU32::new(0),
        }
    }
}

/// The bit of [`StubWord::word`] that means "a cancel is pending for this
/// thread's job": the stub skips the syscall when it is set.
pub(crate) const CANCEL_BIT: u32 = 0;
/// The byte offset of [`StubWord::word`].
pub(crate) const WORD_OFFSET: usize = offset_of!(StubWord, word);
/// The byte offset of [`StubWord::in_call`].
pub(crate) const IN_CALL_OFFSET: usize = offset_of!(StubWord, in_call);
/// The byte of the stub word that holds [`CANCEL_BIT`] (little-endian).
pub(crate) const CANCEL_BYTE: usize = WORD_OFFSET + CANCEL_BIT as usize / 8;
/// The bit within [`CANCEL_BYTE`] that is [`CANCEL_BIT`].
pub(crate) const CANCEL_BYTE_BIT: u32 = CANCEL_BIT % 8;

// The layout the assembly relies on, checked at compile time. The offsets
// reach the assembly as `const` operands; the pinned values are the ones
// the architecture modules' documentation and a disassembly show.
const _: () = {
    // The stub tests the cancel bit through one byte: little-endian only.
    assert!(cfg!(target_endian = "little"));
    assert!(CANCEL_BIT < 64);
    assert!(size_of::<AtomicU64>() == 8);
    assert!(WORD_OFFSET == 0);
    assert!(CANCEL_BYTE == 0 && CANCEL_BYTE_BIT == 0);
    // `inc dword ptr` (x86_64) and `ldr w` / `str w` (aarch64, whose
    // immediate offset must be a multiple of 4) on a `u32`.
    assert!(size_of::<AtomicU32>() == 4);
    assert!(IN_CALL_OFFSET.is_multiple_of(4));
    assert!(IN_CALL_OFFSET == 8);
    // The count lies after the word, not over it.
    assert!(IN_CALL_OFFSET >= WORD_OFFSET + size_of::<AtomicU64>());
    assert!(size_of::<StubWord>() == 16);
};

/// What each architecture module provides (see the module docs for the
/// stub's labels, which it defines alongside).
pub(crate) trait Platform {
    /// Calls the stub: syscall `nr` with the arguments `a`, unless
    /// `word`'s cancel bit is set when the stub tests it (then
    /// `-ECANCELED`, no syscall). Returns what the kernel returned
    /// (`-errno` on error).
    ///
    /// # Safety
    ///
    /// `word` must be the calling thread's own stub word (only that thread
    /// and its signal handlers may use its `in_call`), and the syscall
    /// must be memory-safe with these arguments.
    unsafe fn cancellable_syscall(word: &StubWord, nr: c_long, a: [c_long; 6]) -> c_long;

    /// The interrupted program counter.
    ///
    /// # Safety
    ///
    /// `uc` must be the `ucontext_t` the kernel passed to an `SA_SIGINFO`
    /// handler that is still running.
    unsafe fn context_pc(uc: *const libc::ucontext_t) -> usize;

    /// Sets the program counter the thread resumes at when the handler
    /// returns.
    ///
    /// # Safety
    ///
    /// As for [`context_pc`](Platform::context_pc); `pc` must be a valid
    /// resume point for the interrupted register state.
    unsafe fn set_context_pc(uc: *mut libc::ucontext_t, pc: usize);
}

/// [`Platform::cancellable_syscall`] of this architecture.
///
/// # Safety
///
/// As for [`Platform::cancellable_syscall`].
#[inline(always)]
pub(crate) unsafe fn cancellable_syscall(word: &StubWord, nr: c_long, a: [c_long; 6]) -> c_long {
    // SAFETY: the caller's contract is the trait method's.
    unsafe { <arch::Arch as Platform>::cancellable_syscall(word, nr, a) }
}

/// [`Platform::context_pc`] of this architecture.
///
/// # Safety
///
/// As for [`Platform::context_pc`].
#[inline]
pub(crate) unsafe fn context_pc(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the caller's contract is the trait method's.
    unsafe { <arch::Arch as Platform>::context_pc(uc) }
}

/// [`Platform::set_context_pc`] of this architecture.
///
/// # Safety
///
/// As for [`Platform::set_context_pc`].
#[inline]
pub(crate) unsafe fn set_context_pc(uc: *mut libc::ucontext_t, pc: usize) {
    // SAFETY: the caller's contract is the trait method's.
    unsafe { <arch::Arch as Platform>::set_context_pc(uc, pc) }
}

extern "C" {
    #[link_name = hs_symbol!("cp_begin")]
    static CP_BEGIN: [u8; 0];
    #[link_name = hs_symbol!("cp_end")]
    static CP_END: [u8; 0];
    #[link_name = hs_symbol!("cp_cancel")]
    static CP_CANCEL: [u8; 0];
    #[link_name = hs_symbol!("cp_end_done")]
    static CP_END_DONE: [u8; 0];
    #[link_name = hs_symbol!("cp_cancel_done")]
    static CP_CANCEL_DONE: [u8; 0];
}

/// The stub's labels: `[begin, end)` is the range in which a cancel may
/// still prevent the syscall; `cancel` is where a cancel redirects to;
/// `[begin, end_done)` and `[cancel, cancel_done)` are where the call is
/// counted in the thread's in-call depth.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StubRange {
    pub(crate) begin: usize,
    pub(crate) end: usize,
    pub(crate) end_done: usize,
    pub(crate) cancel: usize,
    pub(crate) cancel_done: usize,
}

impl StubRange {
    /// Whether a PC is inside a call's counted region, i.e. whether the
    /// innermost call the thread is in is included in its in-call depth.
    #[inline]
    pub(crate) fn counts(&self, pc: usize) -> bool {
        (pc >= self.begin && pc < self.end_done) || (pc >= self.cancel && pc < self.cancel_done)
    }
}

/// The stub's label addresses.
#[inline]
pub(crate) fn stub_range() -> StubRange {
    // SAFETY: taking the address of a zero-sized extern static never reads
    // it; the labels are defined by the stub's global_asm.
    unsafe {
        StubRange {
            begin: CP_BEGIN.as_ptr() as usize,
            end: CP_END.as_ptr() as usize,
            end_done: CP_END_DONE.as_ptr() as usize,
            cancel: CP_CANCEL.as_ptr() as usize,
            cancel_done: CP_CANCEL_DONE.as_ptr() as usize,
        }
    }
}
