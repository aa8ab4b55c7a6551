//! x86_64: the cancellable syscall stub and `ucontext_t` access.
//!
//! System V calling convention: `word` in rdi, `nr` in rsi, `a1..a4` in
//! rdx, rcx, r8, r9, `a5`/`a6` on the stack at `[rsp+8]`/`[rsp+16]` on
//! entry. The Linux syscall convention wants `nr` in rax and the arguments
//! in rdi, rsi, rdx, r10, r8, r9. All shuffling happens *before* `begin`;
//! inside `[begin, end)` only rax-free flags and the trap happen, and the
//! stack pointer still points at the return address, so `cancel` can
//! simply `ret`.
//!
//! When the kernel interrupts a blocked syscall for a signal handler with
//! `SA_RESTART` and the call is restartable, it rewinds rip by 2 to the
//! `syscall` instruction (inside the range) and restores rax: the handler
//! then sees a PC in `[begin, end)` and the syscall has had no effect.
//! If the call completed or returns `-EINTR`, rip is `end`: outside.

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".globl ", hs_symbol!("syscall_cp")),
    concat!(".hidden ", hs_symbol!("syscall_cp")),
    concat!(".type ", hs_symbol!("syscall_cp"), ",@function"),
    concat!(hs_symbol!("syscall_cp"), ":"),
    "endbr64",
    "mov r11, rdi",
    "mov rax, rsi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov r10, r9",
    "mov r8, [rsp + 8]",
    "mov r9, [rsp + 16]",
    concat!(".globl ", hs_symbol!("cp_begin")),
    concat!(".hidden ", hs_symbol!("cp_begin")),
    concat!(hs_symbol!("cp_begin"), ":"),
    // Bit 0 of the cancel word: a cancel is pending for this thread's job.
    "test byte ptr [r11], 1",
    concat!("jnz ", hs_symbol!("cp_cancel")),
    "syscall",
    concat!(".globl ", hs_symbol!("cp_end")),
    concat!(".hidden ", hs_symbol!("cp_end")),
    concat!(hs_symbol!("cp_end"), ":"),
    "ret",
    concat!(".globl ", hs_symbol!("cp_cancel")),
    concat!(".hidden ", hs_symbol!("cp_cancel")),
    concat!(hs_symbol!("cp_cancel"), ":"),
    "mov rax, -125", // -ECANCELED
    "ret",
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
