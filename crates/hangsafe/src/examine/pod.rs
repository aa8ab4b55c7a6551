//! Plain old data without padding ([`Pod`]): the types a worker may
//! publish for examination, and their conversion to and from the seqlock's
//! words.

pub(crate) use super::seqlock::ONE_LINE;
use super::seqlock::WORDS;
use std::any::TypeId;
use std::hash::{Hash, Hasher};
use std::mem::{align_of, size_of};

/// How many bytes of state one publish can carry.
///
/// A state of up to 48 bytes is read from a single cache line (the cell's
/// sequence word, type tag and first six data words share one); a larger
/// one spans two. That makes no difference to an occasional reader, but
/// while the worker publishes in a tight loop a 48-byte state is still
/// read in tens of nanoseconds, and a 56-byte one in up to a microsecond,
/// now and then ending in [`Again`](super::Error::Again) (two lines
/// keep moving between the cores mid-read).
pub const CAPACITY: usize = WORDS * 8;

/// The largest alignment a published type may have.
pub const MAX_ALIGN: usize = 8;

/// Plain old data in bytemuck's sense: a type whose bytes are **all
/// initialised** (no padding) and for which **every bit pattern is a valid
/// value**.
///
/// A worker publishes a `Pod` state through
/// [`Ctx::publish`](crate::runner::Ctx::publish); other threads read
/// consistent snapshots of it with
/// [`Runner::examine`](crate::runner::Runner::examine) or an
/// [`Examiner`](super::Examiner). Publishing copies every byte of the value
/// into atomic words (so a byte that is padding, i.e. uninitialised, would
/// be undefined behaviour to read); examining copies words back into a
/// value. The seqlock only ever hands out the words of one whole publish,
/// and a type tag stops a value from being read as another type; requiring
/// every bit pattern to be valid on top of that means that even a bug in
/// either could produce a wrong value, never an invalid one.
///
/// This is bytemuck's `NoUninit` plus `AnyBitPattern` (zerocopy's
/// `IntoBytes` plus `FromBytes`), which bytemuck calls `Pod`. Unlike
/// [`robust::AnyBitPattern`](crate::robust::AnyBitPattern), padding is
/// **not** allowed.
///
/// # Safety
///
/// Implement `Pod` only for a type that:
///
/// * has **no padding** and no other uninitialised bytes: `#[repr(C)]` (or
///   `#[repr(transparent)]`) with fields laid out back to back; add
///   explicit filler fields (`_pad: [u8; 7]`) where the compiler would
///   insert padding, and check with `size_of` that the fields add up;
/// * is valid for **every** bit pattern of its size: no `bool`, `char`,
///   enums, references, `NonZero*`, `NonNull`, or other types with invalid
///   values ("niches"); only `Pod` fields;
/// * holds no pointers: a reader gets a copy of the bits, not a borrow of
///   anything the worker owns;
/// * needs no `Drop` (it is `Copy`).
///
/// Publishing further requires `size_of::<S>() <=` [`CAPACITY`] (64
/// bytes) and `align_of::<S>() <=` [`MAX_ALIGN`] (8); both are checked
/// at compile time, where `publish`/`examine` is instantiated for the type.
///
/// `Pod` is implemented for the integer and floating-point primitives up
/// to 64 bits, `()`, arrays of `Pod`, [`Stamp`](super::Stamp) and
/// [`Progress`](super::Progress). `bool` is deliberately left out (store a
/// `u8`), and so are `u128`/`i128` (16-byte aligned on x86_64; store two
/// `u64`s).
///
/// # Example
///
/// ```
/// use hangsafe::examine::{Pod, Stamp};
///
/// /// What a disk probe is doing.
/// #[derive(Clone, Copy, Debug, Default)]
/// #[repr(C)]
/// struct ProbeState {
///     sector: u64,
///     since: Stamp,
///     retries: u32,
///     /// 1 while the device is being reset (a `u8`, not a `bool`).
///     resetting: u8,
///     /// Explicit filler: `#[repr(C)]` would otherwise pad to 8 bytes.
///     _pad: [u8; 3],
/// }
/// const _: () = assert!(std::mem::size_of::<ProbeState>() == 8 + 8 + 4 + 1 + 3);
///
/// // SAFETY: `#[repr(C)]`, every field `Pod`, no padding (checked just
/// // above), so every bit pattern is a valid `ProbeState`; no pointers.
/// unsafe impl Pod for ProbeState {}
/// ```
///
/// A type over the size limit is refused when the call that would publish
/// it is compiled:
///
/// ```compile_fail
/// let r = hangsafe::runner::spawn(|ctx| ctx.publish(&[0u64; 9])).unwrap();
/// ```
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! impl_pod {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive integer or float: no padding, every bit
            // pattern of its size is a valid value, and no pointer.
            unsafe impl Pod for $t {}
        )*
    };
}

