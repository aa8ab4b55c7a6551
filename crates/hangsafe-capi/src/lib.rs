//! The C ABI of hangsafe: `libhangsafe.so` and `libhangsafe.a`.
//!
//! Two headers describe it (in `include/`):
//!
//! * `runner.h` is a drop-in replacement for multipath-tools 0.15.0's
//!   `libmpathutil/runner.h`: [`get_runner`], [`check_runner`],
//!   [`release_runner`] and [`runner_state_name`], backed by
//!   [`hangsafe::runner`](hangsafe_core::runner).
//! * `hangsafe.h` is hangsafe's own C API (prefix `hs_`): [`hs_version`]
//!   and [`hs_runner_metrics`], and cancellable versions of the common
//!   blocking calls ([`hs_read`], [`hs_poll`], [`hs_openat4`], ...; module
//!   `cancel`) for C work running on a runner, runner sets (many runners
//!   behind one fd: [`hs_set_new`], [`hs_set_drain`], ...; module `set`),
//!   examine ([`hs_publish`], [`hs_runner_examine`], [`hs_set_examine`];
//!   module `examine`), and a process-shared robust mutex
//!   ([`hs_robust_mutex_lock`], ...; module `robust`). It includes
//!   `runner.h`.
//!
//! Rules every exported function follows:
//!
//! * Bad arguments are reported (return value plus `errno`, and a log line
//!   at error level); they never crash the process. The robust mutex
//!   functions report the pthread way instead: they return the error
//!   number and leave `errno` unchanged.
//! * No Rust panic crosses the boundary: the code paths are written not to
//!   panic, and each entry point that does more than return a constant
//!   also runs behind a panic barrier (module `barrier`) that turns a panic
//!   into an error return.
//! * The first call installs a small logger unless the process already
//!   has a `log` logger (module `logger`): stderr by default, or the
//!   application's callback ([`hs_set_log_callback`]), with identical
//!   repeated messages rate-limited (module `ratelimit`).

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
mod buffer;
mod cancel;
mod errno;
mod examine;
mod logger;
mod metrics;
mod osevent;
mod ratelimit;
mod robust;
mod runner;
mod set;
mod version;

pub use cancel::{
    hs_accept4, hs_connect, hs_ioctl3, hs_nanosleep, hs_openat4, hs_poll, hs_read, hs_testcancel,
    hs_write,
};
pub use examine::{hs_publish, hs_runner_examine, HS_PUBLISH_MAX};
pub use logger::{hs_set_log_callback, hs_set_log_level, HsLogFn};
pub use metrics::{hs_runner_metrics, HsRunnerMetrics};
pub use osevent::{
    hs_osevent_occurred_fd, hs_osevent_occurred_timeout, hs_set_attach, hs_set_detach,
    HsFdDeregisterFn, HsFdModifyFn, HsFdRegisterFn, HsOseventHooks, HsTimeoutModifyFn,
    HsTimeoutRegisterFn,
};
pub use robust::{
    hs_robust_mutex_consistent, hs_robust_mutex_init, hs_robust_mutex_lock,
    hs_robust_mutex_timedlock, hs_robust_mutex_trylock, hs_robust_mutex_unlock, HsRobustMutex,
};
pub use runner::{
    check_runner, get_runner, release_runner, runner_state_name, RunnerContext, RunnerFunc,
    RUNNER_CANCELLED, RUNNER_DEAD, RUNNER_DONE, RUNNER_IDLE, RUNNER_RUNNING,
};
pub use set::{
    hs_set_cancel, hs_set_drain, hs_set_examine, hs_set_fd, hs_set_free, hs_set_new,
    hs_set_release, hs_set_spawn, hs_set_timeout_ms, HsOutcomeFn, HsSet, HsToken,
};
pub use version::hs_version;

// The `.symver` directives that give every exported function its version
// node (see build.rs).
#[cfg(hangsafe_symver)]
include!(concat!(env!("OUT_DIR"), "/symver.rs"));
