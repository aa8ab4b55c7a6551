//! Pure-logic tests of the token registry and the nexus: a property test
//! against a reference model, and the libxl races with a scripted loop and
//! a scripted re-check. No syscalls, so they also run under Miri.

use super::hooks::{Hooks, Interest, Ready};
use super::nexus::{Fired, Ignored, Nexus};
use super::registry::{Full, Registry};
use super::token::Token;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The reference: what a registry must look like from outside, kept in
/// the simplest structures (no slab, no free list).
#[derive(Default)]
struct Model {
    live: HashMap<Token, u64>,
    /// Every token ever issued.
    issued: HashSet<Token>,
    /// How many tokens each index has issued.
    per_index: HashMap<u32, u32>,
}

impl Model {
    fn exhausted(&self, max_gen: u32) -> usize {
        self.per_index
            .iter()
            .filter(|(i, n)| **n >= max_gen && !self.live.keys().any(|t| t.index() == **i))
            .count()
    }

    /// Full iff every slot that may exist does, and each is live or spent.
    fn full(&self, max_gen: u32, max_slots: usize) -> bool {
        self.per_index.len() == max_slots
            && self
                .per_index
                .iter()
                .all(|(i, n)| *n >= max_gen || self.live.keys().any(|t| t.index() == *i))
    }
}

fn run_property(seed: u64, max_gen: u32, max_slots: usize, steps: usize) {
    let mut rng = Rng(seed | 1);
    let mut reg: Registry<u64> = Registry::with_limits(max_gen, max_slots);
    let mut m = Model::default();
    let mut stale: Vec<Token> = Vec::new();
    let mut saw_full = false;
    for step in 0..steps {
        let ctx = format!("seed {seed:#x} step {step}");
        match rng.below(10) {
            // insert
            0..=3 => {
                let v = rng.next();
                let expect_full = m.full(max_gen, max_slots);
                match reg.insert(v) {
                    Ok(t) => {
                        assert!(!expect_full, "{ctx}: inserted into a full registry");
                        assert!(m.issued.insert(t), "{ctx}: token {t:?} issued twice");
                        assert!(t.generation() >= 1 && t.generation() <= max_gen, "{ctx}");
                        assert!((t.index() as usize) < max_slots, "{ctx}");
                        *m.per_index.entry(t.index()).or_default() += 1;
                        m.live.insert(t, v);
                    }
                    Err(Full) => {
                        assert!(expect_full, "{ctx}: Full with room left");
                        saw_full = true;
                    }
                }
            }
            // remove a live token
            4..=6 if !m.live.is_empty() => {
                let t = *m.live.keys().nth(rng.below(m.live.len())).unwrap();
                assert_eq!(reg.remove(t), m.live.remove(&t), "{ctx}");
                stale.push(t);
            }
            // a late call with a stale token: never resolves, changes nothing
            7 if !stale.is_empty() => {
                let t = stale[rng.below(stale.len())];
                assert_eq!(reg.get(t), None, "{ctx}: stale {t:?} resolved");
                assert!(!reg.contains(t), "{ctx}");
                assert_eq!(reg.remove(t), None, "{ctx}: stale {t:?} removed something");
            }
            // a forged token (never issued)
            8 => {
                let t = Token::from_parts(
                    rng.below(max_slots + 2) as u32,
                    1 + rng.below(max_gen as usize + 1) as u32,
                )
                .unwrap();
                if !m.live.contains_key(&t) {
                    assert_eq!(reg.get(t), None, "{ctx}: forged {t:?} resolved");
                }
            }
            // look up every live token
            _ => {
                for (t, v) in &m.live {
                    assert_eq!(reg.get(*t), Some(v), "{ctx}");
                }
            }
        }
        assert_eq!(reg.len(), m.live.len(), "{ctx}");
        assert_eq!(reg.retired(), m.exhausted(max_gen), "{ctx}: retired count");
        let mut from_iter: Vec<_> = reg.iter().map(|(t, v)| (t, *v)).collect();
        let mut from_model: Vec<_> = m.live.iter().map(|(t, v)| (*t, *v)).collect();
        from_iter.sort();
        from_model.sort();
        assert_eq!(from_iter, from_model, "{ctx}: iter");
    }
    if max_gen <= 4 && steps >= 2000 {
        assert!(
            saw_full,
            "seed {seed:#x}: exhaustion never reached; the test is too weak"
        );
    }
}

/// R42, property: the registry against the reference model, with the
/// generation limit forced down so that slots run out and retire.
#[test]
fn r42_registry_matches_reference_model_with_forced_exhaustion() {
    let steps = if cfg!(miri) { 400 } else { 4000 };
    for seed in 0..(if cfg!(miri) { 2 } else { 24 }) {
        let s = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(seed + 1);
        run_property(s, 2, 4, steps);
        run_property(s ^ 1, 3, 8, steps);
    }
}

