//! Loom models of the examine seqlock.
//!
//! Run with (see `.ci/run`):
//!
//! ```text
//! RUSTFLAGS="--cfg hangsafe_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p hangsafe --lib --release -- loom
//! ```
//!
//! Each model drives the real `SeqCell` with loom's atomics and fences,
//! which model the
//! C++11/Rust memory model including stale relaxed loads, so a missing or
//! misplaced fence shows up as an accepted torn snapshot (checked by
//! mutation: removing either fence of the reader or writer, or the one in
//! `validate`, fails the models). States are written "uniform": publish
//! number `v` stores `v` in the tag and in every data word, so a snapshot
//! is consistent iff all its words are equal, and it is the right one iff
//! its sequence value is `2 * v`. Test names carry the race IDs of
//! `docs/races.md`.

use super::error::Error;
use super::seqlock::SeqCell;
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use loom::thread;

/// Publish number `v` (the writer's record of the sequence before it is
/// `2 * (v - 1)`), `n` data words.
fn publish(cell: &SeqCell, v: u64, n: usize) {
    assert_eq!(cell.write(2 * (v - 1), v, &[v; 3][..n]), 2 * v);
}

/// One read of `n` words; panics on an accepted torn or mislabelled
/// snapshot, returns the publish number it holds.
fn read(cell: &SeqCell, n: usize) -> Result<(u64, u64), Error> {
    read_ended(cell, n, || false)
}

/// As [`read`], with the runner's "work ended" predicate.
fn read_ended(cell: &SeqCell, n: usize, ended: impl FnOnce() -> bool) -> Result<(u64, u64), Error> {
    let mut w = [u64::MAX; 3];
    let raw = cell.read(&mut w[..n], ended)?;
    assert!(
        w[..n].iter().all(|&x| x == raw.tag),
        "torn snapshot accepted: tag {} words {:?}",
        raw.tag,
        &w[..n]
    );
    assert_eq!(
        raw.seq,
        2 * raw.tag,
        "snapshot from another publish than its sequence"
    );
    Ok((raw.tag, raw.seq))
}

/// R47: one writer, two readers. The state of publish 1 is in place; the
/// writer publishes 2 while both readers take a snapshot. No accepted
/// snapshot is ever torn (or from another publish than its sequence
/// value), and each reader's result is one of the documented ones.
#[test]
fn loom_r47_one_writer_two_readers_never_torn() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        publish(&cell, 1, 1);
        let w = Arc::clone(&cell);
        let writer = thread::spawn(move || publish(&w, 2, 1));
        let r = Arc::clone(&cell);
        let reader = thread::spawn(move || read(&r, 1));
        let mine = read(&cell, 1);
        let theirs = reader.join().unwrap();
        writer.join().unwrap();
        for got in [mine, theirs] {
            match got {
                Ok((v, _)) => assert!(v == 1 || v == 2),
                Err(Error::Again) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        // Quiescent: the last publish, exactly.
        assert_eq!(read(&cell, 1), Ok((2, 4)));
    });
}

/// R47: triples, one reader taking two snapshots in a row. Both are
/// consistent, and the second is never older than the first (a reader
/// never sees the state go back in time).
#[test]
fn loom_r47_triples_and_snapshots_never_go_back() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        let w = Arc::clone(&cell);
        let writer = thread::spawn(move || {
            publish(&w, 1, 3);
            publish(&w, 2, 3);
        });
        let first = read(&cell, 3);
        let second = read(&cell, 3);
        if let (Ok((a, _)), Ok((b, _))) = (first, second) {
            assert!(b >= a, "went back from publish {a} to {b}");
        }
        if first.is_ok() {
            assert_ne!(second, Err(Error::Unpublished));
        }
        writer.join().unwrap();
    });
}

const RUNNING: u32 = 0;
const DONE: u32 = 1;

