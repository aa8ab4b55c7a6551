//! Installing the cancel signal: range checks, refusing a signal the
//! application already handles, idempotence, and the flags and mask of the
//! installed handler. Alone in its test binary: installation is
//! process-wide, so the order of these steps matters.

use hangsafe::cancel::{self, CancelSignal, CancelToken, InstallError};
use std::time::Duration;

extern "C" fn app_handler(_: libc::c_int) {}

fn current_action(sig: i32) -> libc::sigaction {
    // SAFETY: queries the action into a zeroed struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut sa), 0);
        sa
    }
}

#[test]
fn install_rules_and_the_installed_handler() {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());

    // Not a real-time signal, or past SIGRTMAX: refused, nothing installed.
    match cancel::install(CancelSignal::Number(libc::SIGKILL)) {
        Err(InstallError::OutOfRange { signal, .. }) => assert_eq!(signal, libc::SIGKILL),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cancel::install(CancelSignal::RtMinPlus(max - min + 1)),
        Err(InstallError::OutOfRange { .. })
    ));
    assert_eq!(cancel::signal(), None);

    // The application already handles SIGRTMIN+7: refused with a clear
    // error, and the application's handler is left in place.
    let taken = min + 7;
    // SAFETY: installs a do-nothing handler on a real-time signal.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = app_handler as *const () as usize;
        assert_eq!(libc::sigaction(taken, &sa, std::ptr::null_mut()), 0);
    }
    let err = cancel::install(CancelSignal::RtMinPlus(7)).unwrap_err();
    assert!(
        matches!(err, InstallError::Occupied { signal } if signal == taken),
        "{err:?}"
    );
    assert!(err.to_string().contains("HANGSAFE_CANCEL_SIGNAL"), "{err}");
    assert_eq!(
        current_action(taken).sa_sigaction,
        app_handler as *const () as usize
    );
    assert_eq!(cancel::signal(), None);

    // A free one: installed once, with SA_SIGINFO | SA_RESTART | SA_ONSTACK
    // and a full mask; the same again is fine; a different one is refused.
    let sig = cancel::install(CancelSignal::RtMinPlus(5)).unwrap();
    assert_eq!(sig, min + 5);
    assert_eq!(cancel::signal(), Some(sig));
    assert_eq!(cancel::install(CancelSignal::Number(sig)).unwrap(), sig);
    assert!(matches!(
        cancel::install(CancelSignal::RtMinPlus(6)),
        Err(InstallError::AlreadyInstalled { signal }) if signal == sig
    ));
    let sa = current_action(sig);
    let want = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    assert_eq!(sa.sa_flags & want, want, "flags {:#x}", sa.sa_flags);
    for s in 1..=max {
        // SIGKILL/SIGSTOP cannot be blocked; glibc reserves the signals
        // between 32 and SIGRTMIN() for itself and `sigfillset` leaves them
        // out.
        if s == libc::SIGKILL || s == libc::SIGSTOP || (32..min).contains(&s) {
            continue;
        }
        assert_eq!(
            // SAFETY: sa_mask is an initialised sigset_t.
            unsafe { libc::sigismember(&sa.sa_mask, s) },
            1,
            "signal {s} not in the mask"
        );
    }

    // And cancels travel on it: a scope blocked in a read is interrupted.
    let before = cancel::metrics();
    let (r, _w) = std::io::pipe().unwrap();
    let token = CancelToken::new();
    let t2 = token.clone();
    let reader = std::thread::spawn(move || {
        let _scope = t2.enter().unwrap();
        let mut b = [0u8; 1];
        cancel::read(&r, &mut b)
    });
    std::thread::sleep(Duration::from_millis(50));
    token.cancel();
    assert_eq!(reader.join().unwrap(), Err(cancel::Error::Cancelled));
    let after = cancel::metrics();
    assert!(
        after.signals_sent > before.signals_sent,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.handler_runs > before.handler_runs,
        "{before:?} -> {after:?}"
    );
}
