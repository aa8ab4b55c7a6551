//! The auto-trait bounds of every public handle type, pinned (H1).
//!
//! The positive half lives here: each handle that may cross or be shared
//! between threads is checked to be `Send`/`Sync` at compile time, so a
//! field added later cannot silently take that away. The negative half
//! (types that must *not* be `Send` or `Sync`) is pinned by the
//! `compile_fail` doctests on the types themselves (`Runner`, `Ctx`,
//! `Scope`, `RobustMutexGuard`): see `docs/races.md`, H1.

use hangsafe::cancel::{self, CancelSignal, CancelToken, InstallError, ScopeError};
use hangsafe::examine::{self, Examiner, Progress, Stamp, Ticket};
use hangsafe::nexus::{
    self, Drain, Fired, Full, Ignored, Interest, Nexus, Ready, Registry, Rejected, RunnerSet,
    SetError, Token,
};
use hangsafe::robust::{
    Acquired, LockError, OwnerDead, RawRobustMutex, RegionError, RegionOptions, RobustMutex,
    RobustMutexGuard, SharedRegion,
};
use hangsafe::runner::{
    Builder, CancelReason, Metrics, Pool, PoolBuilder, RunError, Runner, SpawnError, State,
};
use std::cell::Cell;

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn h1_runner_handles_are_send_and_sync() {
    assert_send_sync::<Runner<u64>>();
    assert_send_sync::<Runner<String>>();
    assert_send_sync::<Runner<Vec<u8>>>();
    assert_send_sync::<Runner<()>>();
    // A value that may move between threads but not be shared: the handle
    // may move (it hands the value over by value), but is not `Sync` (its
    // `result()` would share `&T`); see the doctest on `Runner`.
    assert_send::<Runner<Cell<u64>>>();
    assert_send_sync::<Pool>();
    assert_send_sync::<PoolBuilder>();
    assert_send_sync::<Builder>();
    assert_send_sync::<Metrics>();
    assert_send_sync::<State>();
    assert_send_sync::<CancelReason>();
    assert_send_sync::<RunError>();
    assert_send_sync::<SpawnError>();
}

#[test]
fn h1_cancel_handles_are_send_and_sync() {
    assert_send_sync::<CancelToken>();
    assert_send_sync::<CancelSignal>();
    assert_send_sync::<cancel::Metrics>();
    assert_send_sync::<InstallError>();
    assert_send_sync::<ScopeError>();
    assert_send_sync::<hangsafe::cancel::Error>();
    assert_send_sync::<hangsafe::Cancelled>();
}

#[test]
fn h1_nexus_handles_are_send_and_sync() {
    assert_send_sync::<Token>();
    assert_send_sync::<Registry<u64>>();
    assert_send_sync::<Nexus<u64>>();
    assert_send_sync::<nexus::Metrics>();
    assert_send_sync::<RunnerSet<u64>>();
    // The set never lends out a `&T`: its runners live behind its mutex and
    // their values leave by value, so `T: Send` is enough to share it.
    assert_send_sync::<RunnerSet<Cell<u64>>>();
    assert_send_sync::<Drain<u64>>();
    assert_send_sync::<Rejected<u64>>();
    assert_send_sync::<SetError>();
    assert_send_sync::<Full>();
    assert_send_sync::<Interest>();
    assert_send_sync::<Ready>();
    assert_send_sync::<Ignored>();
    assert_send_sync::<nexus::Error>();
    assert_send_sync::<Fired<u64>>();
}

#[test]
fn h1_examine_handles_are_send_and_sync() {
    assert_send_sync::<Examiner>();
    assert_send_sync::<Ticket<u64>>();
    assert_send_sync::<Ticket<Progress>>();
    assert_send_sync::<Progress>();
    assert_send_sync::<Stamp>();
    assert_send_sync::<examine::Error>();
}

#[test]
fn h1_robust_handles_are_send_and_sync() {
    assert_send_sync::<SharedRegion<u64>>();
    assert_send_sync::<SharedRegion<[u32; 4]>>();
    assert_send_sync::<RobustMutex<u64>>();
    assert_send_sync::<RawRobustMutex>();
    assert_send_sync::<RegionOptions>();
    assert_send_sync::<RegionError>();
    assert_send_sync::<Acquired>();
    assert_send_sync::<hangsafe::robust::Error>();
    // A guard may be shared (it lends `&T`), never sent: the lock belongs
    // to the locking thread's TID (the doctest on `RobustMutexGuard`).
    assert_sync::<RobustMutexGuard<'static, u64>>();
    assert_sync::<LockError<RobustMutexGuard<'static, u64>>>();
    assert_sync::<OwnerDead<RobustMutexGuard<'static, u64>>>();
}
