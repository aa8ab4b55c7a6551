//! No leaked descriptors under random cancellation (R16 for calls that
//! create a descriptor: a descriptor the kernel created is always
//! returned, never dropped on the floor by a cancel; a cancelled call
//! created none).
//!
//! An `accept4` loop with a client connecting in a loop, and an `openat`
//! loop on a FIFO whose writer opens at random times, each inside scopes
//! that a canceller cancels at random moments. Afterwards the number of
//! entries in `/proc/self/fd` is back at its baseline.
//!
//! Own test binary: descriptor counts are process-wide, so its tests run
//! one at a time (SERIAL) and nothing else opens descriptors meanwhile.

mod support;

use hangsafe::cancel::{self, CancelToken, Error};
use std::ffi::CString;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{eventually, fd_count, spin_for, Rng};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes the baseline after everything lazily created (the cancel
/// signal's installation, this thread's cancel word) exists.
fn baseline() -> usize {
    let t = CancelToken::new();
    std::thread::spawn(move || drop(t.enter().unwrap()))
        .join()
        .unwrap();
    fd_count()
}

/// Runs `attempt` (one blocking call creating a descriptor) in scopes
/// cancelled at random moments, `scopes` times; returns (descriptors
/// obtained, scopes ended by a cancel).
fn under_random_cancels<F>(scopes: u64, seed: u64, attempt: F) -> (u64, u64)
where
    F: Fn() -> Result<OwnedFd, Error> + Send + 'static,
{
    let (tok_tx, tok_rx) = mpsc::channel::<CancelToken>();
    let canceller = std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        while let Ok(t) = tok_rx.recv() {
            match rng.below(10) {
                0..=5 => spin_for(Duration::from_micros(rng.below(100))),
                _ => std::thread::sleep(Duration::from_micros(rng.below(1500))),
            }
            t.cancel();
        }
    });
    let worker = std::thread::spawn(move || {
        let (mut got, mut cancelled) = (0u64, 0u64);
        for _ in 0..scopes {
            let token = CancelToken::new();
            tok_tx.send(token.clone()).unwrap();
            let _scope = token.enter().unwrap();
            loop {
                match attempt() {
                    Ok(fd) => {
                        got += 1;
                        drop(fd);
                    }
                    Err(Error::Cancelled) => {
                        cancelled += 1;
                        break;
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
        (got, cancelled)
    });
    let r = worker.join().unwrap();
    canceller.join().unwrap();
    r
}

#[test]
fn r16_accept4_under_random_cancels_leaks_no_fd() {
    let _g = serial();
    let base = baseline();
    let scopes = hangsafe_testkit::env::or("HANGSAFE_FD_SCOPES", 2000u64);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("fd leak (accept4): {scopes} scopes, HANGSAFE_SEED={seed}, baseline {base} fds");
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, cseed) = (Arc::clone(&stop), rng.next());
    let client = std::thread::spawn(move || {
        let mut rng = Rng::new(cseed);
        let mut connects = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                connects += 1;
                drop(s);
            }
            spin_for(Duration::from_micros(rng.below(300)));
        }
        connects
    });
    let l2 = Arc::clone(&listener);
    let t0 = Instant::now();
    let (accepted, cancelled) = under_random_cancels(scopes, rng.next(), move || {
        let (fd, from) = cancel::accept4(&*l2, 0)?;
        assert_eq!(
            from.as_socket_addr().map(|a| a.ip()),
            Some(addr.ip()),
            "accept4 reported a wrong peer: {from:?}"
        );
        Ok(fd)
    });
    stop.store(true, Ordering::Relaxed);
    let connects = client.join().unwrap();
    drop(listener);
    eprintln!(
        "fd leak (accept4): {accepted} accepted of {connects} connects, {cancelled} cancelled, {:?}",
        t0.elapsed()
    );
    assert_eq!(cancelled, scopes);
    assert!(accepted > 0, "nothing was accepted");
    let ok = eventually(Duration::from_secs(20), || fd_count() == base);
    assert!(ok, "descriptors leaked: {} now, {base} before", fd_count());
}

#[test]
fn r16_fifo_openat_under_random_cancels_leaks_no_fd() {
    let _g = serial();
    let base = baseline();
    let scopes = hangsafe_testkit::env::or("HANGSAFE_FD_SCOPES", 2000u64);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("fd leak (openat): {scopes} scopes, HANGSAFE_SEED={seed}, baseline {base} fds");
    let fifo = support::mkfifo("fd-leak");
    let path = fifo.0.clone();
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, wseed) = (Arc::clone(&stop), rng.next());
    let writer = std::thread::spawn(move || {
        let mut rng = Rng::new(wseed);
        let mut opens = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(rng.below(500)));
            // Succeeds only while a reader has the FIFO open or is
            // blocked opening it.
            // SAFETY: `c` is a NUL-terminated path.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            };
            if fd >= 0 {
                opens += 1;
                // SAFETY: a new descriptor we own.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                spin_for(Duration::from_micros(rng.below(100)));
                drop(fd);
            } else {
                let e = io::Error::last_os_error();
                assert_eq!(e.raw_os_error(), Some(libc::ENXIO), "writer open: {e}");
            }
        }
        opens
    });
    let t0 = Instant::now();
    let (opened, cancelled) = under_random_cancels(scopes, rng.next(), move || {
        cancel::openat(None, &path, libc::O_RDONLY, 0)
    });
    stop.store(true, Ordering::Relaxed);
    let opens = writer.join().unwrap();
    eprintln!(
        "fd leak (openat): {opened} opened (writer opened {opens} times), {cancelled} cancelled, {:?}",
        t0.elapsed()
    );
    assert_eq!(cancelled, scopes);
    assert!(opened > 0, "the FIFO was never opened");
    drop(fifo);
    let ok = eventually(Duration::from_secs(20), || fd_count() == base);
    assert!(ok, "descriptors leaked: {} now, {base} before", fd_count());
}
