//! Unit tests of the examine logic: word conversion, type tags, the
//! sequence word, prepare/finish/examine on one cell, `Progress` and
//! `Stamp`. No syscalls beyond the clock, so they run under Miri too
//! (`cargo +nightly miri test -p hangsafe --lib`), where the two threaded
//! tests also get Miri's data-race and weak-memory checking.

use super::pod::{from_words, tag_of, to_words, words_of};
use super::seqlock::{SeqCell, ENDED, READ_ATTEMPTS, WORDS};
use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The writer side as `Ctx` drives it: the cell and the writer's record of
/// its sequence word.
struct Writer<'a> {
    cell: &'a SeqCell,
    last: std::cell::Cell<u64>,
}

impl<'a> Writer<'a> {
    fn new(cell: &'a SeqCell) -> Self {
        Writer {
            cell,
            last: std::cell::Cell::new(0),
        }
    }
    fn put<S: Pod>(&self, s: &S) {
        self.last.set(publish(self.cell, self.last.get(), s));
    }
    fn end(&self) {
        self.cell.end(self.last.get());
    }
    fn own_progress(&self) -> Option<Progress> {
        own_progress(self.cell, self.last.get())
    }
}

fn round_trip<S: Pod + PartialEq + std::fmt::Debug>(s: S) {
    let w = to_words(&s);
    assert_eq!(from_words::<S>(&w), s);
    // Bytes past the value are zero: nothing of the caller's stack leaks
    // into the cell.
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
    assert!(bytes[std::mem::size_of::<S>()..].iter().all(|&b| b == 0));
}

#[test]
fn words_round_trip_for_every_kind_of_pod() {
    round_trip(0xa5u8);
    round_trip(-2i16);
    round_trip([1u16, 2, 3]);
    round_trip(u64::MAX);
    round_trip(i64::MIN);
    round_trip(1.5f64);
    round_trip([0.25f32; 5]);
    round_trip([u64::MAX - 7; WORDS]);
    round_trip(());
    round_trip(Stamp::from_nanos(12345));
    round_trip(Progress::at("SG_IO", Stamp::from_nanos(9)).with_counts(3, 8));
    // A NaN's payload survives (bits, not value, are copied).
    let nan = f64::from_bits(0x7ff8_0000_dead_beef);
    assert_eq!(from_words::<f64>(&to_words(&nan)).to_bits(), nan.to_bits());
}

#[test]
fn words_of_rounds_up() {
    assert_eq!(words_of::<()>(), 0);
    assert_eq!(words_of::<u8>(), 1);
    assert_eq!(words_of::<[u8; 9]>(), 2);
    assert_eq!(words_of::<Progress>(), 6);
    assert_eq!(words_of::<[u64; WORDS]>(), WORDS);
}

