//! The configuration file of `watch` and `serve`: any text either parses
//! or is refused with an error, never panics; an error's line and column
//! lie inside the text; a parsed file's targets are valid targets and its
//! labels are neither reserved nor empty.
#![no_main]

use hangsafe_cli::config::{self, RESERVED_LABELS};
use hangsafe_cli::target::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(c) => {
            for t in &c.targets {
                assert_eq!(Target::parse(&t.target.spec).as_ref(), Ok(&t.target));
                for k in t.labels.keys() {
                    assert!(!k.is_empty() && !RESERVED_LABELS.contains(&k.as_str()), "{k:?}");
                }
            }
        }
        Err(e) => {
            let lines = text.split('\n').count();
            if let Some(l) = e.line {
                assert!(l >= 1 && l <= lines, "line {l} of {lines}: {e}");
            }
            if let Some(col) = e.column {
                assert!(col >= 1, "{e}");
            }
        }
    }
});
