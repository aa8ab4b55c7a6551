//! `hangsafe check --format nagios` thresholds (`--warning`, `--critical`,
//! `--iwarning`, `--icritical`): any input either parses or is refused,
//! never panics; an accepted space threshold reads back from its own
//! spelling, and compared with any filesystem figures (however
//! inconsistent: more free than total, sizes near `u64::MAX`) it never
//! panics and its perfdata high tide stays within the filesystem's size.
#![no_main]

use hangsafe_cli::fsstats::FsStats;
use hangsafe_cli::threshold::{InodeLimit, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (stats, text) = if data.len() >= 56 {
        let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
        let fs = FsStats {
            block_size: word(0),
            blocks: word(1),
            bfree: word(2),
            bavail: word(3),
            files: word(4),
            ffree: word(5),
            bsize: word(6),
        };
        (fs, &data[56..])
    } else {
        (FsStats::default(), data)
    };
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    let _ = stats.free_percent();
    let _ = stats.inodes_free_percent();
    let _ = (stats.node_size_bytes(), stats.node_free_bytes(), stats.node_avail_bytes());
    if let Ok(l) = Limit::parse(s) {
        assert_eq!(Limit::parse(&l.to_string()), Ok(l), "{s:?}");
        let _ = l.breached(&stats);
        let _ = l.describe(&stats);
        assert!(l.used_high_tide(&stats) <= stats.total_bytes(), "{s:?}");
    }
    if let Ok(l) = InodeLimit::parse(s) {
        assert!((0.0..=100.0).contains(&l.0), "{s:?}");
        let _ = l.breached(&stats);
        assert!(l.used_high_tide(&stats) <= stats.files, "{s:?}");
    }
});
