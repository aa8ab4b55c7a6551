//! Completion notices: workers report "runner `t` is decided" to a set,
//! which sleeps on one fd.
//!
//! A notice is a token pushed on a queue; the first notice into an empty
//! queue also raises the signal (an eventfd). The consumer clears the
//! signal *then* empties the queue. Whatever a producer pushes after the
//! consumer's take finds the queue empty and raises the signal after the
//! clear, so a notice is never left in the queue with the fd unreadable
//! (R44, `loom_r44_notice_vs_take_loses_no_wakeup`). A raise whose notice
//! was taken before it is a spurious wake-up: the consumer finds nothing.

use super::token::Token;
use crate::sync::{lock, Mutex};

/// Something a consumer can sleep on: the eventfd, or a counter in models.
pub(crate) trait Signal: Send + Sync {
    /// Makes the consumer's fd readable.
    fn raise(&self);
    /// Makes it unreadable again.
    fn clear(&self);
}

#[cfg(not(hangsafe_loom))]
impl Signal for super::sys::EventFd {
    fn raise(&self) {
        super::sys::EventFd::raise(self);
    }
    fn clear(&self) {
        super::sys::EventFd::clear(self);
    }
}

pub(crate) struct Notifier<S> {
    signal: S,
    queue: Mutex<Vec<Token>>,
}

impl<S: Signal> Notifier<S> {
    pub(crate) fn new(signal: S) -> Self {
        Notifier {
            signal,
            queue: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn signal(&self) -> &S {
        &self.signal
    }

    /// Reports that the runner `t` is decided. Never blocks beyond the
    /// queue's short lock; called on worker, timer or releasing threads.
    pub(crate) fn notify(&self, t: Token) {
        let first = {
            let mut q = lock(&self.queue);
            q.push(t);
            q.len() == 1
        };
        if first {
            self.signal.raise();
        }
    }

    /// Moves every notice into `into`, clearing the signal first.
    pub(crate) fn take(&self, into: &mut Vec<Token>) {
        self.signal.clear();
        into.append(&mut lock(&self.queue));
    }
}
