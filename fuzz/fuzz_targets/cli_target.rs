//! `hangsafe` target parsing: any argument either parses or is refused,
//! never panics; a parsed target's canonical form (`Display`) parses to
//! the same kind and is its own canonical form.
#![no_main]

use hangsafe_cli::target::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Target::parse(spec) else {
        return;
    };
    assert_eq!(t.spec, spec);
    let shown = t.to_string();
    let again = Target::parse(&shown)
        .unwrap_or_else(|e| panic!("{spec:?} shows as {shown:?}, which does not parse: {e}"));
    assert_eq!(again.kind, t.kind, "{spec:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown);
});
