//! Bounded waiting for a condition: liveness checks with generous limits,
//! never timing checks.

use std::time::{Duration, Instant};

/// Polls `cond` every millisecond until it holds or `limit` passes;
/// returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_sees_a_condition_and_gives_up_on_a_false_one() {
        let mut n = 0;
        assert!(eventually(Duration::from_secs(10), || {
            n += 1;
            n >= 3
        }));
        assert!(!eventually(Duration::from_millis(5), || false));
    }
}
