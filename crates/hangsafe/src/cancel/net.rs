//! Sockets: recv, recvfrom, recvmsg, send, sendto, sendmsg, accept4,
//! connect, and the [`SockAddr`] they exchange addresses in.

use super::error::{Error, Result};
use super::io::raw;
use super::syscall::{cp, OnEintr};
use super::wait::poll;
use std::ffi::c_long;
use std::io::{IoSlice, IoSliceMut};
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// A socket address as the kernel sees it (`sockaddr_storage` plus length).
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_socket_addr() {
            Some(a) => write!(f, "SockAddr({a})"),
            None => write!(f, "SockAddr(family {}, {} bytes)", self.family(), self.len),
        }
    }
}

impl SockAddr {
    /// Keeps `len` within `storage` whatever the kernel reported (it
    /// reports the full length of an address it truncated), so that passing
    /// this address back (`sendto`, `connect`) never names bytes beyond it.
    fn bounded(mut self) -> Self {
        self.len = self
            .len
            .min(size_of::<libc::sockaddr_storage>() as libc::socklen_t);
        self
    }

    fn empty() -> Self {
        SockAddr {
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            storage: unsafe { zeroed() },
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub fn family(&self) -> i32 {
        self.storage.ss_family as i32
    }

    /// The length in bytes the kernel reported.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the address is empty (an unnamed socket).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The IP address, for `AF_INET` and `AF_INET6`.
    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        match self.family() {
            libc::AF_INET if self.len() >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in,
                // and sockaddr_storage is aligned for it.
                let a = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if self.len() >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let a = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// A Unix-domain address for `path` (`EINVAL` if it is too long).
    pub fn unix(path: impl AsRef<std::path::Path>) -> Result<SockAddr> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_ref().as_os_str().as_bytes();
        let mut a = SockAddr::empty();
        // SAFETY: sockaddr_storage is large and aligned enough for a
        // sockaddr_un.
        let un = unsafe { &mut *(&mut a.storage as *mut _ as *mut libc::sockaddr_un) };
        if bytes.len() >= un.sun_path.len() || bytes.contains(&0) {
            return Err(Error::Os(libc::EINVAL));
        }
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in un.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        a.len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        Ok(a)
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        let mut a = SockAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                // SAFETY: storage is large and aligned enough for sockaddr_in.
                let s = unsafe { &mut *(&mut a.storage as *mut _ as *mut libc::sockaddr_in) };
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = v4.port().to_be();
                s.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                a.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                // SAFETY: storage is large and aligned enough for sockaddr_in6.
                let s = unsafe { &mut *(&mut a.storage as *mut _ as *mut libc::sockaddr_in6) };
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = v6.port().to_be();
                s.sin6_addr.s6_addr = v6.ip().octets();
                s.sin6_flowinfo = v6.flowinfo();
                s.sin6_scope_id = v6.scope_id();
                a.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        a
    }
}

/// Cancellable `recv(2)`.
pub fn recv(fd: impl AsFd, buf: &mut [u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes; no address.
    let n = unsafe {
        cp(
            libc::SYS_recvfrom,
            [
                raw(fd),
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                flags as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `recvfrom(2)`; returns the byte count and the sender.
pub fn recvfrom(fd: impl AsFd, buf: &mut [u8], flags: i32) -> Result<(usize, SockAddr)> {
    let mut from = SockAddr::empty();
    // SAFETY: buf is writable for its length; the kernel writes at most
    // `from.len` bytes of address into `from.storage` and updates `len`.
    let n = unsafe {
        cp(
            libc::SYS_recvfrom,
            [
                raw(fd),
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                flags as c_long,
                &mut from.storage as *mut _ as c_long,
                &mut from.len as *mut _ as c_long,
            ],
            OnEintr::Retry,
        )?
    };
    Ok((n as usize, from.bounded()))
}

/// What [`recvmsg`] received.
#[derive(Clone, Copy, Debug)]
pub struct RecvMsg {
    /// Bytes received into the buffers.
    pub bytes: usize,
    /// Bytes of ancillary data written to `control`.
    pub control_len: usize,
    /// `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`, ...).
    pub flags: i32,
    /// The sender's address.
    pub from: SockAddr,
}

/// Cancellable `recvmsg(2)` into `bufs`, with ancillary data into
/// `control`.
pub fn recvmsg(
    fd: impl AsFd,
    bufs: &mut [IoSliceMut<'_>],
    control: &mut [u8],
    flags: i32,
) -> Result<RecvMsg> {
    let mut from = SockAddr::empty();
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = &mut from.storage as *mut _ as *mut libc::c_void;
    msg.msg_namelen = from.len;
    msg.msg_iov = bufs.as_mut_ptr().cast();
    msg.msg_iovlen = bufs.len() as _;
    if !control.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
    }
    // SAFETY: every pointer in `msg` refers to a live buffer of the length
    // given (IoSliceMut is ABI-compatible with iovec).
    let n = unsafe {
        cp(
            libc::SYS_recvmsg,
            [
                raw(fd),
                &mut msg as *mut _ as c_long,
                flags as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    from.len = msg.msg_namelen;
    Ok(RecvMsg {
        bytes: n as usize,
        control_len: msg.msg_controllen as usize,
        flags: msg.msg_flags,
        from: from.bounded(),
    })
}

/// Cancellable `send(2)`.
pub fn send(fd: impl AsFd, buf: &[u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel reads at most buf.len() bytes; no address.
    let n = unsafe {
        cp(
            libc::SYS_sendto,
            [
                raw(fd),
                buf.as_ptr() as c_long,
                buf.len() as c_long,
                flags as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `sendto(2)`.
pub fn sendto(fd: impl AsFd, buf: &[u8], flags: i32, to: &SockAddr) -> Result<usize> {
    // SAFETY: the kernel reads buf and `to.len` bytes of address; `len`
    // never exceeds `storage` (set by this module, or `bounded`).
    let n = unsafe {
        cp(
            libc::SYS_sendto,
            [
                raw(fd),
                buf.as_ptr() as c_long,
                buf.len() as c_long,
                flags as c_long,
                to.as_ptr() as c_long,
                to.len as c_long,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `sendmsg(2)` of `bufs` with ancillary data `control`, to
/// `to` (or the connected peer).
pub fn sendmsg(
    fd: impl AsFd,
    bufs: &[IoSlice<'_>],
    control: &[u8],
    flags: i32,
    to: Option<&SockAddr>,
) -> Result<usize> {
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    if let Some(to) = to {
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len;
    }
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len() as _;
    }
    // SAFETY: the kernel only reads through `msg`'s pointers, which refer
    // to live buffers of the lengths given.
    let n = unsafe {
        cp(
            libc::SYS_sendmsg,
            [
                raw(fd),
                &msg as *const _ as c_long,
                flags as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `accept4(2)`; `SOCK_CLOEXEC` is added to `flags`. An
/// accepted connection is always returned, never leaked (R16).
pub fn accept4(fd: impl AsFd, flags: i32) -> Result<(OwnedFd, SockAddr)> {
    let mut from = SockAddr::empty();
    // SAFETY: the kernel writes at most `from.len` bytes of address.
    let nfd = unsafe {
        cp(
            libc::SYS_accept4,
            [
                raw(fd),
                &mut from.storage as *mut _ as c_long,
                &mut from.len as *mut _ as c_long,
                (flags | libc::SOCK_CLOEXEC) as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    // SAFETY: a new descriptor from the kernel; we own it.
    Ok((unsafe { OwnedFd::from_raw_fd(nfd as i32) }, from.bounded()))
}

/// Cancellable `connect(2)`.
///
/// A blocking connect interrupted by a foreign signal keeps connecting in
/// the background; this call then waits (cancellably) for it to finish and
/// reports its outcome, instead of returning `EINTR`. After `Cancelled` the
/// socket may have a connection attempt in progress: close it.
pub fn connect(fd: impl AsFd, to: &SockAddr) -> Result<()> {
    let fd = fd.as_fd();
    // SAFETY: the kernel reads `to.len` bytes of address; `len` never
    // exceeds `storage` (set by this module, or `bounded`).
    let r = unsafe {
        cp(
            libc::SYS_connect,
            [raw(fd), to.as_ptr() as c_long, to.len as c_long, 0, 0, 0],
            OnEintr::Return,
        )
    };
    match r {
        Ok(_) => Ok(()),
        Err(Error::Os(libc::EINTR)) => {
            let mut p = [libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            }];
            poll(&mut p, None)?;
            let mut err: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes one int into `err`.
            let rc = unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    &mut err as *mut _ as *mut libc::c_void,
                    &mut len,
                )
            };
            if rc != 0 {
                return Err(Error::Os(
                    std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(libc::EIO),
                ));
            }
            if err == 0 {
                Ok(())
            } else {
                Err(Error::Os(err))
            }
        }
        Err(e) => Err(e),
    }
}
