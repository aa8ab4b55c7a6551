//! [`AnyBitPattern`]: the types a [`RobustMutex`](super::RobustMutex) may
//! protect inside shared memory (every bit pattern valid, padding allowed).

/// A type for which **every bit pattern is a valid value**; padding is
/// allowed (bytemuck's `AnyBitPattern`, not its stricter `Pod`).
///
/// A [`RobustMutex<T>`](super::RobustMutex) lives in memory that other
/// processes map and write. Its contents are whatever bytes the last writer
/// left there: a process of another build, a corrupted file, or an owner that
/// was killed halfway through an update (the very case a robust mutex exists
/// for, [`LockError::OwnerDead`](super::LockError::OwnerDead)). Rust code
/// then reads those bytes as a `T`. That is only sound if no byte pattern
/// can make a `T` invalid, and only meaningful if a `T` means the same thing
/// in every process that maps it.
///
/// # Safety
///
/// Implement `AnyBitPattern` only for a type that:
///
/// * is valid for **every** bit pattern of its size: no `bool`, `char`,
///   enums, references, `NonZero*`, `NonNull`, or other types with invalid
///   values ("niches");
/// * holds no pointers, references or handles: an address or file
///   descriptor means nothing in another process (it is not unsound to have
///   a `usize` field holding an offset, since any `usize` is valid);
/// * has a fixed layout shared by every program that maps it: `#[repr(C)]`
///   (or `#[repr(transparent)]`) on structs, and only `AnyBitPattern` fields;
/// * needs no `Drop` (it is `Copy`) and no invariant between its fields for
///   memory safety: an invariant may be broken at any time by a dead owner's
///   half-finished update, so it can only be a *logical* one, checked and
///   repaired after [`OwnerDead`](super::OwnerDead).
///
/// Padding bytes are allowed: they are never read as part of a value.
///
/// `AnyBitPattern` is implemented for the integer and floating-point primitives,
/// `()`, and arrays of `AnyBitPattern`. `bool` is deliberately left out: only 0 and 1
/// are valid `bool`s, and a byte of shared memory may hold anything. Store a
/// `u8` and compare it with 0 instead.
///
/// # Example
///
/// ```
/// use hangsafe::robust::AnyBitPattern;
///
/// /// An account balance moved between two fields under the lock.
/// #[derive(Clone, Copy, Debug, Default)]
/// #[repr(C)]
/// struct Accounts {
///     checking: u64,
///     savings: u64,
///     /// 1 while a transfer is in progress (a `u8`, not a `bool`).
///     in_transfer: u8,
/// }
///
/// // SAFETY: `#[repr(C)]`, every field is `AnyBitPattern`, so every bit pattern is
/// // a valid `Accounts`; no pointers.
/// unsafe impl AnyBitPattern for Accounts {}
/// ```
pub unsafe trait AnyBitPattern: Copy + Send + 'static {}

macro_rules! impl_any_bit_pattern {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive integer or float: every bit pattern of its
            // size is a valid value, and it holds no pointer.
            unsafe impl AnyBitPattern for $t {}
        )*
    };
}

impl_any_bit_pattern!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: zero-sized: there are no bits to be invalid.
unsafe impl AnyBitPattern for () {}

// SAFETY: an array is its elements laid out back to back with no padding
// between them, so every bit pattern is valid iff it is for `T`.
unsafe impl<T: AnyBitPattern, const N: usize> AnyBitPattern for [T; N] {}