#[test]
fn tags_tell_types_apart_and_are_stable() {
    assert_eq!(tag_of::<u64>(), tag_of::<u64>());
    let tags = [
        tag_of::<u64>(),
        tag_of::<i64>(),
        tag_of::<f64>(),
        tag_of::<[u32; 2]>(),
        tag_of::<[u8; 8]>(),
        tag_of::<Stamp>(),
        tag_of::<Progress>(),
        tag_of::<()>(),
    ];
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn sequence_word_counts_publishes_and_flags_the_end() {
    let cell = SeqCell::new();
    let mut w = [0u64; 1];
    assert_eq!(cell.read(&mut w, || false), Err(Error::Unpublished));
    assert_eq!(cell.write(0, 7, &[70]), 2);
    let raw = cell.read(&mut w, || false).unwrap();
    assert_eq!((raw.seq, raw.tag, w[0]), (2, 7, 70));
    assert_eq!(cell.write(2, 8, &[80]), 4);
    let raw = cell.read(&mut w, || false).unwrap();
    assert_eq!((raw.seq, raw.tag, w[0]), (4, 8, 80));
    assert_eq!(cell.validate(4), Ok(()));
    assert_eq!(cell.validate(2), Err(Error::Again));
    cell.end(4);
    assert_eq!(cell.read(&mut w, || false), Err(Error::Gone));
    assert_eq!(cell.validate(4), Err(Error::Gone));
    assert_eq!(cell.validate(4 | ENDED), Err(Error::Gone));
    // The writer still sees its own last state.
    assert_eq!(cell.peek_own(&mut w), 8);
    assert_eq!(w[0], 80);
}

#[test]
fn ended_before_any_publish_is_gone_not_unpublished() {
    // The end flag set although nothing was published (the never-ran path).
    let cell = SeqCell::new();
    cell.end(0);
    assert_eq!(prepare::<u64>(&cell, || false).err(), Some(Error::Gone));
    assert_eq!(examine(&cell, || false, |v: &u64| *v), Err(Error::Gone));
    // No flag (a worker that never published does not set it): the
    // runner's state decides, and is asked only then.
    let cell = SeqCell::new();
    assert_eq!(prepare::<u64>(&cell, || true).err(), Some(Error::Gone));
    assert_eq!(examine(&cell, || true, |v: &u64| *v), Err(Error::Gone));
    assert_eq!(
        prepare::<u64>(&cell, || false).err(),
        Some(Error::Unpublished)
    );
    let w = Writer::new(&cell);
    w.put(&5u64);
    let asked = std::cell::Cell::new(false);
    let t = prepare::<u64>(&cell, || {
        asked.set(true);
        true
    });
    assert_eq!(t.map(|t| *t), Ok(5), "published: the flag alone decides");
    assert!(!asked.get());
}

#[test]
fn r47_prepare_returns_exactly_what_was_published() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    assert_eq!(
        prepare::<[u64; 2]>(&cell, || false).err(),
        Some(Error::Unpublished)
    );
    w.put(&[3u64, 4]);
    let t = prepare::<[u64; 2]>(&cell, || false).unwrap();
    assert_eq!((*t, t.publishes()), ([3, 4], 1));
    assert_eq!(finish(&cell, &t), Ok(()));
    w.put(&[5u64, 6]);
    let t = prepare::<[u64; 2]>(&cell, || false).unwrap();
    assert_eq!((t.into_state(), t.publishes()), ([5, 6], 2));
}

#[test]
fn wrong_type_is_an_error_not_a_reinterpretation() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&0x0102_0304_0506_0708u64);
    // Same size, other types.
    assert_eq!(
        prepare::<i64>(&cell, || false).err(),
        Some(Error::WrongType)
    );
    assert_eq!(
        prepare::<[u8; 8]>(&cell, || false).err(),
        Some(Error::WrongType)
    );
    assert_eq!(
        prepare::<f64>(&cell, || false).err(),
        Some(Error::WrongType)
    );
    // Smaller and larger.
    assert_eq!(
        prepare::<u32>(&cell, || false).err(),
        Some(Error::WrongType)
    );
    assert_eq!(
        prepare::<Progress>(&cell, || false).err(),
        Some(Error::WrongType)
    );
    assert_eq!(
        examine(&cell, || false, |p: &Progress| p.done()),
        Err(Error::WrongType)
    );
    assert_eq!(
        examine(&cell, || false, |v: &u64| *v),
        Ok(0x0102_0304_0506_0708)
    );
}

#[test]
fn r50_finish_is_again_after_a_publish_in_between() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&1u32);
    let t = prepare::<u32>(&cell, || false).unwrap();
    w.put(&1u32); // the same value: still a new publish
    assert_eq!(finish(&cell, &t), Err(Error::Again));
    let t = prepare::<u32>(&cell, || false).unwrap();
    assert_eq!(finish(&cell, &t), Ok(()));
    assert_eq!(finish(&cell, &t), Ok(()), "finish has no side effect");
}

#[test]
fn r50_examine_retries_a_bounded_number_of_times() {
    // The closure runs on the writer's thread here, so it can publish in
    // the middle of an examination, as a worker racing the reader would.
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&0u64);
    let mut calls = 0;
    let r = examine(
        &cell,
        || false,
        |v: &u64| {
            calls += 1;
            if calls == 1 {
                w.put(&(v + 1));
            }
            *v
        },
    );
    assert_eq!((r, calls), (Ok(1), 2), "second attempt sees the new state");

    let mut calls = 0u32;
    let r = examine(
        &cell,
        || false,
        |v: &u64| {
            calls += 1;
            w.put(&(v + 1));
        },
    );
    assert_eq!(r, Err(Error::Again));
    assert_eq!(
        calls, EXAMINE_ATTEMPTS,
        "gives up after the documented bound"
    );
}

