//! Monotonic timestamps as plain integers, and the standard progress state.

use super::pod::Pod;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide origin of every [`Stamp`]: the first time any stamp was
/// taken or converted.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// A monotonic timestamp that is [`Pod`] data: nanoseconds since a
/// process-wide base [`Instant`] (fixed the first time a stamp is used).
///
/// `Instant` is opaque and may not be published; a `Stamp` can, and
/// converts back with [`instant`](Self::instant). It covers 584 years from
/// the base; an `Instant` before the base maps to the base.
///
/// ```
/// use hangsafe::examine::Stamp;
/// use std::time::{Duration, Instant};
///
/// let t = Instant::now();
/// let s = Stamp::from_instant(t);
/// assert_eq!(s.instant(), t.max(Stamp::ZERO.instant())); // lossless past the base
/// assert!(Stamp::now() >= s);
/// assert!(s.elapsed() < Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Stamp(u64);

// SAFETY: `#[repr(transparent)]` over a `u64`: no padding, every bit
// pattern valid, no pointer.
unsafe impl Pod for Stamp {}

impl Stamp {
    /// The base instant itself.
    pub const ZERO: Stamp = Stamp(0);

    /// Now, on the monotonic clock.
    pub fn now() -> Stamp {
        let b = base();
        Stamp::since(b, Instant::now())
    }

    /// The stamp of `t` (the base, if `t` is earlier).
    pub fn from_instant(t: Instant) -> Stamp {
        Stamp::since(base(), t)
    }

    fn since(base: Instant, t: Instant) -> Stamp {
        let ns = t.saturating_duration_since(base).as_nanos();
        Stamp(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the base.
    pub fn from_nanos(ns: u64) -> Stamp {
        Stamp(ns)
    }

    /// Nanoseconds since the base.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// The `Instant` this stamp stands for.
    pub fn instant(self) -> Instant {
        let b = base();
        b.checked_add(Duration::from_nanos(self.0)).unwrap_or(b)
    }

    /// Time from this stamp until now (zero if it is in the future).
    pub fn elapsed(self) -> Duration {
        Instant::now().saturating_duration_since(self.instant())
    }
}

/// The longest phase name a [`Progress`] holds, in bytes of UTF-8.
pub const PHASE_LEN: usize = 24;

/// The standard published state: which phase the work is in, since when,
/// and how far along it is. What a "watch" view shows for each in-flight
/// probe: *phase* and *time in phase*.
///
/// The work publishes it with [`Ctx::enter_phase`](crate::runner::Ctx::enter_phase)
/// and [`Ctx::set_progress`](crate::runner::Ctx::set_progress) (or builds
/// one and calls [`Ctx::publish`](crate::runner::Ctx::publish)); readers
/// get it with `examine::<Progress, _>`.
///
/// Layout (`#[repr(C)]`, 48 bytes, no padding): the phase name as UTF-8,
/// NUL-padded to [`PHASE_LEN`] bytes; the [`Stamp`] of entering the phase;
/// the `Stamp` of the latest update; two `u32` counters, `done` of `total`
/// (0: unknown), meaning whatever the phase says (retries, paths, blocks).
/// 48 bytes is what the examine cell reads from a single cache line (see
/// [`CAPACITY`](super::CAPACITY)), which keeps reads cheap even while the
/// worker publishes flat out; a work that needs 64-bit counters publishes
/// its own [`Pod`] type.
///
/// ```
/// use hangsafe::examine::Progress;
///
/// let p = Progress::new("SG_IO").with_counts(3, 8);
/// assert_eq!(p.phase(), "SG_IO");
/// assert_eq!((p.done(), p.total()), (3, 8));
/// assert!(p.updated_at() >= p.entered_at());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Progress {
    phase: [u8; PHASE_LEN],
    entered: Stamp,
    updated: Stamp,
    done: u32,
    total: u32,
}

const _: () = assert!(std::mem::size_of::<Progress>() == PHASE_LEN + 2 * 8 + 2 * 4);
const _: () = assert!(std::mem::size_of::<Progress>() <= super::pod::ONE_LINE);
const _: () = assert!(std::mem::align_of::<Progress>() == 8);

// SAFETY: `#[repr(C)]` with a `[u8; 24]`, two 8-byte fields, two 4-byte
// fields: every field starts at a multiple of its alignment and the size
// is exactly the sum of the fields (both checked at compile time just
// above), so there is no padding; every field is `Pod`, so every bit pattern is valid (`phase`
// is decoded leniently: invalid UTF-8 is cut off, never trusted); no
// pointers.
unsafe impl Pod for Progress {}

impl Progress {
    /// Entering `phase` now, with both counters at 0.
    ///
    /// A name longer than [`PHASE_LEN`] bytes is cut at the last character
    /// boundary that fits; a NUL ends it early.
    pub fn new(phase: &str) -> Progress {
        let now = Stamp::now();
        Progress::at(phase, now)
    }

