//! x86_64: the cancellable syscall stub and `ucontext_t` access.
//!
//! The stub's calling convention (used only by
//! [`Arch::cancellable_syscall`], which calls it from inline assembly with
//! the syscall's registers already loaded): `nr` in rax, the arguments in
//! rdi, rsi, rdx, r10, r8, r9 (the kernel's convention), the
//! [`StubWord`]'s address in r11. So the stub does no argument shuffling,
//! and the call is a direct, PC-relative `call` (no PLT or GOT). `syscall`
//! itself clobbers rcx and r11, so the stub moves the word pointer to rbx,
//! which its prologue saves and its epilogues restore: all stack and
//! callee-saved register changes happen *outside* `[begin, end)`.
//!
//! Right before `begin` the stub increments the thread's in-call depth
//! ([`StubWord::in_call`], at `word + IN_CALL_OFFSET`); the first
//! instruction at `end` and at `cancel` decrements it, and the labels
//! `end_done`/`cancel_done` follow the decrements (see the contract in
//! `platform`). `inc`/`dec` on memory are single instructions: a signal
//! cannot split them.
//!
//! When the kernel interrupts a blocked syscall for a signal handler with
//! `SA_RESTART` and the call is restartable, it rewinds rip by 2 to the
//! `syscall` instruction (inside the range) and restores rax: the handler
//! then sees a PC in `[begin, end)` and the syscall has had no effect.
//! If the call completed or returns `-EINTR`, rip is `end`: outside.

use super::{Platform, StubWord, CANCEL_BYTE, CANCEL_BYTE_BIT, IN_CALL_OFFSET};
use std::ffi::c_long;

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    concat!(".type ", hs_symbol!("syscall_cp"), ",@function"),
    hs_label!("syscall_cp"),
    ".cfi_startproc",
    "endbr64",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbx, -16",
    "mov rbx, r11",
    "inc dword ptr [rbx + {in_call}]",
    hs_label!("cp_begin"),
    // The cancel bit: a cancel is pending for this thread's job.
    "test byte ptr [rbx + {cancel_byte}], {cancel_mask}",
    concat!("jnz ", hs_symbol!("cp_cancel")),
    "syscall",
    hs_label!("cp_end"),
    "dec dword ptr [rbx + {in_call}]",
    hs_label!("cp_end_done"),
    ".cfi_remember_state",
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
    "ret",
    ".cfi_restore_state",
    hs_label!("cp_cancel"),
    "dec dword ptr [rbx + {in_call}]",
    hs_label!("cp_cancel_done"),
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
    in_call = const IN_CALL_OFFSET,
    cancel_byte = const CANCEL_BYTE,
    cancel_mask = const 1u8 << CANCEL_BYTE_BIT,
);

/// x86_64's [`Platform`].
#[derive(Debug)]
pub(crate) struct Arch;

impl Platform for Arch {
    #[inline(always)]
    unsafe fn cancellable_syscall(word: &StubWord, nr: c_long, a: [c_long; 6]) -> c_long {
        let ret: c_long;
        // SAFETY: the stub follows the contract in the module docs: it
        // reads the word (and bumps the depth, the caller's thread's own),
        // preserves every register but rax, rcx, r11 (and flags), and
        // returns with the stack as it found it. Without `nostack`, Rust
        // keeps the red zone free and the stack aligned for the `call`.
        // Memory effects are the syscall's, covered by the caller's
        // contract (no `nomem`/`readonly`).
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
                inlateout("r11") std::ptr::from_ref(word) => _,
                lateout("rcx") _,
            );
        }
        ret
    }

    #[inline]
    unsafe fn context_pc(uc: *const libc::ucontext_t) -> usize {
        // SAFETY: per the caller, `uc` is a valid ucontext for this handler.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
    }

    #[inline]
    unsafe fn set_context_pc(uc: *mut libc::ucontext_t, pc: usize) {
        // SAFETY: per the caller.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] = pc as i64 }
    }
}