#[test]
fn r48_finish_after_the_end_is_gone() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&9u16);
    let t = prepare::<u16>(&cell, || false).unwrap();
    w.end();
    assert_eq!(finish(&cell, &t), Err(Error::Gone));
    let r = examine(&cell, || false, |v: &u16| *v);
    assert_eq!(r, Err(Error::Gone));
}

#[test]
fn r49_release_makes_everything_gone() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&9u16);
    let t = prepare::<u16>(&cell, || false).unwrap();
    cell.release();
    cell.release();
    assert_eq!(finish(&cell, &t), Err(Error::Gone));
    assert_eq!(prepare::<u16>(&cell, || false).err(), Some(Error::Gone));
    assert_eq!(examine(&cell, || false, |v: &u16| *v), Err(Error::Gone));
}

#[test]
fn a_ticket_of_another_runner_is_refused() {
    let (a, b) = (SeqCell::new(), SeqCell::new());
    Writer::new(&a).put(&1u8);
    Writer::new(&b).put(&1u8);
    let t = prepare::<u8>(&a, || false).unwrap();
    assert_eq!(finish(&b, &t), Err(Error::ForeignTicket));
    assert_eq!(finish(&a, &t), Ok(()));
}

#[test]
fn r51_reader_gives_up_on_a_writer_stuck_mid_publish() {
    // A writer preempted between its two sequence stores: the sequence is
    // odd indefinitely. Every read is bounded and answers Again.
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    w.put(&1u64);
    cell.stall_mid_publish(w.last.get());
    let mut words = [0u64; 1];
    assert_eq!(cell.read(&mut words, || false), Err(Error::Again));
    assert_eq!(prepare::<u64>(&cell, || false).err(), Some(Error::Again));
    let mut calls = 0;
    assert_eq!(
        examine(&cell, || false, |_: &u64| calls += 1),
        Err(Error::Again)
    );
    assert_eq!(calls, 0, "no snapshot, so the closure never ran");
    // A stalled publish is still Gone once the work ends.
    w.end();
    assert_eq!(prepare::<u64>(&cell, || false).err(), Some(Error::Gone));
    const { assert!(READ_ATTEMPTS >= 2) };
}

#[test]
fn writer_sees_its_own_progress() {
    let cell = SeqCell::new();
    let w = Writer::new(&cell);
    assert_eq!(w.own_progress(), None);
    let p = Progress::at("scan", Stamp::from_nanos(5)).with_counts(1, 2);
    w.put(&p);
    assert_eq!(w.own_progress(), Some(p));
    w.put(&3u64);
    assert_eq!(w.own_progress(), None, "not a Progress any more");
}

#[test]
fn progress_phase_names() {
    assert_eq!(Progress::at("", Stamp::ZERO).phase(), "");
    assert_eq!(Progress::at("SG_IO", Stamp::ZERO).phase(), "SG_IO");
    let exact = "x".repeat(PHASE_LEN);
    assert_eq!(Progress::at(&exact, Stamp::ZERO).phase(), exact);
    let long = "y".repeat(PHASE_LEN + 5);
    assert_eq!(Progress::at(&long, Stamp::ZERO).phase(), &long[..PHASE_LEN]);
    // 2-byte characters: 24 bytes hold 12; 25 bytes' worth is cut to 12.
    let e = "é".repeat(13);
    assert_eq!(Progress::at(&e, Stamp::ZERO).phase(), "é".repeat(12));
    // 3-byte characters: 24 bytes hold 8; a 9th would straddle the end.
    let k = "€".repeat(9);
    assert_eq!(Progress::at(&k, Stamp::ZERO).phase(), "€".repeat(8));
    // A NUL ends the name.
    assert_eq!(Progress::at("ab\0cd", Stamp::ZERO).phase(), "ab");
}

