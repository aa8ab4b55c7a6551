//! `hangsafe` duration parsing (`--timeout`, `--interval`): any input
//! either parses or is refused, never panics; an accepted duration is
//! within (0, 7d] and formats back to itself. Formatting any duration at
//! all (the latency column too) never panics.
#![no_main]

use hangsafe_cli::duration::{self, MAX};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 12 {
        let secs = u64::from_le_bytes(data[..8].try_into().unwrap());
        let nanos = u32::from_le_bytes(data[8..12].try_into().unwrap()) % 1_000_000_000;
        let d = Duration::new(secs, nanos);
        let _ = duration::format(d);
        let _ = duration::format_latency(d);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse(s) {
        assert!(d > Duration::ZERO && d <= MAX, "{s:?} -> {d:?}");
        let shown = duration::format(d);
        assert_eq!(duration::parse(&shown), Ok(d), "{s:?} -> {shown:?}");
    }
});
