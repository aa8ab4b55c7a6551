//! A [`RunnerSet`] in a tokio program, through [`AsyncFd`].
//!
//! The set's fd is an eventfd that becomes readable when a runner is
//! decided, so tokio's reactor can watch it: `AsyncFd` takes the set
//! itself (a `RunnerSet` implements `AsRawFd`) and gives it back with
//! `into_inner`. (`AsyncFd::register_with_interest` is `unsafe` since
//! tokio 1.54: the caller vouches that the fd stays open and the same
//! while registered, which the set's owned eventfd does.) A task then
//! loops:
//!
//! 1. `readable().await`, bounded by `tokio::time::timeout` with the set's
//!    [`poll_timeout`](RunnerSet::poll_timeout), so that a deadline is
//!    applied on time even if the runner timer thread is starved;
//! 2. `clear_ready()` on the guard, **before** draining: a completion
//!    after the drain emptied the eventfd writes it again, which tokio sees
//!    as new readiness; clearing after the drain could erase it;
//! 3. [`drain`](RunnerSet::drain), which never blocks.
//!
//! The work runs on hangsafe's pool, not on tokio's threads: a hung probe
//! occupies no runtime worker, and the loop can run on a current-thread
//! runtime.
//!
//! ```text
//! cargo run -p hangsafe --example tokio_asyncfd -- 600
//! ```
// Also compiled into tests/event_loops.rs through #[path], which uses its
// items: they are public for that crate.
#![allow(unreachable_pub)]

use hangsafe::nexus::RunnerSet;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

#[path = "probes/mod.rs"]
mod probes;

pub use probes::Summary;

/// The loop gives up (returning an incomplete summary) after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// The loop, as a future: runs until every awaited outcome of the probes
/// in `set` has arrived (or 30 s passed).
pub async fn drive(set: RunnerSet<u64>, mut plan: probes::Plan) -> Summary {
    // SAFETY: the fd is the set's eventfd, which the set owns and keeps
    // open, unchanged, for its whole life; the `AsyncFd` owns the set
    // until `into_inner` hands it back, so the fd outlives the
    // registration.
    let afd = unsafe { AsyncFd::register_with_interest(set, Interest::READABLE) }
        .expect("register the set's fd with tokio");
    let limit = Instant::now() + LIMIT;
    while !plan.complete() && Instant::now() < limit {
        let left = limit.saturating_duration_since(Instant::now());
        let wait = afd.get_ref().poll_timeout().map_or(left, |d| d.min(left));
        if let Ok(ready) = tokio::time::timeout(wait, afd.readable()).await {
            ready.expect("readable").clear_ready();
        }
        plan.wakeups += 1;
        plan.record(afd.get_ref().drain().expect("drain"));
        plan.cancel_hung(afd.get_ref());
    }
    let set = afd.into_inner();
    plan.finish(&set)
}

/// Spawns `probes` probes of the mix in `probes/mod.rs` and drives them
/// with [`drive`] on a current-thread runtime.
pub fn run(probes: usize) -> Summary {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let set = RunnerSet::<u64>::new().expect("eventfd");
    let plan = probes::Plan::spawn(&set, probes);
    // The reactor must exist before `AsyncFd::with_interest` registers.
    rt.block_on(drive(set, plan))
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let s = run(n);
    probes::print("tokio AsyncFd loop", &s);
    assert!(s.complete && s.left == 0);
}
