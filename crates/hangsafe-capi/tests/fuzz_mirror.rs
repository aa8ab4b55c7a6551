//! The fuzz package compiles the C ABI from this crate's own module files
//! (`fuzz/src/lib.rs`, one `#[path]` per module; see the comment there).
//! A module added here and not there breaks only the fuzz build, which
//! runs late in CI and not under `cargo test`; this test catches it first.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Names declared by `mod x;` (any visibility) at the start of a line.
fn modules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(|m| m.trim().to_owned())
        })
        .collect()
}

/// The file names the fuzz crate's `#[path]` attributes point into this
/// crate's `src/`.
fn mirrored(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.split("crates/hangsafe-capi/src/").nth(1)?;
            rest.split(".rs").next().map(str::to_owned)
        })
        .collect()
}

#[test]
fn fuzz_crate_mirrors_every_c_abi_module() {
    let ours = modules(&read("src/lib.rs"));
    assert!(ours.contains("runner"), "module scan broken: {ours:?}");
    let fuzz_text = read("../../fuzz/src/lib.rs");
    let theirs = modules(&fuzz_text);
    let paths = mirrored(&fuzz_text);
    assert_eq!(
        ours, theirs,
        "fuzz/src/lib.rs must declare exactly the C ABI's modules"
    );
    assert_eq!(ours, paths, "each fuzz module must #[path] to our file");
}
