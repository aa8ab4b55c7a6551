//! Platform code: everything that depends on the CPU architecture lives
//! behind this module, one file per architecture.
//!
//! Each architecture provides:
//!
//! * the **cancellable syscall stub** (`syscall_cp`), written in assembly so
//!   that the instructions between its `begin` and `end` labels are exactly
//!   "load the cancel word, branch if cancelled, trap into the kernel", with
//!   no stack or callee-saved register change in between, and
//!   `cancellable_syscall`, which calls it from inline assembly with the
//!   syscall's registers already loaded;
//! * the addresses of its `begin`, `end` and `cancel` labels;
//! * access to the program counter saved in a signal's `ucontext_t`.
//!
//! Symbols carry the crate's major and minor version
//! (`hangsafe_<major>_<minor>_…`), so two versions of the crate can be
//! linked into one program, and are hidden from shared-object export
//! tables.

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

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as arch;

pub(crate) use arch::{cancellable_syscall, context_pc, set_context_pc};

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
