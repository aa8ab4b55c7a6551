//! Suppression of identical repeated messages, syslog style.
//!
//! A caller that fails in a loop (95,904 refused `get_runner` calls were
//! seen to produce 95,904 identical lines) must not flood a daemon's log.
//! [`RepeatFilter`] lets the first occurrence of a message through, counts
//! identical ones (same level, same text) during a window that starts at
//! that first occurrence, and once the window is over reports the count as
//! a [`Repeat`] ("last message repeated N times: ...") before the next
//! message that passes through it. So a flood costs one line plus one
//! summary per window, and nothing is lost from the accounting: every
//! message is either passed, or counted in a later summary.
//!
//! Bounded and never blocking:
//!
//! * At most [`SLOTS`] distinct messages are tracked at once, each with its
//!   text cut to [`MAX_TEXT`] bytes (for the summary; identity uses a hash
//!   of the whole text). A new message when all slots are busy evicts the
//!   oldest one (its summary, if any, is reported at once).
//! * The table is behind a mutex held only for a few comparisons, never
//!   during output. A thread that finds it held does not wait: its message
//!   passes unfiltered.
//!
//! The filter knows nothing about where messages go; the logger
//! (module `logger`) uses one for every sink.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

/// How many distinct messages are tracked at once.
pub(crate) const SLOTS: usize = 16;

/// How much of a message's text is kept for its summary (bytes).
pub(crate) const MAX_TEXT: usize = 256;

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Output it.
    Pass,
    /// Drop it: it repeats a message passed less than a window ago (it is
    /// counted, and reported in a later [`Repeat`]).
    Suppress,
}

/// A summary to output: `count` identical messages were suppressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repeat {
    /// The level the messages had (opaque to the filter).
    pub(crate) level: u8,
    /// Their text (cut to [`MAX_TEXT`] bytes, on a character boundary).
    pub(crate) text: String,
    /// How many were suppressed.
    pub(crate) count: u64,
}

impl Repeat {
    /// The summary line, in syslog's words.
    pub(crate) fn message(&self) -> String {
        let times = if self.count == 1 { "time" } else { "times" };
        format!(
            "last message repeated {} {times}: {}",
            self.count, self.text
        )
    }
}

/// One tracked message.
struct Slot {
    key: u64,
    level: u8,
    text: String,
    since: Instant,
    suppressed: u64,
}

impl Slot {
    fn repeat(self) -> Option<Repeat> {
        (self.suppressed > 0).then_some(Repeat {
            level: self.level,
            text: self.text,
            count: self.suppressed,
        })
    }
}

/// A table of recently passed messages; see the module documentation.
pub(crate) struct RepeatFilter {
    window: Duration,
    slots: Mutex<[Option<Slot>; SLOTS]>,
}

impl RepeatFilter {
    /// A filter that suppresses repeats for `window` after a message
    /// passes.
    pub(crate) const fn new(window: Duration) -> Self {
        Self {
            window,
            slots: Mutex::new([const { None }; SLOTS]),
        }
    }

    /// Decides about message `text` at `level`, seen at `now`. Summaries
    /// that are due (windows that ended, or an evicted slot) are appended
    /// to `due`; the caller outputs them before the message if it passes.
    pub(crate) fn check(
        &self,
        level: u8,
        text: &str,
        now: Instant,
        due: &mut Vec<Repeat>,
    ) -> Decision {
        let mut slots = match self.slots.try_lock() {
            Ok(guard) => guard,
            // Nothing panics while holding the lock, but a poisoned table
            // is still a valid table.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Decision::Pass,
        };
        let key = key_of(level, text);
        for slot in slots.iter_mut() {
            let ended = slot
                .as_ref()
                .is_some_and(|s| now.saturating_duration_since(s.since) >= self.window);
            if ended {
                due.extend(slot.take().and_then(Slot::repeat));
            }
        }
        if let Some(slot) = slots.iter_mut().flatten().find(|s| s.key == key) {
            slot.suppressed = slot.suppressed.saturating_add(1);
            return Decision::Suppress;
        }
        let free = match slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                let oldest = (0..SLOTS)
                    .min_by_key(|&i| slots[i].as_ref().map(|s| s.since))
                    .unwrap_or(0);
                due.extend(slots[oldest].take().and_then(Slot::repeat));
                oldest
            }
        };
        slots[free] = Some(Slot {
            key,
            level,
            text: cut(text, MAX_TEXT).to_owned(),
            since: now,
            suppressed: 0,
        });
        Decision::Pass
    }
}

