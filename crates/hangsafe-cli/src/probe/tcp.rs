//! The `tcp://` probe: resolve, then a non-blocking connect to each
//! address in turn.

use super::{errno, fail, Outcome, Phases};
use hangsafe::cancel;
use std::ffi::c_void;
use std::net::ToSocketAddrs as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// Resolves `host` (on this thread: DNS can hang; not interruptible), then
/// tries each address with a non-blocking connect until `deadline`.
pub(super) fn tcp(host: &str, port: u16, ctx: &Phases<'_, '_>, deadline: Instant) -> Outcome {
    ctx.enter_phase("resolve");
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail("resolve", e))?
        .collect();
    if addrs.is_empty() {
        return Err(fail("resolve", "no address"));
    }
    let mut errors = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        ctx.enter_phase("connect");
        ctx.set_progress(i as u32 + 1, addrs.len() as u32);
        match connect_tcp(*addr, deadline) {
            Ok(()) => return Ok(format!("connected to {addr}")),
            Err(cancel::Error::Cancelled) => return Err(fail("connect", "cancelled")),
            Err(cancel::Error::Os(e)) => {
                errors.push(format!("{addr}: {}", std::io::Error::from_raw_os_error(e)))
            }
        }
    }
    Err(fail("connect", errors.join("; ")))
}

/// One non-blocking connect, waited for (cancellably) until `deadline`.
fn connect_tcp(addr: std::net::SocketAddr, deadline: Instant) -> cancel::Result<()> {
    let fd = stream_socket(addr)?;
    match cancel::connect(&fd, &cancel::SockAddr::from(addr)) {
        Ok(()) => return Ok(()),
        Err(cancel::Error::Os(libc::EINPROGRESS)) => {}
        Err(e) => return Err(e),
    }
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    let left = deadline.saturating_duration_since(Instant::now());
    if cancel::poll(&mut pfd, Some(left))? == 0 {
        return Err(cancel::Error::Os(libc::ETIMEDOUT));
    }
    match socket_error(&fd)? {
        0 => Ok(()),
        err => Err(cancel::Error::Os(err)),
    }
}

/// A non-blocking TCP socket of `addr`'s family.
fn stream_socket(addr: std::net::SocketAddr) -> cancel::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(cancel::Error::Os(errno()));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The pending error of socket `fd` (`SO_ERROR`): 0 once a non-blocking
/// connect has succeeded, its errno if it failed.
fn socket_error(fd: &OwnedFd) -> cancel::Result<libc::c_int> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one int) into `err`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(cancel::Error::Os(errno()));
    }
    Ok(err)
}
