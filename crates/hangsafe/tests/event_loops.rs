//! The event-loop examples, run as tests: each drives the same probe mix
//! (instant, sleeping, hung with a deadline, hung and cancelled, released;
//! see `examples/probes/mod.rs`) through a different loop, and every loop
//! must deliver each non-released probe's outcome exactly once, with the
//! right value or error, nothing for a released probe, and leave the set
//! empty (R43, R44).
//!
//! `HANGSAFE_LOOP_PROBES` sets the number of probes per loop (default 120).

// Each example includes `examples/probes/mod.rs` so that it stands alone;
// included together here, that module is compiled once per example (three
// distinct modules, which is what the examples need).
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/epoll_loop.rs"]
mod epoll_loop;
#[allow(dead_code)]
#[path = "../examples/mio_loop.rs"]
mod mio_loop;
#[allow(dead_code)]
#[path = "../examples/tokio_asyncfd.rs"]
mod tokio_asyncfd;

use hangsafe::nexus::Token;
use hangsafe::runner::RunError;
use std::collections::HashMap;

fn probes() -> usize {
    std::env::var("HANGSAFE_LOOP_PROBES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
        .max(12)
}

/// The checks shared by every loop (the summaries are distinct types, one
/// per included example, with the same fields).
fn check(
    name: &str,
    expected: &[(Token, Option<Result<u64, RunError>>)],
    arrived: &[(Token, Result<u64, RunError>)],
    left: usize,
    complete: bool,
) {
    // The mix really is mixed.
    for (what, pred) in [
        (
            "ok",
            (|e| matches!(e, Some(Ok(_)))) as fn(&Option<Result<u64, RunError>>) -> bool,
        ),
        ("timed out", |e| *e == Some(Err(RunError::TimedOut))),
        ("cancelled", |e| *e == Some(Err(RunError::Cancelled))),
        ("released", |e| e.is_none()),
    ] {
        assert!(
            expected.iter().any(|(_, e)| pred(e)),
            "{name}: no {what} probe in the mix"
        );
    }
    let mut tokens: Vec<Token> = expected.iter().map(|(t, _)| *t).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        expected.len(),
        "{name}: a token was issued twice"
    );

    let mut seen: HashMap<Token, &Result<u64, RunError>> = HashMap::new();
    for (t, out) in arrived {
        assert!(
            seen.insert(*t, out).is_none(),
            "{name}: {t} yielded twice ({out:?})"
        );
    }
    let mut missing = Vec::new();
    for (t, expect) in expected {
        match (expect, seen.remove(t)) {
            (None, None) => {}
            (None, Some(out)) => panic!("{name}: released {t} yielded {out:?} (R43)"),
            (Some(e), Some(out)) => assert_eq!(out, e, "{name}: wrong outcome for {t}"),
            (Some(e), None) => missing.push((*t, e.clone())),
        }
    }
    assert!(
        missing.is_empty(),
        "{name}: {} outcomes never arrived (loop complete: {complete}): {missing:?}",
        missing.len()
    );
    assert!(seen.is_empty(), "{name}: foreign tokens yielded: {seen:?}");
    assert!(complete, "{name}: the loop reported itself incomplete");
    assert_eq!(left, 0, "{name}: runners left in the set");
}

#[test]
fn r43_r44_epoll_hooks_loop_delivers_each_outcome_once() {
    let s = epoll_loop::run(probes());
    eprintln!("{s:?}");
    check("epoll (hooks)", &s.expected, &s.arrived, s.left, s.complete);
    // The hooks path: the set's fd reached the loop through occurred_fd.
    assert!(s.wakeups > 0);
}

#[test]
fn r43_r44_mio_poll_loop_delivers_each_outcome_once() {
    let s = mio_loop::run(probes());
    check("mio", &s.expected, &s.arrived, s.left, s.complete);
}

#[test]
fn r43_r44_tokio_asyncfd_loop_delivers_each_outcome_once() {
    let s = tokio_asyncfd::run(probes());
    check("tokio", &s.expected, &s.arrived, s.left, s.complete);
}

/// The checker itself must be able to fail: a duplicate, a released
/// probe's outcome, a wrong value and a missing outcome are all caught.
#[test]
fn the_checker_rejects_broken_runs() {
    let t = |i| Token::from_parts(i, 1).unwrap();
    let expected = vec![
        (t(0), Some(Ok(7))),
        (t(1), Some(Err(RunError::TimedOut))),
        (t(2), Some(Err(RunError::Cancelled))),
        (t(3), None),
    ];
    let good = vec![
        (t(0), Ok(7)),
        (t(2), Err(RunError::Cancelled)),
        (t(1), Err(RunError::TimedOut)),
    ];
    check("good", &expected, &good, 0, true);
    let broken: Vec<Vec<(Token, Result<u64, RunError>)>> = vec![
        {
            let mut v = good.clone();
            v.push((t(0), Ok(7)));
            v
        },
        {
            let mut v = good.clone();
            v.push((t(3), Ok(1)));
            v
        },
        vec![good[0].clone(), good[1].clone()],
        vec![(t(0), Ok(8)), good[1].clone(), good[2].clone()],
    ];
    for b in broken {
        let r = std::panic::catch_unwind(|| check("broken", &expected, &b, 0, true));
        assert!(r.is_err(), "accepted a broken run: {b:?}");
    }
    assert!(std::panic::catch_unwind(|| check("left", &expected, &good, 1, true)).is_err());
}