/// R48: the worker publishes, then its work returns: `run_job` sets the
/// end flag and then makes the final state CAS (modelled by a CAS with the
/// runner state word's orderings, `AcqRel`/`Acquire`; the reader's check
/// is `Runner::is_finished`'s acquire load). Meanwhile a reader examines.
/// The reader gets a consistent snapshot from before the end, or `Gone`,
/// never anything else; `Gone` is final; a reader that sees the runner
/// finished sees `Gone`; a ticket finished after the end is `Gone`.
#[test]
fn loom_r48_end_vs_examine() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        let state = Arc::new(AtomicU32::new(RUNNING));
        let (w, st) = (Arc::clone(&cell), Arc::clone(&state));
        let worker = thread::spawn(move || {
            publish(&w, 1, 2);
            w.end(2);
            st.compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                .unwrap();
        });
        let ended = || state.load(Ordering::Acquire) == DONE;
        let finished = ended();
        let first = read_ended(&cell, 2, ended);
        if finished {
            assert_eq!(first, Err(Error::Gone), "finished but examinable");
        }
        match first {
            Ok((v, _)) => assert_eq!(v, 1),
            Err(Error::Gone | Error::Unpublished | Error::Again) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        let second = read_ended(&cell, 2, ended);
        if first == Err(Error::Gone) {
            assert_eq!(second, Err(Error::Gone), "Gone is final");
        }
        worker.join().unwrap();
        assert_eq!(read_ended(&cell, 2, ended), Err(Error::Gone));
        if let Ok((_, seq)) = first {
            assert_eq!(cell.validate(seq), Err(Error::Gone));
        }
    });
}

/// R48, a worker that never published: `run_job` then skips the end flag
/// (it would cost the worker a cache-line transfer), and readers learn of
/// the end from the runner's state. A reader gets `Unpublished` or `Gone`;
/// `Gone` is final; finished implies `Gone`.
#[test]
fn loom_r48_end_without_publish_vs_examine() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        let state = Arc::new(AtomicU32::new(RUNNING));
        let st = Arc::clone(&state);
        let worker = thread::spawn(move || {
            st.compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                .unwrap();
        });
        let ended = || state.load(Ordering::Acquire) == DONE;
        let finished = ended();
        let first = read_ended(&cell, 2, ended);
        if finished {
            assert_eq!(first, Err(Error::Gone), "finished but examinable");
        }
        assert!(matches!(first, Err(Error::Gone | Error::Unpublished)));
        if first == Err(Error::Gone) {
            assert_eq!(read_ended(&cell, 2, ended), Err(Error::Gone));
        }
        worker.join().unwrap();
        assert_eq!(read_ended(&cell, 2, ended), Err(Error::Gone));
    });
}

/// R49: the handle is released (dropped) while a reader examines and the
/// worker publishes: a consistent snapshot or `Gone` (or nothing yet);
/// after the release, `Gone` for reads and for finishing any ticket.
#[test]
fn loom_r49_release_vs_examine() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        let w = Arc::clone(&cell);
        let writer = thread::spawn(move || publish(&w, 1, 2));
        let r = Arc::clone(&cell);
        let reader = thread::spawn(move || {
            let first = read(&r, 2);
            let second = read(&r, 2);
            if first == Err(Error::Gone) {
                assert_eq!(second, Err(Error::Gone), "Gone is final");
            }
            first
        });
        cell.release();
        let seen = reader.join().unwrap();
        writer.join().unwrap();
        assert!(matches!(
            seen,
            Ok((1, 2)) | Err(Error::Gone | Error::Unpublished | Error::Again)
        ));
        assert_eq!(read(&cell, 2), Err(Error::Gone));
        assert_eq!(cell.validate(2), Err(Error::Gone));
    });
}

/// R50: utrace's prepare/finish. The worker publishes twice and then
/// writes another word (relaxed). A reader prepares, reads that word, and
/// finishes: if its ticket is from the first publish but it saw the word
/// written after the second, finish must say `Again`. This needs the
/// acquire fence in `validate` (an acquire load of the sequence would not
/// do): removing it fails the model.
#[test]
fn loom_r50_finish_sees_an_intervening_publish() {
    loom::model(|| {
        let cell = Arc::new(SeqCell::new());
        let after = Arc::new(AtomicU64::new(0));
        let (w, a) = (Arc::clone(&cell), Arc::clone(&after));
        let writer = thread::spawn(move || {
            publish(&w, 1, 1);
            publish(&w, 2, 1);
            a.store(1, Ordering::Relaxed);
        });
        if let Ok((v, seq)) = read(&cell, 1) {
            let saw_after = after.load(Ordering::Relaxed) == 1;
            let fin = cell.validate(seq);
            if v == 1 && saw_after {
                assert_eq!(fin, Err(Error::Again), "stale ticket finished Ok");
            }
            if v == 2 {
                assert_eq!(fin, Ok(()), "nothing published after the last publish");
            }
        }
        writer.join().unwrap();
    });
}
