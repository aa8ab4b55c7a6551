//! Loom models of the stale-proof event protocol: token reuse against late
//! `occurred` calls, libxl's final timeout rule, and completion notices
//! against the set's drain.
//!
//! The nexus and registry are plain data behind the owner's mutex (here
//! loom's), the loop's knowledge of a token travels through an atomic
//! "mailbox" as it would through epoll's data, and the eventfd is a
//! counter. Loom explores every interleaving of the owner, the loop and
//! the workers. Run by `.ci/run` with the other models.

use super::hooks::{Hooks, Interest, Ready};
use super::nexus::{Fired, Ignored, Nexus};
use super::notify::{Notifier, Signal};
use super::registry::Registry;
use super::token::Token;
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use loom::thread;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// A loop that learns each registration's token through a mailbox.
struct Mailbox(Arc<AtomicU64>);

impl Hooks for Mailbox {
    fn fd_register(&mut self, _: RawFd, _: Interest, t: Token) -> io::Result<()> {
        self.0.store(t.as_u64(), Ordering::Release);
        Ok(())
    }
    fn fd_modify(&mut self, _: RawFd, _: Interest, _: Token) -> io::Result<()> {
        Ok(())
    }
    fn fd_deregister(&mut self, _: RawFd, _: Token) {}
    fn timeout_register(&mut self, _: Instant, t: Token) -> io::Result<()> {
        self.0.store(t.as_u64(), Ordering::Release);
        Ok(())
    }
    fn timeout_modify(&mut self, _: Instant, _: Token) -> io::Result<()> {
        Ok(())
    }
}

fn ready(_: RawFd, _: Interest) -> Result<Ready, i32> {
    Ok(Ready(libc::POLLIN))
}

/// R38: the owner registers fd 5 ("first"), deregisters it and registers
/// it again ("second") in the same, only slot, while the loop delivers an
/// event with whatever token it last learned, arbitrarily late. An event
/// carrying the first token is never dispatched to the second
/// registration.
#[test]
fn loom_r38_token_reuse_vs_late_occurred_fd() {
    loom::model(|| {
        let mailbox = Arc::new(AtomicU64::new(0));
        let owner = Arc::new(Mutex::new((
            Nexus::<&'static str>::with_limits(u32::MAX, 1),
            Mailbox(Arc::clone(&mailbox)),
        )));
        let first = {
            let mut g = lock(&owner);
            let (n, h) = &mut *g;
            n.register_fd(h, 5, Interest::READABLE, "first").unwrap()
        };
        let lp = {
            let (owner, mailbox) = (Arc::clone(&owner), Arc::clone(&mailbox));
            thread::spawn(move || {
                let t = Token::from_u64(mailbox.load(Ordering::Acquire)).unwrap();
                let mut g = lock(&owner);
                let (n, _) = &mut *g;
                (t, n.occurred_fd_with(t, 5, libc::POLLIN, ready))
            })
        };
        let second = {
            let mut g = lock(&owner);
            let (n, h) = &mut *g;
            assert!(n.deregister_fd(h, first));
            n.register_fd(h, 5, Interest::READABLE, "second").unwrap()
        };
        assert_eq!(first.index(), second.index(), "the slot was reused");
        let (t, r) = lp.join().unwrap();
        match r {
            Ok(Fired::Fd { key, .. }) => {
                assert_eq!(key, if t == first { "first" } else { "second" });
                assert!(t != first || key == "first");
            }
            Err(Ignored::Stale) => assert_eq!(t, first, "a live token was dropped"),
            other => panic!("{other:?}"),
        }
    });
}

