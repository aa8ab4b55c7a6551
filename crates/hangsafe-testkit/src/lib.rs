//! hangsafe's test kit: the helpers that the core crate's unit and
//! integration tests, its criterion benchmarks and the CLI's
//! `hangsafe bench` share, kept once.
//!
//! * [`process`]: fork a child that runs a closure and `_exit`s, wait for
//!   it with a limit, an anonymous shared mapping it inherits;
//! * [`env`](mod@env): the `HANGSAFE_*` knobs that size tests and benchmarks;
//! * [`fd`]: eventfds and a `poll` on a descriptor plus a cancel eventfd;
//! * [`peers`]: the designs hangsafe is measured against (the C
//!   thread-per-runner, the poll + eventfd cancellable read, the eventfd
//!   cancel latency), so that the criterion benchmarks and `hangsafe bench`
//!   measure against the same peers;
//! * [`stats`]: interleaved A/B rounds, quantiles and time formatting;
//! * [`wait`]: bounded waiting for a condition.
//!
//! The kit does not depend on `hangsafe` (it is a dev-dependency of the
//! core crate's own unit tests, which must not see a second copy of the
//! crate); the peers are written against libc only, and what involves
//! hangsafe stays with the caller.
//!
//! `publish = false`: nothing here is a public API.

pub mod env;
pub mod fd;
pub mod peers;
pub mod process;
pub mod stats;
pub mod wait;
