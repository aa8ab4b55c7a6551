//! The C ABI of `crates/hangsafe-capi`, compiled from its own sources as a
//! library of the fuzz package.
//!
//! The `hangsafe-capi` package builds only a `cdylib` and a `staticlib`:
//! its library is named `hangsafe` (for `libhangsafe.so`/`.a`), and an
//! `rlib` of that name would collide with the core crate's `rlib` in the
//! workspace's target directory. Linking the `staticlib` into a fuzz target
//! would bring a second copy of Rust's standard library and no coverage
//! instrumentation. So this crate includes the very same module files, in
//! the same layout (each module reaches the others as `crate::…`), and
//! re-exports the exported functions. If the C ABI gains a module, it is
//! added here too: the fuzz build then fails until it is.
#![allow(missing_docs, dead_code)]
#![deny(unsafe_op_in_unsafe_fn)]

#[path = "../../crates/hangsafe-capi/src/barrier.rs"]
mod barrier;
#[path = "../../crates/hangsafe-capi/src/buffer.rs"]
mod buffer;
#[path = "../../crates/hangsafe-capi/src/cancel.rs"]
mod cancel;
#[path = "../../crates/hangsafe-capi/src/errno.rs"]
mod errno;
#[path = "../../crates/hangsafe-capi/src/examine.rs"]
mod examine;
#[path = "../../crates/hangsafe-capi/src/logger.rs"]
mod logger;
#[path = "../../crates/hangsafe-capi/src/metrics.rs"]
mod metrics;
#[path = "../../crates/hangsafe-capi/src/osevent.rs"]
mod osevent;
#[path = "../../crates/hangsafe-capi/src/ratelimit.rs"]
mod ratelimit;
#[path = "../../crates/hangsafe-capi/src/robust.rs"]
mod robust;
#[path = "../../crates/hangsafe-capi/src/runner.rs"]
mod runner;
#[path = "../../crates/hangsafe-capi/src/set.rs"]
mod set;
#[path = "../../crates/hangsafe-capi/src/version.rs"]
mod version;

pub use cancel::{
    hs_accept4, hs_connect, hs_ioctl3, hs_nanosleep, hs_openat4, hs_poll, hs_read, hs_testcancel,
    hs_write,
};
pub use examine::{hs_publish, hs_runner_examine, HS_PUBLISH_MAX};
pub use metrics::{hs_runner_metrics, HsRunnerMetrics};
pub use robust::{
    hs_robust_mutex_consistent, hs_robust_mutex_init, hs_robust_mutex_lock,
    hs_robust_mutex_timedlock, hs_robust_mutex_trylock, hs_robust_mutex_unlock, HsRobustMutex,
};
pub use runner::{
    check_runner, get_runner, release_runner, runner_state_name, RunnerContext, RunnerFunc,
    RUNNER_CANCELLED, RUNNER_DEAD, RUNNER_DONE, RUNNER_IDLE, RUNNER_RUNNING,
};
pub use osevent::{
    hs_osevent_occurred_fd, hs_osevent_occurred_timeout, hs_set_attach, hs_set_detach,
    HsOseventHooks,
};
pub use set::{
    hs_set_cancel, hs_set_drain, hs_set_examine, hs_set_fd, hs_set_free, hs_set_new,
    hs_set_release, hs_set_spawn, hs_set_timeout_ms, HsOutcomeFn, HsSet, HsToken,
};
pub use version::hs_version;