impl_pod!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

// SAFETY: zero-sized: no bytes, so none uninitialised or invalid.
unsafe impl Pod for () {}

// SAFETY: an array is its elements back to back with no padding between
// them (an element's size is a multiple of its alignment), so it has no
// padding and every bit pattern is valid iff both hold for `T`.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Fails the build for a type that does not fit the seqlock.
#[inline(always)]
fn assert_fits<S>() {
    const {
        assert!(
            size_of::<S>() <= CAPACITY,
            "hangsafe::examine: a published state may be at most 64 bytes"
        );
        assert!(
            align_of::<S>() <= MAX_ALIGN,
            "hangsafe::examine: a published state may be at most 8-byte aligned"
        );
    }
}

/// How many words `S` occupies.
#[inline]
pub(crate) fn words_of<S: Pod>() -> usize {
    assert_fits::<S>();
    size_of::<S>().div_ceil(8)
}

/// The bytes of `s`, in the first `words_of::<S>()` words; the rest are 0.
#[inline]
pub(crate) fn to_words<S: Pod>(s: &S) -> [u64; WORDS] {
    assert_fits::<S>();
    let mut words = [0u64; WORDS];
    // SAFETY: `S: Pod` has no padding, so all `size_of::<S>()` bytes of
    // `*s` are initialised and may be read as bytes; the destination is
    // `CAPACITY >= size_of::<S>()` bytes (checked at compile time above),
    // a local array that cannot overlap `*s`; `u8` needs no alignment.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (s as *const S).cast::<u8>(),
            words.as_mut_ptr().cast::<u8>(),
            size_of::<S>(),
        );
    }
    words
}

/// The `S` whose bytes are the first `size_of::<S>()` bytes of `words`.
/// Called only on a validated snapshot whose tag is `S`'s.
#[inline]
pub(crate) fn from_words<S: Pod>(words: &[u64; WORDS]) -> S {
    assert_fits::<S>();
    // SAFETY: `words` is an initialised local buffer of `CAPACITY >=
    // size_of::<S>()` bytes (compile-time check above), so the read stays
    // in bounds and reads initialised bytes; `read_unaligned` has no
    // alignment requirement (the buffer is 8-aligned anyway, and so is at
    // least as aligned as `S`); every bit pattern is a valid `S`
    // (`S: Pod`), so whatever the words hold is a valid value; and `S`
    // is `Copy`, so the copy owns nothing.
    unsafe { std::ptr::read_unaligned(words.as_ptr().cast::<S>()) }
}

/// FNV-1a over whatever a `Hash` impl writes. `TypeId` writes its 64-bit
/// id, so this costs a couple of multiplications and is usually folded to
/// a constant.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// The type tag published with a state of type `S`: a 64-bit hash of its
/// `TypeId` and size. Two distinct types collide with probability about
/// 2^-64; even then the reader gets a wrong value, never an invalid one
/// (see [`Pod`]).
#[inline]
pub(crate) fn tag_of<S: 'static>() -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    TypeId::of::<S>().hash(&mut h);
    h.write_u64(size_of::<S>() as u64);
    h.finish()
}