/// The same with the default generation limit (no exhaustion) and many
/// slots: reuse is heavy, stale tokens are everywhere.
#[test]
fn r38_registry_matches_reference_model_under_reuse() {
    let steps = if cfg!(miri) { 400 } else { 6000 };
    for seed in 0..(if cfg!(miri) { 2 } else { 8 }) {
        run_property(0xdead_beef_u64.wrapping_mul(seed + 3), u32::MAX, 16, steps);
    }
}

// ---- the nexus with a scripted loop ------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    FdRegister(RawFd, Token),
    FdModify(RawFd, Token),
    FdDeregister(RawFd, Token),
    TimeoutRegister(Token),
    TimeoutModify(Token),
}

#[derive(Default)]
struct Script {
    calls: Vec<Call>,
    fail_next: bool,
}

impl Script {
    fn result(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.fail_next) {
            Err(io::Error::from_raw_os_error(libc::ENOMEM))
        } else {
            Ok(())
        }
    }
}

impl Hooks for Script {
    fn fd_register(&mut self, fd: RawFd, _: Interest, t: Token) -> io::Result<()> {
        self.calls.push(Call::FdRegister(fd, t));
        self.result()
    }
    fn fd_modify(&mut self, fd: RawFd, _: Interest, t: Token) -> io::Result<()> {
        self.calls.push(Call::FdModify(fd, t));
        self.result()
    }
    fn fd_deregister(&mut self, fd: RawFd, t: Token) {
        self.calls.push(Call::FdDeregister(fd, t));
    }
    fn timeout_register(&mut self, _: Instant, t: Token) -> io::Result<()> {
        self.calls.push(Call::TimeoutRegister(t));
        self.result()
    }
    fn timeout_modify(&mut self, _: Instant, t: Token) -> io::Result<()> {
        self.calls.push(Call::TimeoutModify(t));
        self.result()
    }
}

fn ready(_: RawFd, _: Interest) -> Result<Ready, i32> {
    Ok(Ready(libc::POLLIN))
}

fn idle(_: RawFd, _: Interest) -> Result<Ready, i32> {
    Ok(Ready(0))
}

/// R38: an fd event delivered after its registration was removed and the
/// slot reused for a new registration is dropped; the new one still works.
#[test]
fn r38_late_fd_event_after_slot_reuse_is_dropped() {
    let mut h = Script::default();
    let mut n = Nexus::with_limits(u32::MAX, 1); // one slot: reuse is certain
    let old = n.register_fd(&mut h, 5, Interest::READABLE, "old").unwrap();
    assert!(n.deregister_fd(&mut h, old));
    let new = n.register_fd(&mut h, 5, Interest::READABLE, "new").unwrap();
    assert_eq!(old.index(), new.index());
    assert_eq!(
        n.occurred_fd_with(old, 5, libc::POLLIN, ready),
        Err(Ignored::Stale)
    );
    assert!(matches!(
        n.occurred_fd_with(new, 5, libc::POLLIN, ready),
        Ok(Fired::Fd { key: "new", .. })
    ));
}

/// R40: an event reported with another fd than the registration's (the
/// fd number was closed and reused, the loop mixed them up) is dropped;
/// the re-check runs on the registered fd only.
#[test]
fn r40_fd_mismatch_is_dropped_before_any_recheck() {
    let mut h = Script::default();
    let mut n = Nexus::new();
    let t = n.register_fd(&mut h, 7, Interest::READABLE, ()).unwrap();
    let r = n.occurred_fd_with(t, 8, libc::POLLIN, |_, _| panic!("re-checked a foreign fd"));
    assert_eq!(
        r,
        Err(Ignored::FdMismatch {
            registered: 7,
            reported: 8
        })
    );
}

/// R41: the loop's revents are not trusted: only what the re-check finds
/// now is passed on, masked to what poll can report for the interest.
#[test]
fn r41_only_current_revents_are_dispatched() {
    let mut h = Script::default();
    let mut n = Nexus::new();
    let t = n.register_fd(&mut h, 3, Interest::READABLE, ()).unwrap();
    assert_eq!(
        n.occurred_fd_with(t, 3, libc::POLLIN, idle),
        Err(Ignored::NotReady)
    );
    let r = n.occurred_fd_with(t, 3, libc::POLLOUT, |_, i| {
        assert_eq!(
            i,
            Interest::READABLE,
            "re-check asks for the registered interest"
        );
        Ok(Ready(libc::POLLHUP))
    });
    assert_eq!(
        r,
        Ok(Fired::Fd {
            key: (),
            fd: 3,
            ready: Ready(libc::POLLHUP)
        })
    );
    assert_eq!(
        n.occurred_fd_with(t, 3, libc::POLLIN, |_, _| Err(libc::ENOMEM)),
        Err(Ignored::CheckFailed(libc::ENOMEM))
    );
}

