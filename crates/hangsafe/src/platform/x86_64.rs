//! x86_64: the cancellable syscall stub and `ucontext_t` access.
//!
//! System V calling convention: `word` in rdi, `nr` in rsi, `a1..a4` in
//! rdx, rcx, r8, r9, `a5`/`a6` on the stack. The Linux syscall convention
//! wants `nr` in rax and the arguments in rdi, rsi, rdx, r10, r8, r9, and
//! `syscall` itself clobbers rcx and r11. The word pointer therefore lives
//! in rbx, which the prologue saves and the epilogues restore: all stack
//! and callee-saved register changes happen *outside* `[begin, end)`.
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
    "mov rbx, rdi",
    "mov rax, rsi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov r10, r9",
    "mov r8, [rsp + 16]",
    "mov r9, [rsp + 24]",
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
