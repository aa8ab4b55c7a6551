//! x86_64: the cancellable syscall stub and `ucontext_t` access.
//!
//! The stub has its own calling convention, used only by
//! [`cancellable_syscall`] below, which calls it from inline assembly with
//! the syscall's registers already loaded: `nr` in rax, the arguments in
//! rdi, rsi, rdx, r10, r8, r9 (the kernel's convention), the cancel word's
//! address in r11. So the stub does no argument shuffling, and the call is
//! a direct, PC-relative `call` (no PLT or GOT). `syscall` itself clobbers
//! rcx and r11, so the stub moves the word pointer to rbx, which its
//! prologue saves and its epilogues restore: all stack and callee-saved
//! register changes happen *outside* `[begin, end)`.
//!
//! Right before `begin` the stub increments the thread's in-call depth
//! (the `u32` at `word + 8`); the first instruction at `end` and at
//! `cancel` decrements it, and the labels `end_done`/`cancel_done` follow
//! the decrements. So the PC tells the signal handler exactly whether the
//! innermost call is counted (`[begin, end_done)` or
//! `[cancel, cancel_done)`), and the depth tells it how many *outer*
//! cancellable calls a signal handler has interrupted (see
//! `cancel::signal`). `inc`/`dec` on memory are single instructions: a
//! signal cannot split them.
//!
//! When the kernel interrupts a blocked syscall for a signal handler with
//! `SA_RESTART` and the call is restartable, it rewinds rip by 2 to the
//! `syscall` instruction (inside the range) and restores rax: the handler
//! then sees a PC in `[begin, end)` and the syscall has had no effect.
//! If the call completed or returns `-EINTR`, rip is `end`: outside.

use crate::cancel::word::CancelWord;
use std::ffi::c_long;

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".globl ", hs_symbol!("syscall_cp")),
    concat!(".hidden ", hs_symbol!("syscall_cp")),
    concat!(".type ", hs_symbol!("syscall_cp"), ",@function"),
    concat!(hs_symbol!("syscall_cp"), ":"),
    ".cfi_startproc",
    "endbr64",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbx, -16",
    "mov rbx, r11",
    "inc dword ptr [rbx + 8]",
    concat!(".globl ", hs_symbol!("cp_begin")),
    concat!(".hidden ", hs_symbol!("cp_begin")),
    concat!(hs_symbol!("cp_begin"), ":"),
    // Bit 0 of the cancel word: a cancel is pending for this thread's job.
    "test byte ptr [rbx], 1",
    concat!("jnz ", hs_symbol!("cp_cancel")),
    "syscall",
    concat!(".globl ", hs_symbol!("cp_end")),
    concat!(".hidden ", hs_symbol!("cp_end")),
    concat!(hs_symbol!("cp_end"), ":"),
    "dec dword ptr [rbx + 8]",
    concat!(".globl ", hs_symbol!("cp_end_done")),
    concat!(".hidden ", hs_symbol!("cp_end_done")),
    concat!(hs_symbol!("cp_end_done"), ":"),
    ".cfi_remember_state",
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
    "ret",
    ".cfi_restore_state",
    concat!(".globl ", hs_symbol!("cp_cancel")),
    concat!(".hidden ", hs_symbol!("cp_cancel")),
    concat!(hs_symbol!("cp_cancel"), ":"),
    "dec dword ptr [rbx + 8]",
    concat!(".globl ", hs_symbol!("cp_cancel_done")),
    concat!(".hidden ", hs_symbol!("cp_cancel_done")),
    concat!(hs_symbol!("cp_cancel_done"), ":"),
    "mov rax, -125", // -ECANCELED
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
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
    // the word (and bumps the depth at word+8), preserves every register
    // but rax, rcx, r11 (and flags), and returns with the stack as it
    // found it. Without `nostack`, Rust keeps the red zone free and the
    // stack aligned for the `call`. Memory effects are the syscall's,
    // covered by the caller's contract (no `nomem`/`readonly`).
    unsafe {
        core::arch::asm!(
            concat!("call ", hs_symbol!("syscall_cp")),
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            inlateout("r11") word => _,
            lateout("rcx") _,
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
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
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
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] = pc as i64 }
}