/// R39: a withdrawn timeout is modified to fire at once, its slot is not
/// recycled until its last event arrives, that event is dropped, and only
/// then can the slot carry a new registration.
#[test]
fn r39_withdrawn_timeout_slot_recycled_only_after_its_last_event() {
    let mut h = Script::default();
    let mut n = Nexus::with_limits(u32::MAX, 1);
    let far = Instant::now() + Duration::from_secs(3600);
    let t = n.register_timeout(&mut h, far, 1).unwrap();
    assert!(n.withdraw_timeout(&mut h, t));
    assert!(!n.withdraw_timeout(&mut h, t), "withdrawn once");
    assert_eq!(h.calls.last(), Some(&Call::TimeoutModify(t)));
    // The only slot is still reserved: a new registration must wait.
    assert!(matches!(
        n.register_timeout(&mut h, far, 2),
        Err(super::nexus::Error::Full)
    ));
    assert_eq!(n.metrics().withdrawn, 1);
    // The loop's late event: dropped, and the slot comes back.
    assert_eq!(
        n.occurred_timeout(&mut h, t, Instant::now()),
        Err(Ignored::Withdrawn)
    );
    let t2 = n.register_timeout(&mut h, far, 2).unwrap();
    assert_eq!(t2.index(), t.index());
    // A duplicate of the old event (a buggy loop) is stale, not a fire of t2.
    assert_eq!(
        n.occurred_timeout(&mut h, t, Instant::now() + Duration::from_secs(7200)),
        Err(Ignored::Stale)
    );
    assert_eq!(n.timeout_deadline(t2), Some(far));
}

/// R45: a timeout event before its deadline is dropped, and the spent
/// registration is renewed for the same deadline under a new token; the
/// old token is stale, the renewed one fires when due.
#[test]
fn r45_early_timeout_is_dropped_and_renewed() {
    let mut h = Script::default();
    let mut n = Nexus::new();
    let now = Instant::now();
    let due = now + Duration::from_secs(10);
    let t = n.register_timeout(&mut h, due, 'd').unwrap();
    let r = n.occurred_timeout(&mut h, t, now);
    let Err(Ignored::NotDue { renewed }) = r else {
        panic!("{r:?}")
    };
    assert_ne!(renewed, t);
    assert_eq!(h.calls.last(), Some(&Call::TimeoutRegister(renewed)));
    assert_eq!(n.occurred_timeout(&mut h, t, due), Err(Ignored::Stale));
    assert_eq!(
        n.occurred_timeout(&mut h, renewed, due),
        Ok(Fired::Timeout {
            key: 'd',
            deadline: due
        })
    );
    // Fired once: the registration is over.
    assert_eq!(
        n.occurred_timeout(&mut h, renewed, due),
        Err(Ignored::Stale)
    );
    assert_eq!(n.metrics().timeouts, 0);

    // If the renewal's hook fails, the event fires rather than being lost.
    let t = n.register_timeout(&mut h, due, 'e').unwrap();
    h.fail_next = true;
    assert_eq!(
        n.occurred_timeout(&mut h, t, now),
        Ok(Fired::Timeout {
            key: 'e',
            deadline: due
        })
    );
}

/// A failed registration hook leaves nothing behind, and the token the
/// loop may have seen is stale.
#[test]
fn failed_hooks_leave_no_registration() {
    let mut h = Script::default();
    let mut n: Nexus<()> = Nexus::new();
    h.fail_next = true;
    assert!(n.register_fd(&mut h, 4, Interest::READABLE, ()).is_err());
    let Some(Call::FdRegister(_, seen)) = h.calls.last().cloned() else {
        panic!()
    };
    assert_eq!(
        n.occurred_fd_with(seen, 4, libc::POLLIN, ready),
        Err(Ignored::Stale)
    );
    h.fail_next = true;
    assert!(n.register_timeout(&mut h, Instant::now(), ()).is_err());
    assert_eq!(n.metrics(), super::nexus::Metrics::default());
    // A failed modify keeps the registration as it was.
    let t = n.register_fd(&mut h, 4, Interest::READABLE, ()).unwrap();
    h.fail_next = true;
    assert!(n.modify_fd(&mut h, t, Interest::WRITABLE).is_err());
    n.occurred_fd_with(t, 4, 0, |_, i| {
        assert_eq!(i, Interest::READABLE);
        Ok(Ready(libc::POLLIN))
    })
    .unwrap();
}

/// `deregister_all` deregisters fds and withdraws timeouts, keeping the
/// withdrawn slots until their last events.
#[test]
fn deregister_all_follows_the_final_rule() {
    let mut h = Script::default();
    let mut n = Nexus::new();
    let f = n.register_fd(&mut h, 9, Interest::READABLE, 0).unwrap();
    let t = n.register_timeout(&mut h, Instant::now(), 1).unwrap();
    n.deregister_all(&mut h);
    assert!(h.calls.contains(&Call::FdDeregister(9, f)));
    assert!(h.calls.contains(&Call::TimeoutModify(t)));
    assert_eq!(n.metrics().fds, 0);
    assert_eq!(n.metrics().withdrawn, 1);
    assert_eq!(
        n.occurred_timeout(&mut h, t, Instant::now()),
        Err(Ignored::Withdrawn)
    );
    assert_eq!(n.metrics().timeouts, 0);
}
