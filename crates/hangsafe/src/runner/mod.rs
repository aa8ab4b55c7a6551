//! Runners: work on a pooled, detached thread, with a deadline, that the
//! caller can walk away from at any moment.
//!
//! This is the design of multipath-tools' `libmpathutil/runner.h`
//! without its start/cancel use-after-free and without its thread leak on
//! early release, and with threads pooled instead of created per probe.
//!
//! * The work owns everything it uses (`F: Send + 'static`): the caller's
//!   memory is never touched after [`spawn`] returns.
//! * The handle ([`Runner`]) and the work share one reference-counted
//!   context created with both references taken before any thread can see
//!   it. There is no "not started" state and no start race.
//! * Releasing (dropping) the handle never blocks. It cancels the work if
//!   it still runs; the pool thread is reused as soon as the work returns.
//! * A deadline is enforced twice: lazily by [`Runner::check`], as in the
//!   multipath-tools runner, and proactively by a timer thread, so the work sees the cancel
//!   on time even if nobody polls.
//!
//! # States and transitions
//!
//! | from        | event                         | to          | result |
//! |-------------|-------------------------------|-------------|--------|
//! | *(spawn)*   | `spawn` returns               | `Running`   | –      |
//! | `Running`   | work returns `v`              | `Done`      | `Ok(v)` |
//! | `Running`   | work panics                   | `Dead`      | `Err(Panicked(msg))` |
//! | `Running`   | `cancel()`                    | `Cancelled` | `Err(Cancelled)` |
//! | `Running`   | deadline (timer or `check()`) | `Cancelled` | `Err(TimedOut)` |
//! | `Running`   | handle dropped                | `Cancelled` | – (nobody left to see it) |
//! | `Cancelled` | work returns or panics        | `Dead`      | unchanged: the cancel's error |
//! | `Done`      | cancel, deadline, drop        | `Done`      | `Ok(v)` (completion won) |
//! | `Dead`      | cancel, deadline, drop        | `Dead`      | unchanged |
//!
//! Every arrow is one compare-and-swap on a single atomic word, so of two
//! racing events exactly one wins. `Done` and `Dead` are final.
//! `Cancelled` is final *for the result* (no value will ever be produced)
//! but not for the thread: it becomes `Dead` when the work returns. Work
//! still running [`PoolBuilder::abandon_after`] after its cancel is counted
//! as abandoned (see [`Metrics::threads_abandoned`]).
//!
//! # Process-level behaviour
//!
//! * **fork.** `pthread_atfork` handlers (registered when the first pool
//!   thread or the timer starts) give a fork child a consistent state: its
//!   pools have no idle thread and count none alive (the parent's threads
//!   do not exist there), every key is free, the deadline timer restarts on
//!   the next deadline, and the parent's threads are never signalled. The
//!   prepare handler holds the pool-level locks across the fork, so none
//!   is inherited locked. Runners inherited from the parent name work that
//!   runs only in the parent: drop them in the child. After `_Fork` or
//!   `vfork` the child may only `exec` or `_exit`.
//! * **Signals.** Pool threads (idle or running work) and the timer thread
//!   block every asynchronous signal except the cancel signal, from their
//!   first instruction, so process-directed signals reach the
//!   application's threads; the fault signals (`SIGSEGV`, `SIGBUS`,
//!   `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`) and `SIGPIPE` stay
//!   unblocked. Before every
//!   job the mask is set back, so work that blocks signals cannot make its
//!   thread deaf to later cancels. If the application resets the cancel
//!   signal or installs its own handler on it, cancels become cooperative
//!   (never sent; logged once).
//! * **Not async-signal-safe:** [`spawn`], [`Builder::spawn`], everything
//!   on [`Runner`] (including `drop`), [`Pool`] and
//!   [`RunnerSet`](crate::nexus::RunnerSet) allocate or lock; never call
//!   them from a signal handler. The cancellable calls of
//!   [`cancel`](crate::cancel) are async-signal-safe.
//! * **A crash in work** (`SIGSEGV`, `abort`, stack overflow) ends the
//!   process as on any thread; a panic in work is caught and ends the
//!   runner [`State::Dead`].
//! * **Exit.** At process exit (return from `main`, `exit`), idle pool
//!   threads and the timer thread are stopped and joined within 2 s in
//!   total, so a leak checker (valgrind with `--show-possibly-lost=yes`)
//!   sees none of them. Threads running work are left alone and end with
//!   the process: exit never waits for work. `exit` from inside work, from
//!   a signal handler or during spawns cannot deadlock (locks are only
//!   tried until the bound).
//!
//! # Example
//!
//! ```
//! use hangsafe::runner::{Builder, RunError, State};
//! use std::time::Duration;
//!
//! // A probe that answers.
//! let r = Builder::new().timeout(Duration::from_secs(2)).spawn(|_| 40 + 2).unwrap();
//! assert_eq!(r.wait(), Ok(42));
//!
//! // A probe that hangs (cooperatively, here) past its deadline.
//! let r = Builder::new()
//!     .timeout(Duration::from_millis(10))
//!     .spawn(|ctx| while !ctx.is_cancelled() { std::thread::sleep(Duration::from_millis(1)) })
//!     .unwrap();
//! assert_eq!(r.wait(), Err(RunError::TimedOut));
//! ```

mod ctx;
mod error;
#[cfg(not(hangsafe_loom))]
mod keys;
mod metrics;
#[cfg(not(hangsafe_loom))]
mod pool;
#[cfg(not(hangsafe_loom))]
mod process;
mod shared;
mod state;
#[cfg(not(hangsafe_loom))]
mod timer;

#[cfg(all(test, hangsafe_loom))]
mod loom_tests;

pub use ctx::Ctx;
pub use error::{RunError, SpawnError};
pub use metrics::Metrics;
#[cfg(not(hangsafe_loom))]
pub use pool::{Pool, PoolBuilder};
pub use state::{CancelReason, State};

#[cfg(not(hangsafe_loom))]
pub use handle::{spawn, Builder, Runner};

#[cfg(not(hangsafe_loom))]
mod handle;
