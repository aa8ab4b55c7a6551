//! Wrapper sanity, without any cancel: every cancellable wrapper behaves
//! like the syscall it wraps (results, errors, side effects), both outside
//! any scope and inside a scope nobody cancels.

mod support;

use hangsafe::cancel::{self, CancelToken, Error, SockAddr};
use std::ffi::c_long;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::{Duration, Instant};
use support::{pipe, readable_bytes};

/// Runs `f` twice: outside any scope, and inside a scope of a token that
/// is never cancelled (on a fresh thread each time).
fn both_ways(f: fn()) {
    std::thread::spawn(f).join().unwrap();
    std::thread::spawn(move || {
        let token = CancelToken::new();
        let _scope = token.enter().unwrap();
        f();
        assert!(!token.is_cancelled());
    })
    .join()
    .unwrap();
}

fn temp_rw(tag: &str) -> (support::RemoveOnDrop, OwnedFd) {
    let path = support::temp_path(tag);
    let fd = cancel::openat(
        None,
        &path,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )
    .unwrap();
    (support::RemoveOnDrop(path), fd)
}

fn lseek(fd: impl AsFd, off: i64) {
    // SAFETY: no memory arguments.
    let r = unsafe { libc::lseek(fd.as_fd().as_raw_fd(), off, libc::SEEK_SET) };
    assert_eq!(r, off);
}

#[test]
fn wrappers_file_io() {
    both_ways(|| {
        let (_rm, fd) = temp_rw("wrap-io");
        assert_eq!(cancel::write(&fd, b"hello "), Ok(6));
        let parts = [IoSlice::new(b"vectored "), IoSlice::new(b"world")];
        assert_eq!(cancel::writev(&fd, &parts), Ok(14));
        assert_eq!(cancel::pwrite(&fd, b"J", 0), Ok(1));
        lseek(&fd, 0);
        let mut buf = [0u8; 64];
        assert_eq!(cancel::read(&fd, &mut buf), Ok(20));
        assert_eq!(&buf[..20], b"Jello vectored world");
        assert_eq!(cancel::read(&fd, &mut buf), Ok(0), "EOF");
        let mut a = [0u8; 5];
        assert_eq!(cancel::pread(&fd, &mut a, 15), Ok(5));
        assert_eq!(&a, b"world");
        lseek(&fd, 6);
        let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
        let mut bufs = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
        assert_eq!(cancel::readv(&fd, &mut bufs), Ok(8));
        assert_eq!((&x, &y), (b"vect", b"ored"));
        assert_eq!(cancel::fsync(&fd), Ok(()));
        assert_eq!(cancel::fdatasync(&fd), Ok(()));
        // Errors are the kernel's errno.
        let (r, w) = pipe();
        assert_eq!(cancel::pread(&r, &mut a, 0), Err(Error::Os(libc::ESPIPE)));
        assert_eq!(cancel::read(&w, &mut a), Err(Error::Os(libc::EBADF)));
        assert_eq!(cancel::close(fd), Ok(()));
    });
}

