//! A slab addressed by generational [`Token`]s.

use super::token::Token;
use std::fmt;

/// The most generations a slot goes through by default before it is
/// retired: every generation a `u32` can name.
pub const MAX_GENERATION: u32 = u32::MAX;

/// The most slots a registry holds by default (the index is a `u32`).
pub(crate) const MAX_SLOTS: usize = u32::MAX as usize + 1;

/// A slab of values addressed by generational [`Token`]s: O(1) insert,
/// lookup and removal, and a removed value's token never resolves again.
///
/// Freed slots are reused (most recently freed first), each time under the
/// next generation. A slot whose generation has reached the limit is
/// *retired* when freed: it is never handed out again, so a stale token
/// cannot come back to life when its generation would wrap. A registry
/// that has retired every slot it may create refuses inserts with
/// [`Full`]. The default limit is [`MAX_GENERATION`]: a slot can be
/// reused four billion times before it is retired, one `Vec` entry lost.
///
/// The registry is a plain data structure (`&mut self` to change it): the
/// owner decides how to share it. [`RunnerSet`](super::RunnerSet) keeps one
/// behind a short-held mutex.
///
/// ```
/// use hangsafe::nexus::Registry;
///
/// let mut reg = Registry::new();
/// let a = reg.insert("probe sda").unwrap();
/// assert_eq!(reg.get(a), Some(&"probe sda"));
/// assert_eq!(reg.remove(a), Some("probe sda"));
///
/// // The slot is reused under a new generation: the old token is stale.
/// let b = reg.insert("probe sdb").unwrap();
/// assert_eq!(a.index(), b.index());
/// assert_eq!(reg.get(a), None);
/// assert_eq!(reg.get(b), Some(&"probe sdb"));
/// ```
pub struct Registry<T> {
    slots: Vec<Slot<T>>,
    /// Indices of free, non-retired slots; reused last-in first-out.
    free: Vec<u32>,
    len: usize,
    retired: usize,
    max_generation: u32,
    max_slots: usize,
}

struct Slot<T> {
    /// The generation of the current occupant, or of the next one if the
    /// slot is free.
    generation: u32,
    value: Option<T>,
}

/// The registry cannot take another value: every slot it may create is in
/// use or retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token registry full: every slot is in use or retired")
    }
}

impl std::error::Error for Full {}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry::new()
    }
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .field("retired", &self.retired)
            .finish()
    }
}

impl<T> Registry<T> {
    /// An empty registry with the default limits.
    pub fn new() -> Self {
        Registry::with_limits(MAX_GENERATION, MAX_SLOTS)
    }