#[test]
fn progress_from_foreign_bytes_is_never_invalid_utf8() {
    // Any bytes are a valid `Progress` (it is `Pod`); `phase` keeps the
    // valid prefix.
    let mut w = to_words(&Progress::at("", Stamp::ZERO));
    let mut name = [0u8; 8];
    name[..6].copy_from_slice(b"ok\xff\xfezz");
    w[0] = u64::from_ne_bytes(name);
    let p: Progress = from_words(&w);
    assert_eq!(p.phase(), "ok");
    // No NUL at all: the whole 24 bytes.
    let mut w = to_words(&Progress::at("", Stamp::ZERO));
    for x in &mut w[..3] {
        *x = u64::from_ne_bytes(*b"abcdefgh");
    }
    let p: Progress = from_words(&w);
    assert_eq!(p.phase(), "abcdefghabcdefghabcdefgh");
}

#[test]
fn progress_counters_stamps_and_display() {
    let p = Progress::at("inquiry", Stamp::from_nanos(100));
    assert_eq!((p.done(), p.total()), (0, 0));
    assert_eq!(p.entered(), Stamp::from_nanos(100));
    assert_eq!(p.updated_at(), p.entered_at());
    let q = p.with_counts(2, 5).updated(Stamp::from_nanos(300));
    assert_eq!((q.done(), q.total(), q.phase()), (2, 5, "inquiry"));
    assert_eq!(
        q.entered_at(),
        p.entered_at(),
        "counters keep the phase entry"
    );
    assert_eq!(
        q.updated_at().duration_since(q.entered_at()),
        Duration::from_nanos(200)
    );
    let shown = q.to_string();
    assert!(shown.starts_with("inquiry for "), "{shown}");
    assert!(shown.ends_with(" (2/5)"), "{shown}");
    assert!(!p.to_string().contains('('), "no counters shown when unset");
    assert!(format!("{q:?}").contains("inquiry"));
}

#[test]
fn stamps_convert_to_instants_and_back() {
    let base = Stamp::ZERO.instant();
    let s = Stamp::from_nanos(1_500);
    assert_eq!(
        s.instant().duration_since(base),
        Duration::from_nanos(1_500)
    );
    assert_eq!(Stamp::from_instant(s.instant()), s);
    let now = Stamp::now();
    assert!(now >= s || now.as_nanos() < 1_500);
    let later = Stamp::now();
    assert!(later >= now, "monotonic");
    if let Some(before) = base.checked_sub(Duration::from_secs(1)) {
        assert_eq!(
            Stamp::from_instant(before),
            Stamp::ZERO,
            "clamped to the base"
        );
    }
    // A stamp in the future has no elapsed time yet.
    assert_eq!(
        Stamp::from_nanos(now.as_nanos() + 3_600_000_000_000).elapsed(),
        Duration::ZERO
    );
    let p = Progress::at("x", now);
    assert!(p.time_in_phase() <= p.time_in_phase() + Duration::from_secs(1));
    assert!(p.since_update() < Duration::from_secs(3600));
}

/// R47 on real threads (and under Miri, with its data-race detector and
/// weak-memory emulation): one writer publishing `[v; 4]` for increasing
/// `v`, two readers. Every accepted snapshot is uniform and matches its
/// sequence; each reader's snapshots never go back; once the writer has
/// stopped, each reader sees exactly its last publish.
#[test]
fn r47_threads_never_accept_a_torn_snapshot() {
    let publishes: u64 = if cfg!(miri) { 150 } else { 200_000 };
    let cell = Arc::new(SeqCell::new());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (cell, stop) = (cell.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                let mut check = |t: Ticket<[u64; 4]>| {
                    let v = t[0];
                    assert!(t.iter().all(|&x| x == v), "torn: {:?}", *t);
                    assert_eq!(t.publishes(), v, "state vs sequence");
                    assert!(v >= last, "went back from {last} to {v}");
                    last = v;
                };
                while !stop.load(Ordering::Acquire) {
                    match prepare::<[u64; 4]>(&cell, || false) {
                        Ok(t) => check(t),
                        Err(Error::Unpublished | Error::Again) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    std::thread::yield_now();
                }
                // The writer is done (acquired through `stop`).
                check(prepare::<[u64; 4]>(&cell, || false).expect("quiescent read"));
                last
            })
        })
        .collect();
    // The test thread is the single writer.
    let w = Writer::new(&cell);
    for v in 1..=publishes {
        w.put(&[v; 4]);
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert_eq!(r.join().unwrap(), publishes);
    }
}