fn key_of(level: u8, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    level.hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(5);

    fn check(f: &RepeatFilter, level: u8, text: &str, at: Instant) -> (Decision, Vec<Repeat>) {
        let mut due = Vec::new();
        let d = f.check(level, text, at, &mut due);
        (d, due)
    }

    #[test]
    fn h36_a_flood_is_one_line_and_one_summary_per_window() {
        let f = RepeatFilter::new(W);
        let t0 = Instant::now();
        let mut passed = 0u64;
        let mut summarized = 0u64;
        // 95,904 identical messages over 12 s: windows at 0, 5, 10 s.
        for i in 0..95_904u64 {
            let at = t0 + Duration::from_micros(i * 125);
            let (d, due) = check(&f, 3, "get_runner: cannot start a runner", at);
            passed += u64::from(d == Decision::Pass);
            summarized += due.iter().map(|r| r.count).sum::<u64>();
        }
        assert_eq!(passed, 3);
        // A different message after the last window ends flushes the rest.
        let (d, due) = check(&f, 3, "other", t0 + Duration::from_secs(20));
        assert_eq!(d, Decision::Pass);
        summarized += due.iter().map(|r| r.count).sum::<u64>();
        assert_eq!(
            passed + summarized,
            95_904,
            "every message is accounted for"
        );
        assert_eq!(
            due[0].message(),
            format!(
                "last message repeated {} times: get_runner: cannot start a runner",
                due[0].count
            )
        );
    }

    #[test]
    fn level_and_text_both_identify_a_message() {
        let f = RepeatFilter::new(W);
        let t = Instant::now();
        assert_eq!(check(&f, 3, "a", t).0, Decision::Pass);
        assert_eq!(check(&f, 4, "a", t).0, Decision::Pass);
        assert_eq!(check(&f, 3, "b", t).0, Decision::Pass);
        assert_eq!(check(&f, 3, "a", t).0, Decision::Suppress);
        assert_eq!(check(&f, 4, "a", t).0, Decision::Suppress);
    }

    #[test]
    fn interleaved_repeats_are_suppressed_too() {
        let f = RepeatFilter::new(W);
        let t = Instant::now();
        let mut passed = 0;
        for i in 0..1000 {
            let text = if i % 2 == 0 { "a" } else { "b" };
            passed += usize::from(check(&f, 3, text, t).0 == Decision::Pass);
        }
        assert_eq!(passed, 2);
    }

    #[test]
    fn memory_is_bounded_and_eviction_reports() {
        let f = RepeatFilter::new(W);
        let t = Instant::now();
        assert_eq!(check(&f, 3, "first", t).0, Decision::Pass);
        assert_eq!(check(&f, 3, "first", t).0, Decision::Suppress);
        let long = "x".repeat(10 * MAX_TEXT);
        let mut reported = Vec::new();
        for i in 0..SLOTS {
            let (d, due) = check(&f, 3, &format!("{long}{i}"), t + Duration::from_millis(1));
            assert_eq!(d, Decision::Pass);
            reported.extend(due);
        }
        // "first" was the oldest: evicted, with its one repeat reported.
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].count, 1);
        assert_eq!(reported[0].text, "first");
        let slots = f.slots.lock().unwrap();
        assert!(slots.iter().flatten().all(|s| s.text.len() <= MAX_TEXT));
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn a_held_table_never_blocks() {
        let f = RepeatFilter::new(W);
        let t = Instant::now();
        assert_eq!(check(&f, 3, "a", t).0, Decision::Pass);
        let _held = f.slots.lock().unwrap();
        // Would be suppressed, but the table is busy: passes at once.
        assert_eq!(check(&f, 3, "a", t).0, Decision::Pass);
    }
}
