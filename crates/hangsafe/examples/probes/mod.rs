//! The probe mix the event-loop examples drive, and the bookkeeping that
//! lets a test check what the loop received.
//!
//! Not an example itself (Cargo only builds `examples/*.rs` and
//! `examples/*/main.rs`): each example includes it with
//! `#[path = "probes/mod.rs"] mod probes;`, so it is self-contained, and
//! `tests/event_loops.rs` includes the examples.
//!
//! Probe `i` is chosen by `i % 6`:
//!
//! | `i % 6` | work | deadline | the loop | outcome |
//! |---|---|---|---|---|
//! | 0, 1 | returns `value(i)` at once | none, or 60 s | — | `Ok(value(i))` |
//! | 2 | sleeps 1–4 ms, returns `value(i)` | none | — | `Ok(value(i))` |
//! | 3 | hangs until cancelled | 20–60 ms | — | `Err(TimedOut)` |
//! | 4 | hangs until cancelled | none | cancels it after its first wake-up | `Err(Cancelled)` |
//! | 5 | returns at once, or hangs | none | releases it right after spawning | nothing, ever |
// Also compiled into tests/event_loops.rs through #[path], which uses its
// items: they are public for that crate.
#![allow(unreachable_pub)]
// Each example uses its own subset.
#![allow(dead_code)]

use hangsafe::nexus::{RunnerSet, Token};
use hangsafe::runner::{Builder, Ctx, RunError, State};
use std::time::Duration;

/// What each probe returns when it is left to finish.
pub fn value(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8
}

/// Work that hangs until its runner is cancelled. It waits in
/// [`hangsafe::cancel::sleep`], which a cancel interrupts at once, and
/// checks the flag between sleeps, so it also ends where the cancel signal
/// could not be installed.
pub fn hang(ctx: &Ctx<'_>) -> u64 {
    while !ctx.is_cancelled() {
        let _ = hangsafe::cancel::sleep(Duration::from_millis(10));
    }
    u64::MAX
}

/// A run's record: what each probe must produce and what the loop got.
#[derive(Debug)]
pub struct Summary {
    /// Every probe spawned, with the outcome it must have; `None` for a
    /// released probe, of which nothing may ever arrive.
    pub expected: Vec<(Token, Option<Result<u64, RunError>>)>,
    /// Everything [`RunnerSet::drain`] yielded, in order (one final drain
    /// after the loop ended included).
    pub arrived: Vec<(Token, Result<u64, RunError>)>,
    /// Runners still in the set at the end.
    pub left: usize,
    /// Times the loop woke up.
    pub wakeups: usize,
    /// Events the set dropped as stale, spurious or not due.
    pub ignored: usize,
    /// Whether every awaited outcome arrived before the loop's time limit.
    pub complete: bool,
}

/// The probes in flight, and what has arrived so far.
pub struct Plan {
    expected: Vec<(Token, Option<Result<u64, RunError>>)>,
    to_cancel: Vec<Token>,
    arrived: Vec<(Token, Result<u64, RunError>)>,
    awaited: usize,
    /// Times the loop woke up (the loop counts them).
    pub wakeups: usize,
    /// Events the set dropped (the loop counts them).
    pub ignored: usize,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").finish_non_exhaustive()
    }
}

impl Plan {
    /// Spawns `n` probes into `set` (releasing the `i % 6 == 5` ones at
    /// once).
    pub fn spawn(set: &RunnerSet<u64>, n: usize) -> Plan {
        let mut plan = Plan {
            expected: Vec::with_capacity(n),
            to_cancel: Vec::new(),
            arrived: Vec::new(),
            awaited: 0,
            wakeups: 0,
            ignored: 0,
        };
        for i in 0..n {
            let v = value(i);
            let (token, expect) = match i % 6 {
                0 | 1 => {
                    let b = if i % 4 == 0 {
                        // Never reached: it only arms (and replaces) timers.
                        Builder::new().timeout(Duration::from_secs(60))
                    } else {
                        Builder::new()
                    };
                    (set.spawn(b, move |_| v), Some(Ok(v)))
                }
                2 => {
                    let nap = Duration::from_millis(1 + (i % 4) as u64);
                    let work = move |_: &Ctx<'_>| {
                        std::thread::sleep(nap);
                        v
                    };
                    (set.spawn(Builder::new(), work), Some(Ok(v)))
                }
                3 => {
                    let b = Builder::new().timeout(Duration::from_millis(20 + (i % 5) as u64 * 10));
                    (set.spawn(b, hang), Some(Err(RunError::TimedOut)))
                }
                4 => (
                    set.spawn(Builder::new(), hang),
                    Some(Err(RunError::Cancelled)),
                ),
                _ => {
                    let t = if i % 12 == 5 {
                        // Likely decided already, its notice on its way.
                        set.spawn(Builder::new(), move |_| v)
                    } else {
                        set.spawn(Builder::new(), hang)
                    };
                    (t, None)
                }
            };
            let token = token.expect("spawn");
            if expect.is_none() {
                assert!(set.release(token), "a fresh token is live");
            }
            if i % 6 == 4 {
                plan.to_cancel.push(token);
            }
            plan.awaited += usize::from(expect.is_some());
            plan.expected.push((token, expect));
        }
        plan
    }

    /// Cancels the probes that wait for it (once). They hang until then,
    /// so every cancel takes effect.
    pub fn cancel_hung(&mut self, set: &RunnerSet<u64>) {
        for t in self.to_cancel.drain(..) {
            let st = set.cancel(t);
            assert_eq!(st, Some(State::Cancelled), "{t} hangs until cancelled");
        }
    }

    /// Records what one drain yielded.
    pub fn record(&mut self, outcomes: impl IntoIterator<Item = (Token, Result<u64, RunError>)>) {
        self.arrived.extend(outcomes);
    }

    /// Whether as many outcomes arrived as are awaited.
    pub fn complete(&self) -> bool {
        self.arrived.len() >= self.awaited
    }

    /// Drains once more (nothing should be left) and sums up.
    pub fn finish(mut self, set: &RunnerSet<u64>) -> Summary {
        let complete = self.complete();
        self.record(set.drain().expect("drain"));
        Summary {
            expected: self.expected,
            arrived: self.arrived,
            left: set.len(),
            wakeups: self.wakeups,
            ignored: self.ignored,
            complete,
        }
    }
}

/// Prints a summary the way each example's `main` does.
pub fn print(name: &str, s: &Summary) {
    let count =
        |f: fn(&Result<u64, RunError>) -> bool| s.arrived.iter().filter(|(_, o)| f(o)).count();
    println!(
        "{name}: {} probes, {} outcomes ({} ok, {} timed out, {} cancelled), {} released; \
         {} wake-ups, {} events ignored, {} left in the set, complete: {}",
        s.expected.len(),
        s.arrived.len(),
        count(|o| o.is_ok()),
        count(|o| *o == Err(RunError::TimedOut)),
        count(|o| *o == Err(RunError::Cancelled)),
        s.expected.iter().filter(|(_, e)| e.is_none()).count(),
        s.wakeups,
        s.ignored,
        s.left,
        s.complete
    );
}
