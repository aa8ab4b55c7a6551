//! A [`mio`] poll loop driving a [`RunnerSet`] the plain way: no hooks,
//! just the set's file descriptor.
//!
//! The set's fd (an eventfd) becomes readable when a runner is decided. The
//! loop registers it with mio's `Poll` through `SourceFd`, under a mio
//! `Token` of its choice, sleeps in `poll` with the set's
//! [`poll_timeout`](RunnerSet::poll_timeout) (the time until the earliest
//! deadline, so a timed-out runner is reported on time even if the runner
//! timer thread is starved), then calls [`drain`](RunnerSet::drain), which
//! applies due deadlines and yields each decided runner's outcome exactly
//! once.
//!
//! mio registers fds edge-triggered. That is enough here: `drain` empties
//! the eventfd and every later completion writes it again, which is a new
//! edge; a wake-up that finds nothing (an edge whose notice an earlier
//! drain already took) costs one empty drain.
//!
//! The set's [`Token`](hangsafe::nexus::Token)s are `u64`s and fit a mio
//! `Token(usize)` on 64-bit targets, should a loop want to register one
//! source per runner; with one fd for the whole set, one mio token does.
//!
//! ```text
//! cargo run -p hangsafe --example mio_loop -- 600
//! ```
// Also compiled into tests/event_loops.rs through #[path], which uses its
// items: they are public for that crate.
#![allow(unreachable_pub)]

use hangsafe::nexus::RunnerSet;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

#[path = "probes/mod.rs"]
mod probes;

pub use probes::Summary;

/// The loop gives up (returning an incomplete summary) after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// The mio token of the set's fd.
const SET: Token = Token(0);

/// Spawns `probes` probes of the mix in `probes/mod.rs` into a set, runs a
/// mio loop on the set's fd until every awaited outcome has arrived (or
/// 30 s passed), and reports what arrived.
pub fn run(probes: usize) -> Summary {
    let set = RunnerSet::<u64>::new().expect("eventfd");
    let mut poll = Poll::new().expect("mio Poll");
    let fd = set.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), SET, Interest::READABLE)
        .expect("register the set's fd");
    let mut events = Events::with_capacity(16);
    let mut plan = probes::Plan::spawn(&set, probes);
    let limit = Instant::now() + LIMIT;

    while !plan.complete() && Instant::now() < limit {
        // Sleep until a completion or the earliest deadline (no deadline:
        // until a completion; the cap only bounds this example's run).
        let left = limit.saturating_duration_since(Instant::now());
        let timeout = set.poll_timeout().map_or(left, |d| d.min(left));
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
        }
        plan.wakeups += 1;
        // Only one source is registered; a loop with more would dispatch
        // on `event.token()` here.
        debug_assert!(events.iter().all(|e| e.token() == SET));
        plan.record(set.drain().expect("drain"));
        plan.cancel_hung(&set);
    }
    poll.registry()
        .deregister(&mut SourceFd(&fd))
        .expect("deregister");
    plan.finish(&set)
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let s = run(n);
    probes::print("mio poll loop", &s);
    assert!(s.complete && s.left == 0);
}