#[test]
fn wrappers_openat_and_close() {
    both_ways(|| {
        assert_eq!(
            cancel::openat(None, "/nonexistent/hangsafe", libc::O_RDONLY, 0).unwrap_err(),
            Error::Os(libc::ENOENT)
        );
        assert_eq!(
            cancel::openat(None, "/", libc::O_WRONLY, 0).unwrap_err(),
            Error::Os(libc::EISDIR)
        );
        assert_eq!(
            cancel::openat(None, "a\0b", libc::O_RDONLY, 0).unwrap_err(),
            Error::Os(libc::EINVAL)
        );
        let io: io::Error = Error::Os(libc::ENOENT).into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        // Relative to a directory descriptor; O_CLOEXEC is added.
        let dir =
            cancel::openat(None, "/proc/self", libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        let st = cancel::openat(Some(dir.as_fd()), "status", libc::O_RDONLY, 0).unwrap();
        // SAFETY: F_GETFD has no memory arguments.
        let flags = unsafe { libc::fcntl(st.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let mut buf = [0u8; 5];
        assert_eq!(cancel::read(&st, &mut buf), Ok(5));
        assert_eq!(&buf, b"Name:");
        assert_eq!(cancel::close(st), Ok(()));
        assert_eq!(cancel::close(dir), Ok(()));
    });
}

#[test]
fn wrappers_locks_uncontended() {
    both_ways(|| {
        let (_rm, fd) = temp_rw("wrap-lock");
        assert_eq!(cancel::flock(&fd, libc::LOCK_EX), Ok(()));
        assert_eq!(cancel::flock(&fd, libc::LOCK_UN), Ok(()));
        assert_eq!(cancel::flock(&fd, libc::LOCK_SH | libc::LOCK_NB), Ok(()));
        // SAFETY: flock is plain data.
        let mut lk: libc::flock = unsafe { std::mem::zeroed() };
        lk.l_type = libc::F_WRLCK as libc::c_short;
        lk.l_whence = libc::SEEK_SET as libc::c_short;
        lk.l_len = 10;
        // A POSIX record lock, then (after releasing it: OFD and POSIX
        // locks conflict even within one process) an OFD lock.
        let mut un = lk;
        un.l_type = libc::F_UNLCK as libc::c_short;
        assert_eq!(cancel::fcntl_lock_wait(&fd, &lk, false), Ok(()));
        assert_eq!(
            cancel::fcntl_lock_wait(&fd, &lk, false),
            Ok(()),
            "re-lock by the owner"
        );
        assert_eq!(cancel::fcntl_lock_wait(&fd, &un, false), Ok(()));
        assert_eq!(cancel::fcntl_lock_wait(&fd, &lk, true), Ok(()));
        assert_eq!(cancel::fcntl_lock_wait(&fd, &un, true), Ok(()));
        // OFD locks need l_pid == 0.
        lk.l_type = libc::F_WRLCK as libc::c_short;
        lk.l_pid = 1;
        assert_eq!(
            cancel::fcntl_lock_wait(&fd, &lk, true),
            Err(Error::Os(libc::EINVAL))
        );
        let (r, _w) = pipe();
        assert_eq!(cancel::flock(&r, 0x40), Err(Error::Os(libc::EINVAL)));
    });
}

#[test]
fn wrappers_udp_send_recv() {
    both_ways(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let to_b = SockAddr::from(ba);
        assert_eq!(to_b.family(), libc::AF_INET);
        assert_eq!(to_b.as_socket_addr(), Some(ba));

        assert_eq!(cancel::sendto(&a, b"one", 0, &to_b), Ok(3));
        let mut buf = [0u8; 16];
        let (n, from) = cancel::recvfrom(&b, &mut buf, 0).unwrap();
        assert_eq!((n, &buf[..n]), (3, &b"one"[..]));
        assert_eq!(from.as_socket_addr(), Some(aa));

        // sendmsg / recvmsg, scattered, with a truncated datagram.
        let parts = [IoSlice::new(b"tw"), IoSlice::new(b"o-long")];
        assert_eq!(cancel::sendmsg(&a, &parts, &[], 0, Some(&to_b)), Ok(8));
        let (mut x, mut y) = ([0u8; 3], [0u8; 2]);
        let mut bufs = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
        let m = cancel::recvmsg(&b, &mut bufs, &mut [], 0).unwrap();
        assert_eq!(m.bytes, 5);
        assert_eq!(m.flags & libc::MSG_TRUNC, libc::MSG_TRUNC);
        assert_eq!(m.from.as_socket_addr(), Some(aa));
        assert_eq!((&x, &y), (b"two", b"-l"));

        // Connected: send / recv; MSG_DONTWAIT on an empty socket.
        a.connect(ba).unwrap();
        assert_eq!(cancel::send(&a, b"three", 0), Ok(5));
        assert_eq!(cancel::recv(&b, &mut buf, 0), Ok(5));
        assert_eq!(&buf[..5], b"three");
        assert_eq!(
            cancel::recv(&b, &mut buf, libc::MSG_DONTWAIT),
            Err(Error::Os(libc::EAGAIN))
        );
    });
}

#[test]
fn wrappers_unix_sockets_and_fd_passing() {
    both_ways(|| {
        let (s1, s2) = UnixStream::pair().unwrap();
        assert_eq!(cancel::send(&s1, b"ping", 0), Ok(4));
        let mut buf = [0u8; 8];
        let (n, from) = cancel::recvfrom(&s2, &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"ping");
        // An unnamed peer: no address.
        assert!(from.is_empty(), "{from:?}");
        assert_eq!(from.as_socket_addr(), None);

        // sendmsg with SCM_RIGHTS ancillary data, recvmsg receives it.
        let (pr, pw) = pipe();
        let fd = pw.as_raw_fd();
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure computations.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
        let mut control = vec![0u8; space];
        // SAFETY: `control` is a zeroed, large enough buffer for one cmsg
        // carrying one int; the msghdr only serves CMSG_FIRSTHDR.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        }
        assert_eq!(
            cancel::sendmsg(&s1, &[IoSlice::new(b"fd")], &control, 0, None),
            Ok(2)
        );
        let mut got_control = vec![0u8; space];
        let mut data = [0u8; 2];
        let m =
            cancel::recvmsg(&s2, &mut [IoSliceMut::new(&mut data)], &mut got_control, 0).unwrap();
        assert_eq!((m.bytes, &data), (2, b"fd"));
        assert_eq!(m.control_len, space);
        // SAFETY: the kernel filled one SCM_RIGHTS cmsg with one int.
        let received = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_control = got_control.as_mut_ptr().cast();
            msg.msg_controllen = m.control_len as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            assert_eq!(
                ((*c).cmsg_level, (*c).cmsg_type),
                (libc::SOL_SOCKET, libc::SCM_RIGHTS)
            );
            OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
        };
        assert_eq!(cancel::write(&received, b"via passed fd"), Ok(13));
        assert_eq!(readable_bytes(&pr), 13);

        // A named Unix listener: connect / accept4 with SockAddr::unix.
        let path = support::temp_path("wrap-unix");
        let _rm = support::RemoveOnDrop(path.clone());
        let listener = UnixListener::bind(&path).unwrap();
        let addr = SockAddr::unix(&path).unwrap();
        assert_eq!(addr.family(), libc::AF_UNIX);
        // SAFETY: socket has no memory arguments.
        let c = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(c >= 0);
        // SAFETY: a new descriptor we own.
        let c = unsafe { OwnedFd::from_raw_fd(c) };
        assert_eq!(cancel::connect(&c, &addr), Ok(()));
        let (conn, _) = cancel::accept4(&listener, 0).unwrap();
        assert_eq!(cancel::send(&c, b"u", 0), Ok(1));
        assert_eq!(cancel::recv(&conn, &mut buf, 0), Ok(1));
        assert_eq!(
            SockAddr::unix("x".repeat(200)).unwrap_err(),
            Error::Os(libc::EINVAL)
        );
        // Datagram socket pair.
        let (d1, d2) = UnixDatagram::pair().unwrap();
        assert_eq!(cancel::send(&d1, b"dgram", 0), Ok(5));
        assert_eq!(cancel::recv(&d2, &mut buf, 0), Ok(5));
    });
}

#[test]
fn wrappers_tcp_connect_accept4() {
    both_ways(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // SAFETY: socket has no memory arguments.
        let c = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(c >= 0);
        // SAFETY: a new descriptor we own.
        let c = unsafe { OwnedFd::from_raw_fd(c) };
        assert_eq!(cancel::connect(&c, &SockAddr::from(addr)), Ok(()));
        let (conn, from) = cancel::accept4(&listener, libc::SOCK_NONBLOCK).unwrap();
        // The client's local address is what accept4 reports.
        // SAFETY: all-zero bytes are a valid sockaddr_in.
        let mut local: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockname(
                c.as_raw_fd(),
                (&mut local as *mut libc::sockaddr_in).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        let port = u16::from_be(local.sin_port);
        assert_eq!(
            from.as_socket_addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        );
        // SOCK_NONBLOCK and the added SOCK_CLOEXEC took effect.
        // SAFETY: F_GETFL / F_GETFD have no memory arguments.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(conn.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(conn.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_eq!(fl & libc::O_NONBLOCK, libc::O_NONBLOCK);
        assert_eq!(fdfl & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let mut buf = [0u8; 4];
        assert_eq!(
            cancel::recv(&conn, &mut buf, 0),
            Err(Error::Os(libc::EAGAIN))
        );
        assert_eq!(cancel::send(&c, b"tcp!", 0), Ok(4));
        let mut p = [libc::pollfd {
            fd: conn.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(cancel::poll(&mut p, Some(Duration::from_secs(10))), Ok(1));
        assert_eq!(cancel::recv(&conn, &mut buf, 0), Ok(4));
        assert_eq!(&buf, b"tcp!");
        // connect to a closed port: the kernel's error.
        drop(listener);
        // SAFETY: as above.
        let c2 = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        // SAFETY: as above.
        let c2 = unsafe { OwnedFd::from_raw_fd(c2) };
        assert_eq!(
            cancel::connect(&c2, &SockAddr::from(addr)),
            Err(Error::Os(libc::ECONNREFUSED))
        );
    });
}

/// Forks a child that `_exit`s with `code` once a byte arrives on the
/// returned pipe (or after 20 s).
fn child_exiting(code: i32) -> (libc::pid_t, OwnedFd) {
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    // SAFETY: the child only polls and reads a pipe (async-signal-safe)
    // and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut p = libc::pollfd {
            fd: rfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: async-signal-safe calls on valid pointers.
        unsafe {
            libc::poll(&mut p, 1, 20_000);
            libc::_exit(code)
        }
    }
    (pid, w)
}

#[test]
fn wrappers_wait4_waitid() {
    both_ways(|| {
        let (pid, go) = child_exiting(7);
        assert_eq!(cancel::wait4(pid, libc::WNOHANG), Ok((0, 0)));
        assert_eq!(cancel::write(&go, b"x"), Ok(1));
        let (got, status) = cancel::wait4(pid, 0).unwrap();
        assert_eq!(got, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 7);
        assert_eq!(cancel::wait4(pid, 0), Err(Error::Os(libc::ECHILD)));

        let (pid, go) = child_exiting(5);
        let info = cancel::waitid(
            libc::P_PID,
            pid as libc::id_t,
            libc::WEXITED | libc::WNOHANG,
        )
        .unwrap();
        // SAFETY: si_pid reads the union member waitid fills (0: nothing yet).
        assert_eq!(unsafe { info.si_pid() }, 0);
        assert_eq!(cancel::write(&go, b"x"), Ok(1));
        let info = cancel::waitid(libc::P_PID, pid as libc::id_t, libc::WEXITED).unwrap();
        // SAFETY: waitid filled a SIGCHLD siginfo.
        unsafe {
            assert_eq!(info.si_pid(), pid);
            assert_eq!(info.si_status(), 5);
        }
        assert_eq!(info.si_code, libc::CLD_EXITED);

        // std's Command works too (the child is reaped by us, not std).
        #[allow(clippy::zombie_processes)] // reaped below, by cancel::wait4
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let (got, status) = cancel::wait4(child.id() as i32, 0).unwrap();
        assert_eq!(got, child.id() as i32);
        assert_eq!(libc::WEXITSTATUS(status), 3);
    });
}

#[test]
fn wrappers_ioctl_syscall_poll_epoll_sleep() {
    both_ways(|| {
        let (r, w) = pipe();
        assert_eq!(cancel::write(&w, b"abc"), Ok(3));
        let mut n: libc::c_int = -1;
        // SAFETY: FIONREAD writes one int into `n`.
        let rc = unsafe {
            cancel::ioctl(
                r.as_raw_fd(),
                libc::FIONREAD,
                (&mut n as *mut libc::c_int).cast(),
            )
        };
        assert_eq!((rc, n), (Ok(0), 3));
        // SAFETY: an ioctl the pipe does not support; nothing is written.
        let bad = unsafe { cancel::ioctl(r.as_raw_fd(), libc::TIOCGWINSZ, std::ptr::null_mut()) };
        assert_eq!(bad, Err(Error::Os(libc::ENOTTY)));

        // SAFETY: getpid/gettid take no arguments.
        unsafe {
            assert_eq!(
                cancel::syscall(libc::SYS_getpid, [0; 6]),
                Ok(std::process::id() as c_long)
            );
            assert_eq!(
                cancel::syscall(libc::SYS_gettid, [0; 6]),
                Ok(support::gettid() as c_long)
            );
            assert_eq!(cancel::syscall(-1, [0; 6]), Err(Error::Os(libc::ENOSYS)));
        }

        let mut fds = [
            libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            },
        ];
        assert_eq!(cancel::poll(&mut fds, Some(Duration::ZERO)), Ok(2));
        assert_eq!(fds[0].revents, libc::POLLIN);
        assert_eq!(fds[1].revents, libc::POLLOUT);
        let (r2, _w2) = pipe();
        let mut empty = [libc::pollfd {
            fd: r2.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let t0 = Instant::now();
        assert_eq!(
            cancel::poll(&mut empty, Some(Duration::from_millis(30))),
            Ok(0)
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        // SAFETY: sigemptyset initialises the set.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigemptyset(&mut mask) };
        assert_eq!(
            cancel::ppoll(&mut empty, Some(Duration::from_millis(1)), Some(&mask)),
            Ok(0)
        );

        // SAFETY: no memory arguments.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: a new descriptor we own.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let t0 = Instant::now();
        assert_eq!(
            cancel::epoll_wait(&ep, &mut events, Some(Duration::from_millis(30))),
            Ok(0)
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 77,
        };
        // SAFETY: the kernel reads one epoll_event.
        let rc =
            unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, r.as_raw_fd(), &mut ev) };
        assert_eq!(rc, 0);
        assert_eq!(
            cancel::epoll_wait(&ep, &mut events, Some(Duration::from_secs(10))),
            Ok(1)
        );
        let (e0, u0) = (events[0].events, events[0].u64);
        assert_eq!((e0, u0), (libc::EPOLLIN as u32, 77));
        assert_eq!(
            cancel::epoll_wait(&ep, &mut [], None),
            Err(Error::Os(libc::EINVAL))
        );

        let t0 = Instant::now();
        assert_eq!(cancel::sleep(Duration::from_millis(20)), Ok(()));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(cancel::sleep(Duration::ZERO), Ok(()));
        assert_eq!(cancel::testcancel(), Ok(()));
    });
}
