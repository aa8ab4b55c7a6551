//! The timer thread survives a panic while firing an entry (H5 in
//! `docs/races.md`): the other entries of the same batch and every later
//! one still fire.

use super::{schedule, TimerKind, TimerTarget};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Panics whenever it fires: a bug in hangsafe's own bookkeeping.
struct Boom;

impl TimerTarget for Boom {
    fn fire(self: Arc<Self>, _: TimerKind) {
        panic!("H5: a timer entry's bookkeeping panicked");
    }
    fn pending(&self, _: TimerKind) -> bool {
        true
    }
}

/// Counts its firings.
struct Count(AtomicUsize);

impl TimerTarget for Count {
    fn fire(self: Arc<Self>, _: TimerKind) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn pending(&self, _: TimerKind) -> bool {
        true
    }
}

fn weak<T: TimerTarget + 'static>(t: &Arc<T>) -> Weak<dyn TimerTarget> {
    let w: Weak<T> = Arc::downgrade(t);
    w
}

#[test]
#[cfg_attr(miri, ignore = "the real timer thread, which never exits")]
fn h5_timer_survives_a_panicking_entry() {
    let boom = Arc::new(Boom);
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let now = Instant::now();
    // Same batch: the panicking entry fires first (earlier sequence).
    schedule(now, TimerKind::Deadline, weak(&boom));
    schedule(now, TimerKind::Deadline, weak(&count));
    // A later batch, and a second panic in between.
    schedule(
        now + Duration::from_millis(5),
        TimerKind::Deadline,
        weak(&boom),
    );
    schedule(
        now + Duration::from_millis(20),
        TimerKind::AbandonCheck,
        weak(&count),
    );
    let end = Instant::now() + Duration::from_secs(20);
    while count.0.load(Ordering::SeqCst) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        2,
        "the timer stopped firing"
    );
}
