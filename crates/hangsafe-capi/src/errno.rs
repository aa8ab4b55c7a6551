//! Reporting errors to C through `errno`.

use hangsafe_core::runner::SpawnError;
use std::ffi::c_int;

/// Sets the calling thread's `errno`.
pub(crate) fn set(code: c_int) {
    // SAFETY: `__errno_location` has no preconditions; it returns the
    // address of the calling thread's `errno`.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: that address is valid, aligned and writable for as long as
    // the calling thread lives, and no other thread accesses it.
    unsafe { *slot = code };
}

/// The calling thread's `errno`.
pub(crate) fn get() -> c_int {
    // SAFETY: `__errno_location` has no preconditions; it returns the
    // address of the calling thread's `errno`.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: that address is valid, aligned and readable for as long as
    // the calling thread lives, and no other thread accesses it.
    unsafe { *slot }
}

/// The `errno` value that describes a failed spawn.
///
/// * The OS refusing a thread keeps the OS's own code (normally `EAGAIN`).
/// * Pool limits (full pool, too many abandoned threads) are `EAGAIN`:
///   retrying later may succeed.
/// * A busy key is `EBUSY`.
pub(crate) fn from_spawn_error(e: &SpawnError) -> c_int {
    match e {
        SpawnError::ThreadCreate(io) => io.raw_os_error().unwrap_or(libc::EAGAIN),
        SpawnError::PoolFull { .. } | SpawnError::TooManyAbandoned { .. } => libc::EAGAIN,
        SpawnError::KeyBusy { .. } => libc::EBUSY,
        // SpawnError is non-exhaustive: a future reason is most likely a
        // resource limit too.
        _ => libc::EAGAIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_map_to_errno() {
        let os = SpawnError::ThreadCreate(std::io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(from_spawn_error(&os), libc::ENOMEM);
        let other = SpawnError::ThreadCreate(std::io::Error::other("no code"));
        assert_eq!(from_spawn_error(&other), libc::EAGAIN);
        let full = SpawnError::PoolFull { max_threads: 1 };
        assert_eq!(from_spawn_error(&full), libc::EAGAIN);
        let hung = SpawnError::TooManyAbandoned { max_abandoned: 1 };
        assert_eq!(from_spawn_error(&hung), libc::EAGAIN);
        let busy = SpawnError::KeyBusy { key: "sda".into() };
        assert_eq!(from_spawn_error(&busy), libc::EBUSY);
    }

    #[test]
    fn set_is_visible_to_the_same_thread() {
        set(libc::EINVAL);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(get(), libc::EINVAL);
        set(0);
        assert_eq!(get(), 0);
    }
}
