//! aarch64: the cancellable syscall stub and `ucontext_t` access.
//!
//! The stub's calling convention (used only by
//! [`Arch::cancellable_syscall`], which calls it (`bl`) from inline
//! assembly with the syscall's registers already loaded): `nr` in x8, the
//! arguments in x0..x5 (the kernel's convention), the [`StubWord`]'s
//! address in x9. `svc` preserves every register but x0; the stub uses x10
//! as scratch, and neither sp nor any callee-saved register changes, so
//! `cancel` can simply `ret` (to x30, set by the caller's `bl`).
//!
//! Right before `begin` the stub increments the thread's in-call depth
//! ([`StubWord::in_call`], at `word + IN_CALL_OFFSET`); the sequences at
//! `end` and `cancel` decrement it, and the labels `end_done`/`cancel_done`
//! follow the decrements (see the contract in `platform`). The
//! load/add/store is not one instruction, but the count changes only at its
//! store, which lies before `begin` (increment) or before the `_done` label
//! (decrement), and only this thread (and its own signal handlers, which
//! nest and restore the value) touch it.
//!
//! When the kernel restarts an interrupted syscall it rewinds pc by 4 to
//! the `svc` (inside the range) and restores x0; a completed call or one
//! returning `-EINTR` resumes at `end`: outside.

use super::{Platform, StubWord, CANCEL_BYTE, CANCEL_BYTE_BIT, IN_CALL_OFFSET};
use std::ffi::c_long;

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".type ", hs_symbol!("syscall_cp"), ",%function"),
    hs_label!("syscall_cp"),
    ".cfi_startproc",
    "ldr w10, [x9, #{in_call}]",
    "add w10, w10, #1",
    "str w10, [x9, #{in_call}]",
    hs_label!("cp_begin"),
    // The cancel bit: a cancel is pending for this thread's job.
    "ldrb w10, [x9, #{cancel_byte}]",
    concat!("tbnz w10, #{cancel_bit}, ", hs_symbol!("cp_cancel")),
    "svc #0",
    hs_label!("cp_end"),
    "ldr w10, [x9, #{in_call}]",
    "sub w10, w10, #1",
    "str w10, [x9, #{in_call}]",
    hs_label!("cp_end_done"),
    "ret",
    hs_label!("cp_cancel"),
    "ldr w10, [x9, #{in_call}]",
    "sub w10, w10, #1",
    "str w10, [x9, #{in_call}]",
    hs_label!("cp_cancel_done"),
    "mov x0, #-125", // -ECANCELED
    "ret",
    ".cfi_endproc",
    concat!(
        ".size ",
        hs_symbol!("syscall_cp"),
        ", . - ",
        hs_symbol!("syscall_cp")
    ),
    in_call = const IN_CALL_OFFSET,
    cancel_byte = const CANCEL_BYTE,
    cancel_bit = const CANCEL_BYTE_BIT,
);

/// aarch64's [`Platform`].
#[derive(Debug)]
pub(crate) struct Arch;

impl Platform for Arch {
    #[inline(always)]
    unsafe fn cancellable_syscall(word: &StubWord, nr: c_long, a: [c_long; 6]) -> c_long {
        let ret: c_long;
        // SAFETY: the stub follows the contract in the module docs: it
        // reads the word (and bumps the depth, the caller's thread's own),
        // changes only x0, x10 and the flags, and returns through x30,
        // which `bl` sets (declared clobbered). Without `nostack`, Rust
        // keeps the stack aligned for the call. Memory effects are the
        // syscall's, covered by the caller's contract.
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
                in("x9") std::ptr::from_ref(word),
                lateout("x10") _,
                lateout("x30") _,
            );
        }
        ret
    }

    #[inline]
    unsafe fn context_pc(uc: *const libc::ucontext_t) -> usize {
        // SAFETY: per the caller, `uc` is a valid ucontext for this handler.
        unsafe { (*uc).uc_mcontext.pc as usize }
    }

    #[inline]
    unsafe fn set_context_pc(uc: *mut libc::ucontext_t, pc: usize) {
        // SAFETY: per the caller.
        unsafe { (*uc).uc_mcontext.pc = pc as u64 }
    }
}
