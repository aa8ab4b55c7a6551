//! Fuzzes the C runner sets and examine (`hs_set_*`, `hs_publish`,
//! `hs_runner_examine`, `hs_set_examine` of `hangsafe.h`): sequences of
//! spawns with arbitrary sizes and timeouts, cancels, releases and
//! examines with issued, stale, forged and zero tokens, drains whose
//! callback respawns, releases and re-enters the set, and a final free
//! with work still running.
//!
//! Every call stays inside the C contract (a buffer is as large as the
//! size passed, the set is live until the final free), so a sanitizer
//! report or a panic is a bug of the library. Checked on every input: an
//! outcome is delivered at most once per token, never for a token whose
//! release returned 0, never for a token that was not issued, and a nested
//! drain from the callback is `EDEADLK`.
//!
//! Run with `-detect_leaks=0` (`c_set.flags`), as `c_abi`: the global
//! pool's threads outlive an input.

#![no_main]

use hangsafe_capi_fuzz as c;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::ffi::{c_int, c_uint, c_ulong, c_void};

/// The most calls one input makes.
const MAX_OPS: usize = 48;
/// The largest runner data.
const BUF: usize = 256;

#[derive(Arbitrary, Debug)]
enum Work {
    Null,
    Noop,
    /// Publishes `n` bytes (0..=64: some refused), then returns.
    Publish(u8),
    /// Spins on `hs_testcancel` until cancelled, for at most 20 ms.
    UntilCancelled,
}

#[derive(Arbitrary, Debug)]
enum Tok {
    /// The i-th issued token (modulo how many).
    Issued(u8),
    Zero,
    Raw(u64),
    /// An issued token with its generation changed.
    OtherGeneration(u8, u32),
}

#[derive(Arbitrary, Debug)]
enum Timeout {
    None,
    Micros(u16),
    Huge(u64),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Spawn {
        work: Work,
        size: u16,
        timeout: Timeout,
        null_data: bool,
    },
    Cancel(Tok),
    Release(Tok),
    Examine {
        tok: Tok,
        size: u8,
        null_out: bool,
    },
    /// Drains; the callback respawns on `respawn`, releases the token
    /// chosen by `release` on the first outcome, and tries a nested drain.
    Drain {
        respawn: bool,
        release: Option<Tok>,
        nested: bool,
    },
    Timeout,
    Fd,
    Publish(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
}

unsafe extern "C" fn noop(_: *mut c_void) {}

unsafe extern "C" fn publish(data: *mut c_void) {
    // SAFETY: spawned with at least one byte (size 0 is refused).
    let n = unsafe { *data.cast::<u8>() } % 65;
    let bytes = [0x5au8; 64];
    // SAFETY: `bytes` is readable for up to 64 bytes.
    unsafe { c::hs_publish(bytes.as_ptr().cast(), c_uint::from(n)) };
}

unsafe extern "C" fn until_cancelled(_: *mut c_void) {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(20);
    while std::time::Instant::now() < end && c::hs_testcancel() == 0 {
        std::thread::yield_now();
    }
}

/// What the fuzz run knows about the set.
#[derive(Default)]
struct Book {
    issued: Vec<u64>,
    released: HashSet<u64>,
    delivered: HashSet<u64>,
    set: usize,
    respawn: bool,
    release: Option<u64>,
    nested: bool,
    calls: u32,
}

impl Book {
    fn token(&self, t: &Tok) -> u64 {
        match *t {
            Tok::Issued(i) if !self.issued.is_empty() => {
                self.issued[usize::from(i) % self.issued.len()]
            }
            Tok::Issued(_) | Tok::Zero => 0,
            Tok::Raw(v) => v,
            Tok::OtherGeneration(i, g) if !self.issued.is_empty() => {
                let t = self.issued[usize::from(i) % self.issued.len()];
                (t & 0xffff_ffff) | (u64::from(g) << 32)
            }
            Tok::OtherGeneration(..) => 1,
        }
    }

