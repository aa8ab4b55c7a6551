//! aarch64: the cancellable syscall stub and `ucontext_t` access.
//!
//! The stub has its own calling convention, used only by
//! [`cancellable_syscall`] below, which calls it (`bl`) from inline
//! assembly with the syscall's registers already loaded: `nr` in x8, the
//! arguments in x0..x5 (the kernel's convention), the cancel word's
//! address in x9. `svc` preserves every register but x0; the stub uses x10
//! as scratch, and neither sp nor any callee-saved register changes, so
//! `cancel` can simply `ret` (to x30, set by the caller's `bl`).
//!
//! Right before `begin` the stub increments the thread's in-call depth
//! (the `u32` at `word + 8`); the sequences at `end` and `cancel` decrement
//! it, and the labels `end_done`/`cancel_done` follow the decrements, so
//! the PC tells the signal handler whether the innermost call is counted.
//! The load/add/store is not one instruction, but the count changes only
//! at its store, which lies before `begin` (increment) or before the
//! `_done` label (decrement), and only this thread (and its own signal
//! handlers, which nest and restore the value) touch it.
//!
//! When the kernel restarts an interrupted syscall it rewinds pc by 4 to
//! the `svc` (inside the range) and restores x0; a completed call or one
//! returning `-EINTR` resumes at `end`: outside.

use crate::cancel::word::CancelWord;
use std::ffi::c_long;

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".globl ", hs_symbol!("syscall_cp")),
    concat!(".hidden ", hs_symbol!("syscall_cp")),
    concat!(".type ", hs_symbol!("syscall_cp"), ",%function"),
    concat!(hs_symbol!("syscall_cp"), ":"),
    ".cfi_startproc",
    "ldr w10, [x9, #8]",
    "add w10, w10, #1",
    "str w10, [x9, #8]",
    concat!(".globl ", hs_symbol!("cp_begin")),
    concat!(".hidden ", hs_symbol!("cp_begin")),
    concat!(hs_symbol!("cp_begin"), ":"),
    // Bit 0 of the cancel word: a cancel is pending for this thread's job.
    "ldrb w10, [x9]",
    concat!("tbnz w10, #0, ", hs_symbol!("cp_cancel")),
    "svc #0",
    concat!(".globl ", hs_symbol!("cp_end")),
    concat!(".hidden ", hs_symbol!("cp_end")),
    concat!(hs_symbol!("cp_end"), ":"),
    "ldr w10, [x9, #8]",
    "sub w10, w10, #1",
    "str w10, [x9, #8]",
    concat!(".globl ", hs_symbol!("cp_end_done")),
    concat!(".hidden ", hs_symbol!("cp_end_done")),
    concat!(hs_symbol!("cp_end_done"), ":"),
    "ret",
    concat!(".globl ", hs_symbol!("cp_cancel")),
    concat!(".hidden ", hs_symbol!("cp_cancel")),
    concat!(hs_symbol!("cp_cancel"), ":"),
    "ldr w10, [x9, #8]",
    "sub w10, w10, #1",
    "str w10, [x9, #8]",
    concat!(".globl ", hs_symbol!("cp_cancel_done")),
    concat!(".hidden ", hs_symbol!("cp_cancel_done")),
    concat!(hs_symbol!("cp_cancel_done"), ":"),
    "mov x0, #-125", // -ECANCELED
    "ret",
    ".cfi_endproc",
    concat!(
        ".size ",
        hs_symbol!("syscall_cp"),
        ", . - ",
        hs_symbol!("syscall_cp")
    ),
);

/// Calls the stub: syscall `nr` with `a`, unless the word's cancel bit is
/// set when the stub tests it (then `-ECANCELED`, no syscall).
///
/// # Safety
///
/// `word` must point to the calling thread's live cancel word for the whole
/// call, and the syscall must be memory-safe with these arguments.
#[inline(always)]
pub(crate) unsafe fn cancellable_syscall(
    word: *const CancelWord,
    nr: c_long,
    a: [c_long; 6],
) -> c_long {
    let ret: c_long;
    // SAFETY: the stub follows the contract in the module docs: it reads
    // the word (and bumps the depth at word+8), changes only x0, x10 and
    // the flags, and returns through x30, which `bl` sets (declared
    // clobbered). Without `nostack`, Rust keeps the stack aligned for the
    // call. Memory effects are the syscall's, covered by the caller's
    // contract.
    unsafe {
        core::arch::asm!(
            concat!("bl ", hs_symbol!("syscall_cp")),
            inlateout("x0") a[0] => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            in("x8") nr,
            in("x9") word,
            lateout("x10") _,
            lateout("x30") _,
        );
    }
    ret
}

/// The interrupted program counter.
///
/// # Safety
///
/// `uc` must be the `ucontext_t` the kernel passed to an `SA_SIGINFO`
/// handler that is still running.
#[inline]
pub(crate) unsafe fn context_pc(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: per the caller, `uc` is a valid ucontext for this handler.
    unsafe { (*uc).uc_mcontext.pc as usize }
}

/// Sets the program counter the thread resumes at when the handler returns.
///
/// # Safety
///
/// As for [`context_pc`]; `pc` must be a valid resume point for the
/// interrupted register state.
#[inline]
pub(crate) unsafe fn set_context_pc(uc: *mut libc::ucontext_t, pc: usize) {
    // SAFETY: per the caller.
    unsafe { (*uc).uc_mcontext.pc = pc as u64 }
}
