//! The generational token: a slot index and the generation of the slot's
//! occupant, packed into one `u64`.

use std::fmt;
use std::num::NonZeroU64;

/// A generational token: names one registration (a runner in a
/// [`RunnerSet`](super::RunnerSet), an fd or timeout registration of a
/// [`Nexus`](super::Nexus)) for as long as it lives, and nothing ever after.
///
/// The low 32 bits are the slot index, the high 32 bits the slot's
/// generation, which starts at 1 and grows each time the slot is freed. A
/// token is therefore never zero, and it fits wherever an event loop keeps
/// per-registration data: epoll's `u64`, mio's `Token(usize)` (64-bit
/// targets), a C `void *`.
///
/// A token whose registration has ended is *stale*: every lookup with it
/// fails, even after its slot has been reused, because the reuse carries a
/// new generation. A slot whose generation would wrap is retired instead of
/// reused, so a stale token can never become valid again.
///
/// ```
/// use hangsafe::nexus::Token;
///
/// let t = Token::from_parts(7, 3).unwrap();
/// assert_eq!((t.index(), t.generation()), (7, 3));
/// assert_eq!(Token::from_u64(t.as_u64()), Some(t));
/// // Through a C `void *` and back, as libxl's `for_libxl` travels.
/// assert_eq!(Token::from_ptr(t.as_ptr()), Some(t));
/// // Zero is never a token (generation 0 is never issued).
/// assert_eq!(Token::from_u64(0), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(NonZeroU64);

impl Token {
    /// The token for slot `index` at `generation`; `None` for generation 0,
    /// which is never issued.
    pub const fn from_parts(index: u32, generation: u32) -> Option<Token> {
        match NonZeroU64::new(((generation as u64) << 32) | index as u64) {
            Some(v) if generation != 0 => Some(Token(v)),
            _ => None,
        }
    }

    /// The token packed in `v` (as [`as_u64`](Self::as_u64) made it);
    /// `None` if `v` cannot be a token.
    pub const fn from_u64(v: u64) -> Option<Token> {
        Token::from_parts(v as u32, (v >> 32) as u32)
    }

    /// The token as a `u64`, for epoll's data or a mio `Token`.
    pub const fn as_u64(self) -> u64 {
        self.0.get()
    }

    /// The token as an opaque pointer, for C APIs that carry a `void *`.
    /// The pointer is never dereferenced by anyone; it only travels.
    pub fn as_ptr(self) -> *mut std::ffi::c_void {
        self.0.get() as usize as *mut std::ffi::c_void
    }

    /// The token carried in `p` (as [`as_ptr`](Self::as_ptr) made it).
    pub fn from_ptr(p: *mut std::ffi::c_void) -> Option<Token> {
        Token::from_u64(p as usize as u64)
    }

    /// The slot index.
    pub const fn index(self) -> u32 {
        self.0.get() as u32
    }

    /// The generation of the slot's occupant this token names (≥ 1).
    pub const fn generation(self) -> u32 {
        (self.0.get() >> 32) as u32
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}@{})", self.index(), self.generation())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index(), self.generation())
    }
}

impl From<Token> for u64 {
    fn from(t: Token) -> u64 {
        t.as_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_at_the_edges() {
        for (i, g) in [
            (0, 1),
            (u32::MAX, 1),
            (0, u32::MAX),
            (u32::MAX, u32::MAX),
            (5, 9),
        ] {
            let t = Token::from_parts(i, g).unwrap();
            assert_eq!((t.index(), t.generation()), (i, g));
            assert_eq!(Token::from_u64(t.as_u64()), Some(t));
            assert_eq!(Token::from_ptr(t.as_ptr()), Some(t));
        }
        assert_eq!(Token::from_parts(3, 0), None);
        assert_eq!(Token::from_u64(3), None, "generation 0 in the high half");
        assert_eq!(std::mem::size_of::<Option<Token>>(), 8);
    }
}