    fn set(&self) -> *mut c::HsSet {
        self.set as *mut c::HsSet
    }
}

unsafe extern "C" fn on_outcome(
    arg: *mut c_void,
    token: u64,
    state: c_int,
    data: *const c_void,
    size: c_uint,
) {
    // SAFETY: `arg` is the `Book` of `run`, alive during the drain, used by
    // this thread only.
    let book = unsafe { &mut *arg.cast::<Book>() };
    assert!(
        book.issued.contains(&token),
        "outcome for a token never issued"
    );
    assert!(
        !book.released.contains(&token),
        "outcome for a released token"
    );
    assert!(book.delivered.insert(token), "outcome delivered twice");
    assert!(state == c::RUNNER_DONE || state == c::RUNNER_DEAD);
    assert_eq!(data.is_null(), state == c::RUNNER_DEAD);
    assert_eq!(size == 0, state == c::RUNNER_DEAD);
    book.calls += 1;
    if book.calls == 1 {
        if let Some(t) = book.release {
            // SAFETY: the set is live.
            if unsafe { c::hs_set_release(book.set(), t) } == 0 {
                book.released.insert(t);
            }
        }
        if book.nested {
            // SAFETY: the set is live; the nested drain is refused.
            let r = unsafe { c::hs_set_drain(book.set(), Some(on_outcome), arg) };
            assert_eq!(r, -1, "a nested drain of the same set must be refused");
        }
    }
    if book.respawn && book.issued.len() < 4 * MAX_OPS {
        let b = [1u8; 8];
        // SAFETY: `b` is readable for 8 bytes; `noop` returns normally.
        let t = unsafe { c::hs_set_spawn(book.set(), Some(noop), b.as_ptr().cast(), 8, 0) };
        if t != 0 {
            book.issued.push(t);
        }
    }
}

fn spawn(book: &mut Book, work: &Work, size: u16, timeout: &Timeout, null_data: bool) {
    let buf = [7u8; BUF];
    let size = c_uint::from(size) % (BUF as c_uint + 1);
    let func: c::RunnerFunc = match work {
        Work::Null => None,
        Work::Noop => Some(noop),
        Work::Publish(_) => Some(publish),
        Work::UntilCancelled => Some(until_cancelled),
    };
    let mut buf = buf;
    if let Work::Publish(n) = work {
        buf[0] = *n;
    }
    let data = if null_data {
        std::ptr::null()
    } else {
        buf.as_ptr().cast()
    };
    let timeout: c_ulong = match *timeout {
        Timeout::None => 0,
        Timeout::Micros(us) => c_ulong::from(us),
        Timeout::Huge(v) => v,
    };
    // SAFETY: `data` is NULL or readable for `size <= BUF` bytes; every
    // work function returns normally.
    let t = unsafe { c::hs_set_spawn(book.set(), func, data, size, timeout) };
    if t != 0 {
        assert!(!null_data && size > 0 && func.is_some());
        book.issued.push(t);
    }
}

fn run(input: &Input) {
    let set = c::hs_set_new();
    assert!(!set.is_null());
    let mut book = Book {
        set: set as usize,
        ..Book::default()
    };
    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Spawn {
                work,
                size,
                timeout,
                null_data,
            } => spawn(&mut book, work, *size, timeout, *null_data),
            Op::Cancel(t) => {
                let t = book.token(t);
                // SAFETY: the set is live.
                unsafe { c::hs_set_cancel(set, t) };
            }
            Op::Release(t) => {
                let t = book.token(t);
                // SAFETY: the set is live.
                if unsafe { c::hs_set_release(set, t) } == 0 {
                    assert!(!book.delivered.contains(&t), "released after delivery");
                    assert!(book.released.insert(t), "released twice");
                }
            }
            Op::Examine {
                tok,
                size,
                null_out,
            } => {
                let t = book.token(tok);
                let mut out = [0u8; 256];
                let p = if *null_out {
                    std::ptr::null_mut()
                } else {
                    out.as_mut_ptr().cast()
                };
                // SAFETY: `p` is NULL or writable for `size <= 255` bytes.
                unsafe { c::hs_set_examine(set, t, p, c_uint::from(*size)) };
            }
            Op::Drain {
                respawn,
                release,
                nested,
            } => {
                book.respawn = *respawn;
                book.release = release.as_ref().map(|t| book.token(t));
                book.nested = *nested;
                book.calls = 0;
                let arg = std::ptr::addr_of_mut!(book).cast::<c_void>();
                // SAFETY: the set is live; `arg` is the `Book` on_outcome expects.
                let n = unsafe { c::hs_set_drain(set, Some(on_outcome), arg) };
                assert!(n >= 0);
            }
            Op::Timeout => {
                // SAFETY: the set is live.
                let ms = unsafe { c::hs_set_timeout_ms(set) };
                assert!(ms >= -1);
            }
            Op::Fd => {
                // SAFETY: the set is live.
                assert!(unsafe { c::hs_set_fd(set) } >= 0);
            }
            Op::Publish(n) => {
                let b = [1u8; 64];
                // SAFETY: `b` is readable for up to 64 bytes; off a runner
                // this is EPERM or EINVAL.
                let r = unsafe { c::hs_publish(b.as_ptr().cast(), c_uint::from(*n % 65)) };
                assert_eq!(r, -1);
            }
        }
    }
    // SAFETY: the set is live and not used again.
    unsafe { c::hs_set_free(set) };
}

fuzz_target!(|input: Input| {
    run(&input);
});
