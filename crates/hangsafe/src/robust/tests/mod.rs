//! Tests of the robust mutex in real forked processes.
//!
//! Each test maps anonymous shared memory, forks children that lock the
//! mutex through [`FailKernel`] (the real kernel plus fail points that
//! SIGKILL the process at a named step of the protocol), and checks the
//! outcome from the parent. Children only run the protocol, atomics and
//! raw syscalls, then `_exit`: nothing that could deadlock after `fork`
//! in the multi-threaded test harness. Test names carry the race IDs of
//! `docs/races.md`.

mod destruction;
mod edges;
mod failpoints;
mod liveness;
mod storm;
mod support;