/// R39: libxl's final rule. The owner withdraws a timeout and wants to
/// register a new one while the loop's event for the old one is in flight.
/// The only slot is not reused until that event has arrived; the event is
/// never taken for the new registration; each registration gets exactly
/// one event.
#[test]
fn loom_r39_withdrawn_timeout_slot_waits_for_the_late_event() {
    loom::model(|| {
        let mailbox = Arc::new(AtomicU64::new(0));
        let owner = Arc::new(Mutex::new((
            Nexus::<u8>::with_limits(u32::MAX, 1),
            Mailbox(Arc::clone(&mailbox)),
        )));
        let now = Instant::now();
        let old = {
            let mut g = lock(&owner);
            let (n, h) = &mut *g;
            n.register_timeout(h, now, 1).unwrap()
        };
        // The loop fires the registration it knows of, exactly once.
        let lp = {
            let owner = Arc::clone(&owner);
            thread::spawn(move || {
                let mut g = lock(&owner);
                let (n, h) = &mut *g;
                n.occurred_timeout(h, old, now)
            })
        };
        let second = {
            let mut g = lock(&owner);
            let (n, h) = &mut *g;
            n.withdraw_timeout(h, old);
            n.register_timeout(h, now, 2).ok()
        };
        let event = lp.join().unwrap();
        match (event, second) {
            // The event came first: it fired the old registration, and
            // the slot was free for the new one.
            (Ok(Fired::Timeout { key: 1, .. }), Some(t)) => assert_ne!(t, old),
            // Withdrawn first: the slot stayed reserved, so the new
            // registration had to wait for the late event...
            (Err(Ignored::Withdrawn), None) => {
                let mut g = lock(&owner);
                let (n, h) = &mut *g;
                // ...which has now arrived: the slot is free again.
                let t = n.register_timeout(h, now, 2).unwrap();
                assert_eq!(t.index(), old.index());
                assert_ne!(t, old);
            }
            other => panic!("impossible interleaving outcome: {other:?}"),
        }
    });
}

/// The eventfd as a counter.
struct Counter(AtomicU64);

impl Signal for Counter {
    fn raise(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
    fn clear(&self) {
        self.0.swap(0, Ordering::AcqRel);
    }
}

/// R44: two workers report completions while the set drains. After all
/// of them, either every notice was taken or the fd is still readable: a
/// notice is never stranded behind an unreadable fd, and none is taken
/// twice.
#[test]
fn loom_r44_notice_vs_take_loses_no_wakeup() {
    loom::model(|| {
        let n = Arc::new(Notifier::new(Counter(AtomicU64::new(0))));
        let a = Token::from_parts(0, 1).unwrap();
        let b = Token::from_parts(1, 1).unwrap();
        let workers: Vec<_> = [a, b]
            .into_iter()
            .map(|t| {
                let n = Arc::clone(&n);
                thread::spawn(move || n.notify(t))
            })
            .collect();
        let mut got = Vec::new();
        n.take(&mut got);
        for w in workers {
            w.join().unwrap();
        }
        if got.len() < 2 {
            assert!(
                n.signal().0.load(Ordering::Acquire) > 0,
                "notices {got:?} taken, the rest stranded behind an unreadable fd"
            );
            n.take(&mut got);
        }
        got.sort();
        assert_eq!(got, vec![a, b], "each notice exactly once");
    });
}

/// R43: a runner is released (its token removed, the slot reused by a new
/// runner) while its completion notice is on its way. The drain's lookup
/// of the late notice never yields the new runner.
#[test]
fn loom_r43_released_runners_notice_never_resolves() {
    loom::model(|| {
        let n = Arc::new(Notifier::new(Counter(AtomicU64::new(0))));
        let set = Arc::new(Mutex::new(Registry::<&'static str>::with_limits(
            u32::MAX,
            1,
        )));
        let old = lock(&set).insert("released").unwrap();
        let worker = {
            let n = Arc::clone(&n);
            thread::spawn(move || n.notify(old))
        };
        // The owner releases and reuses the slot, racing the notice.
        let new = {
            let mut s = lock(&set);
            s.remove(old);
            s.insert("new").unwrap()
        };
        worker.join().unwrap();
        let mut got = Vec::new();
        n.take(&mut got);
        let s = lock(&set);
        for t in got {
            assert_eq!(t, old);
            assert_eq!(s.get(t), None, "a released runner's notice resolved");
        }
        assert_eq!(s.get(new), Some(&"new"));
    });
}
