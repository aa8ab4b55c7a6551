//! `hangsafe serve`'s parts besides the loop (which is `watch`'s): the
//! state the loop hands to the HTTP side ([`State`]), the HTTP server and
//! its routes ([`http`]), the status page ([`page`]), the on-demand
//! `/probe` ([`ondemand`]) and the systemd notifications ([`notify`]).
//!
//! The loop and the HTTP threads share one thing: the latest
//! [`Snapshot`], swapped in under a mutex held only for the swap or for
//! cloning an `Arc`. A request never waits for a probe, and the loop never
//! waits for a client.

pub(crate) mod http;
pub(crate) mod notify;
pub(crate) mod ondemand;
pub(crate) mod page;
pub(crate) mod query;

use crate::snapshot::Snapshot;
use std::sync::{Arc, Mutex};

/// What the loop publishes for the HTTP side.
#[derive(Debug)]
pub(crate) struct State {
    latest: Mutex<Arc<Snapshot>>,
}

impl State {
    /// The state with `first` as its snapshot.
    pub(crate) fn new(first: Snapshot) -> State {
        State {
            latest: Mutex::new(Arc::new(first)),
        }
    }

    /// Makes `snap` the latest.
    pub(crate) fn publish(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = snap;
    }

    /// The latest snapshot.
    pub(crate) fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.latest.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