    /// Entering `phase` at `entered`, with both counters at 0.
    pub fn at(phase: &str, entered: Stamp) -> Progress {
        let mut bytes = [0u8; PHASE_LEN];
        let mut end = phase.len().min(PHASE_LEN);
        while !phase.is_char_boundary(end) {
            end -= 1;
        }
        bytes[..end].copy_from_slice(&phase.as_bytes()[..end]);
        Progress {
            phase: bytes,
            entered,
            updated: entered,
            done: 0,
            total: 0,
        }
    }

    /// The same phase with the counters set to `done` of `total`. The
    /// update stamp is left alone ([`Ctx::set_progress`] sets it to now).
    ///
    /// [`Ctx::set_progress`]: crate::runner::Ctx::set_progress
    #[must_use]
    pub fn with_counts(mut self, done: u32, total: u32) -> Progress {
        self.done = done;
        self.total = total;
        self
    }

    /// The same state with its update stamp set to `at`.
    #[must_use]
    pub fn updated(mut self, at: Stamp) -> Progress {
        self.updated = at;
        self
    }

    /// The phase name. Bytes after the first NUL are ignored, and so is
    /// anything from the first invalid UTF-8 sequence on (which only a
    /// hand-made value can contain).
    pub fn phase(&self) -> &str {
        let len = self.phase.iter().position(|&b| b == 0).unwrap_or(PHASE_LEN);
        let bytes = &self.phase[..len];
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            // `valid_up_to` is a boundary of a valid prefix, so this
            // second conversion cannot fail.
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    /// When the phase was entered.
    pub fn entered(&self) -> Stamp {
        self.entered
    }

    /// When the phase was entered, as an `Instant`.
    pub fn entered_at(&self) -> Instant {
        self.entered.instant()
    }

    /// When this state was published (its latest update).
    pub fn updated_at(&self) -> Instant {
        self.updated.instant()
    }

    /// How long the work has been in this phase, as of now.
    pub fn time_in_phase(&self) -> Duration {
        self.entered.elapsed()
    }

    /// How long since this state was published, as of now: a worker stuck
    /// inside a call shows a growing figure.
    pub fn since_update(&self) -> Duration {
        self.updated.elapsed()
    }

    /// The first counter: how much of the phase is done.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// The second counter: how much there is in all (0: unknown).
    pub fn total(&self) -> u32 {
        self.total
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("phase", &self.phase())
            .field("time_in_phase", &self.time_in_phase())
            .field("done", &self.done)
            .field("total", &self.total)
            .finish()
    }
}

impl fmt::Display for Progress {
    /// `SG_IO for 1.2s (3/8)`; the counters only when either is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for {:.1?}", self.phase(), self.time_in_phase())?;
        if self.done != 0 || self.total != 0 {
            write!(f, " ({}/{})", self.done, self.total)?;
        }
        Ok(())
    }
}
