//! Stale-proof events: generational tokens, foreign event loops, and sets
//! of runners behind one file descriptor (libxl's hook nexus).
//!
//! An application's event loop may deliver a notice arbitrarily late: after
//! the registration it was meant for was removed, after its slot was reused
//! for something else, after the fd number was closed and reused. libxl
//! learned this twice (first for fds, then for timeouts) and fixed it with a
//! layer of indirection, the "hook nexus", plus a re-check of every event.
//! This module is that design, with generational [`Token`]s in place of
//! nexus pointers:
//!
//! * [`Token`] — slot index and generation in one `u64`: fits epoll's data,
//!   mio's `Token`, a C `void *`. A stale token never resolves; a slot
//!   whose generation would wrap is retired ([`Registry`]).
//! * [`Hooks`] — the application's loop: fd register/modify/deregister,
//!   timeout register/modify (libxl's `osevent` hooks). Called one at a
//!   time, never re-entrantly.
//! * [`Nexus`] — the registrations and the entry points
//!   [`occurred_fd`](Nexus::occurred_fd) and
//!   [`occurred_timeout`](Nexus::occurred_timeout), which drop stale
//!   tokens, mismatched fds, fds that are not ready when re-checked with a
//!   zero-timeout `poll`, and timeouts that are not due. Timeouts follow
//!   libxl's final rule: withdrawal is "fire as soon as possible", and the
//!   slot is recycled only when that last event has arrived.
//! * [`RunnerSet`] — many runners, each named by a token, behind one
//!   eventfd that is readable when any of them is decided;
//!   [`drain`](RunnerSet::drain) yields each outcome exactly once and
//!   nothing for a released runner.
//!
//! The races handled are R38–R46 in `docs/races.md`.
//!
//! # Example: an epoll loop
//!
//! ```
//! use hangsafe::nexus::RunnerSet;
//! use hangsafe::runner::Builder;
//! use std::os::fd::AsRawFd;
//!
//! let set = RunnerSet::new().unwrap();
//! let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
//! let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
//! unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, set.as_raw_fd(), &mut ev) };
//!
//! let tokens: Vec<_> = (0..10u64)
//!     .map(|i| set.spawn(Builder::new(), move |_| i * i).unwrap())
//!     .collect();
//! let mut results = std::collections::HashMap::new();
//! while results.len() < tokens.len() {
//!     let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
//!     unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 8, 1000) };
//!     for (token, outcome) in set.drain().unwrap() {
//!         assert!(results.insert(token, outcome.unwrap()).is_none(), "exactly once");
//!     }
//! }
//! assert_eq!(results[&tokens[3]], 9);
//! unsafe { libc::close(ep) };
//! ```

#[cfg(not(hangsafe_loom))]
mod error;
mod guard;
mod hooks;
#[allow(clippy::module_inception)] // `nexus::nexus` holds `Nexus`, where a reader looks for it
mod nexus;
mod notify;
mod registry;
#[cfg(not(hangsafe_loom))]
mod set;
#[cfg(not(hangsafe_loom))]
mod sys;
mod token;

#[cfg(all(test, hangsafe_loom))]
mod loom_tests;
#[cfg(test)]
mod model_tests;

#[cfg(not(hangsafe_loom))]
pub use error::{Rejected, SetError};
pub use hooks::{Hooks, Interest, Ready};
pub use nexus::{Error, Fired, Ignored, Metrics, Nexus};

/// The former name of [`Error`].
#[deprecated(since = "0.2.0", note = "renamed to `hangsafe::nexus::Error`")]
pub type NexusError = Error;

/// The former name of [`Metrics`].
#[deprecated(since = "0.2.0", note = "renamed to `hangsafe::nexus::Metrics`")]
pub type NexusStats = Metrics;
pub use registry::{Full, Registry, MAX_GENERATION};
#[cfg(not(hangsafe_loom))]
pub use set::{Drain, RunnerSet};
pub use token::Token;