    /// An empty registry whose slots are retired after `max_generation`
    /// generations and which creates at most `max_slots` slots.
    ///
    /// Small limits exist to test exhaustion: with `max_generation = 2`
    /// each slot serves two occupants and is then retired.
    ///
    /// ```
    /// use hangsafe::nexus::{Full, Registry};
    ///
    /// let mut reg = Registry::with_limits(2, 1);
    /// let a = reg.insert(1).unwrap();
    /// reg.remove(a);
    /// let b = reg.insert(2).unwrap(); // generation 2: the last one
    /// reg.remove(b);
    /// assert_eq!(reg.retired(), 1);
    /// assert_eq!(reg.insert(3), Err(Full)); // the only slot is retired
    /// ```
    ///
    /// # Panics
    ///
    /// If `max_generation` is 0 or `max_slots` is 0 or above 2³².
    pub fn with_limits(max_generation: u32, max_slots: usize) -> Self {
        assert!(max_generation >= 1, "a slot needs at least one generation");
        assert!(
            (1..=MAX_SLOTS).contains(&max_slots),
            "max_slots must be in 1..=2^32"
        );
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            retired: 0,
            max_generation,
            max_slots,
        }
    }

    /// Stores `value` and returns its token.
    pub fn insert(&mut self, value: T) -> Result<Token, Full> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.slots.len() >= self.max_slots {
                    return Err(Full);
                }
                self.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.value.is_none());
        slot.value = Some(value);
        self.len += 1;
        Ok(Token::from_parts(index, slot.generation).expect("generations start at 1"))
    }

    fn slot(&self, t: Token) -> Option<&Slot<T>> {
        self.slots
            .get(t.index() as usize)
            .filter(|s| s.generation == t.generation() && s.value.is_some())
    }

    /// The value of a live token; `None` for a stale or foreign one.
    #[inline]
    pub fn get(&self, t: Token) -> Option<&T> {
        self.slot(t).and_then(|s| s.value.as_ref())
    }

    /// Like [`get`](Self::get), mutably.
    #[inline]
    pub fn get_mut(&mut self, t: Token) -> Option<&mut T> {
        self.slots
            .get_mut(t.index() as usize)
            .filter(|s| s.generation == t.generation())
            .and_then(|s| s.value.as_mut())
    }

    /// Whether `t` is live.
    #[inline]
    pub fn contains(&self, t: Token) -> bool {
        self.slot(t).is_some()
    }

    /// Removes and returns the value of a live token; `None` (changing
    /// nothing) for a stale one. The token is stale from now on.
    pub fn remove(&mut self, t: Token) -> Option<T> {
        let max = self.max_generation;
        let slot = self
            .slots
            .get_mut(t.index() as usize)
            .filter(|s| s.generation == t.generation())?;
        let value = slot.value.take()?;
        self.len -= 1;
        if slot.generation >= max {
            // The next generation would pass the limit (or wrap): retire
            // the slot, so that no stale token can ever match again.
            self.retired += 1;
        } else {
            slot.generation += 1;
            self.free.push(t.index());
        }
        Some(value)
    }

    /// Live values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots retired because their generations ran out.
    pub fn retired(&self) -> usize {
        self.retired
    }

    /// Slots ever created (live, free and retired).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Iterates over the live tokens and values.
    pub fn iter(&self) -> impl Iterator<Item = (Token, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let v = s.value.as_ref()?;
            Some((Token::from_parts(i as u32, s.generation)?, v))
        })
    }

    /// Removes every value, returning them with their tokens. Each token is
    /// stale afterwards, as if removed one by one.
    pub fn drain(&mut self) -> Vec<(Token, T)> {
        let live: Vec<Token> = self.iter().map(|(t, _)| t).collect();
        live.into_iter()
            .filter_map(|t| self.remove(t).map(|v| (t, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_token_never_resolves_after_reuse() {
        let mut r = Registry::new();
        let a = r.insert(1).unwrap();
        assert_eq!(r.remove(a), Some(1));
        assert_eq!(r.remove(a), None, "double remove is a no-op");
        let b = r.insert(2).unwrap();
        assert_eq!(b.index(), a.index());
        assert_eq!(b.generation(), a.generation() + 1);
        assert_eq!(r.get(a), None);
        assert_eq!(r.get_mut(a), None);
        assert!(!r.contains(a));
        assert_eq!(r.remove(a), None);
        assert_eq!(r.get(b), Some(&2));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn foreign_index_is_not_found() {
        let mut r: Registry<u8> = Registry::new();
        let t = Token::from_parts(1000, 1).unwrap();
        assert_eq!(r.get(t), None);
        assert_eq!(r.remove(t), None);
    }

    /// R42: the last generation is retired, never wrapped back to 1.
    #[test]
    fn r42_generation_exhaustion_retires_the_slot() {
        let mut r = Registry::with_limits(3, 2);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let t = r.insert(()).unwrap();
            assert_eq!(t.index(), 0);
            seen.push(t);
            r.remove(t);
        }
        assert_eq!(r.retired(), 1);
        // Slot 0 is retired; slot 1 takes over.
        let t = r.insert(()).unwrap();
        assert_eq!((t.index(), t.generation()), (1, 1));
        for old in &seen {
            assert!(!r.contains(*old));
        }
        // The default limit retires at u32::MAX instead of wrapping to 0/1.
        let mut big: Registry<()> = Registry::new();
        let t = big.insert(()).unwrap();
        big.slots[0].generation = u32::MAX;
        let last = Token::from_parts(0, u32::MAX).unwrap();
        big.remove(t); // stale: generation moved under it
        assert!(big.contains(last));
        big.remove(last);
        assert_eq!(big.retired(), 1);
        assert_eq!(big.insert(()).unwrap().index(), 1);
    }

    #[test]
    fn drain_makes_every_token_stale() {
        let mut r = Registry::new();
        let ts: Vec<_> = (0..5).map(|i| r.insert(i).unwrap()).collect();
        let mut out = r.drain();
        out.sort();
        assert_eq!(
            out.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(r.is_empty());
        for t in ts {
            assert!(!r.contains(t));
        }
    }
}
