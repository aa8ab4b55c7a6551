//! aarch64: the cancellable syscall stub and `ucontext_t` access.
//!
//! AAPCS64: `word` in x0, `nr` in x1, `a1..a6` in x2..x7. The Linux syscall
//! convention wants `nr` in x8 and the arguments in x0..x5; `svc` preserves
//! every register but x0. The word pointer lives in the scratch register
//! x9; inside `[begin, end)` only x10 (scratch) changes, and neither sp nor
//! the link register, so `cancel` can simply `ret`.
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

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".globl ", hs_symbol!("syscall_cp")),
    concat!(".hidden ", hs_symbol!("syscall_cp")),
    concat!(".type ", hs_symbol!("syscall_cp"), ",%function"),
    concat!(hs_symbol!("syscall_cp"), ":"),
    ".cfi_startproc",
    "mov x9, x0",
    "mov x8, x1",
    "mov x0, x2",
    "mov x1, x3",
    "mov x2, x4",
    "mov x3, x5",
    "mov x4, x6",
    "mov x5, x7",
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
    concat!(".globl ", hs_symbol!("cp_fn_end")),
    concat!(".hidden ", hs_symbol!("cp_fn_end")),
    concat!(hs_symbol!("cp_fn_end"), ":"),
    concat!(
        ".size ",
        hs_symbol!("syscall_cp"),
        ", . - ",
        hs_symbol!("syscall_cp")
    ),
);

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
