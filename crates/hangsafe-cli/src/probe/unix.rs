//! The `unix:` probe: a connect to a unix stream socket.

use super::{cancel_fail, fail, last_os_fail, Outcome, Phases};
use hangsafe::cancel;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// A blocking, cancellable connect to a unix stream socket (it blocks
/// while the listener's backlog is full).
pub(super) fn unix(p: &Path, ctx: &Phases<'_, '_>) -> Outcome {
    ctx.enter_phase("connect");
    let addr = cancel::SockAddr::unix(p).map_err(|_| fail("connect", "socket path too long"))?;
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(last_os_fail("socket"));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    cancel::connect(&fd, &addr).map_err(|e| cancel_fail("connect", e))?;
    Ok("connected".to_owned())
}
