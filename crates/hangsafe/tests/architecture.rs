//! Keeps `docs/ARCHITECTURE.md` true: the core crate's modules import only
//! modules of lower layers (the layer table between the `layers:` markers),
//! and every `HANGSAFE_*` name the workspace's code reads is listed there.
//!
//! Pure text checks over the source tree: no build of other crates, no
//! dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (this file is in crates/hangsafe/tests/).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn architecture_md() -> String {
    let p = root().join("docs/ARCHITECTURE.md");
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Module → layer, from the lines `N  module module …` between
/// `<!-- layers: begin -->` and `<!-- layers: end -->`.
fn documented_layers(doc: &str) -> BTreeMap<String, u32> {
    let start = doc
        .find("<!-- layers: begin -->")
        .expect("layers: begin marker");
    let end = doc
        .find("<!-- layers: end -->")
        .expect("layers: end marker");
    let mut layers = BTreeMap::new();
    for line in doc[start..end].lines() {
        let mut words = line.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<u32>) else {
            continue;
        };
        for m in words {
            assert!(layers.insert(m.to_owned(), n).is_none(), "{m} listed twice");
        }
    }
    assert!(!layers.is_empty(), "no layer lines between the markers");
    layers
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`lib.rs` → "").
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    match name.strip_suffix(".rs") {
        Some("lib") => String::new(),
        Some(m) => m.to_owned(),
        None => name.into_owned(),
    }
}

/// The code of a line, without a `//` comment (doc comments included).
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// The top-level modules named by `crate::m` paths in `code`, including
/// `use crate::{a::x, b}` groups.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                found.push(ident(part.trim()));
            }
        } else {
            found.push(ident(after));
        }
        rest = after;
    }
    found.retain(|m| !m.is_empty());
    found
}

/// Imports against the layers that are known and being removed, as
/// (from, to). Each must still occur (the test says when one is gone, so
/// the line is dropped with the fix).
///
/// `platform` → `cancel`: the assembly stubs name the cancel word's type;
/// issue 13 (point 2) defines the stub's word in `platform/` and makes it a
/// leaf.
const PENDING: &[(&str, &str)] = &[];

/// The layer check's state: the table, what is wrong, which pending
/// exceptions were met.
struct Layers {
    table: BTreeMap<String, u32>,
    wrong: Vec<String>,
    pending_seen: BTreeSet<(String, String)>,
}

impl Layers {
    /// Checks every `crate::` path of one file of `src/`.
    fn file(&mut self, src: &Path, file: &Path) {
        let from = module_of(src, file);
        if from.is_empty() {
            return; // lib.rs: the root declares and re-exports every module
        }
        let Some(&layer) = self.table.get(&from) else {
            let at = file.display();
            self.wrong
                .push(format!("{at}: module {from} is not in the layer table"));
            return;
        };
        let text = fs::read_to_string(file).expect("source file");
        for (n, line) in text.lines().enumerate() {
            for to in crate_paths(code_of(line)) {
                let at = format!("{}:{}", file.display(), n + 1);
                self.import(&from, layer, &to, &at);
            }
        }
    }

    /// One import of `to` by `from` (of layer `layer`), at `at`.
    fn import(&mut self, from: &str, layer: u32, to: &str, at: &str) {
        if to == from {
            return;
        }
        if PENDING.contains(&(from, to)) {
            self.pending_seen.insert((from.to_owned(), to.to_owned()));
            return;
        }
        match self.table.get(to) {
            Some(&l) if l < layer => {}
            Some(&l) => self.wrong.push(format!(
                "{at}: {from} (layer {layer}) imports {to} (layer {l})"
            )),
            None => self
                .wrong
                .push(format!("{at}: {to} is not in the layer table")),
        }
    }

    /// Every pending exception must still be needed.
    fn pending_still_needed(&mut self) {
        for &(from, to) in PENDING {
            if !self
                .pending_seen
                .contains(&(from.to_owned(), to.to_owned()))
            {
                self.wrong.push(format!(
                    "{from} no longer imports {to}: remove ({from:?}, {to:?}) from PENDING"
                ));
            }
        }
    }
}

#[test]
fn core_modules_import_only_lower_layers() {
    let src = root().join("crates/hangsafe/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut check = Layers {
        table: documented_layers(&architecture_md()),
        wrong: Vec::new(),
        pending_seen: BTreeSet::new(),
    };
    for file in &files {
        check.file(&src, file);
    }
    check.pending_still_needed();
    assert!(
        check.wrong.is_empty(),
        "docs/ARCHITECTURE.md's layers do not hold:\n{}",
        check.wrong.join("\n")
    );
}

/// Every file of the workspace that may read an environment variable:
/// Rust sources, shell scripts (`.ci/run`, `*.sh`) and the C tests.
fn code_files() -> Vec<PathBuf> {
    let r = root();
    let mut files = Vec::new();
    for dir in ["crates", "fuzz/fuzz_targets"] {
        collect(&r.join(dir), &mut files);
    }
    files.push(r.join(".ci/run"));
    files
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "sh" || e == "c")
        {
            out.push(path);
        }
    }
}

/// The `HANGSAFE_*` names a line reads: Rust/C string literals
/// (`"HANGSAFE_LOG"`, `getenv("HANGSAFE_…")`) and shell expansions
/// (`$HANGSAFE_…`, `${HANGSAFE_…`).
fn env_names(line: &str, out: &mut BTreeSet<String>) {
    for prefix in ["\"HANGSAFE_", "$HANGSAFE_", "${HANGSAFE_"] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let start = i + prefix.len() - "HANGSAFE_".len();
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "HANGSAFE_".len() {
                out.insert(name);
            }
            rest = &rest[start + 1..];
        }
    }
}

#[test]
fn every_hangsafe_variable_is_documented() {
    let doc = architecture_md();
    let mut names = BTreeSet::new();
    // This file names sample variables and the prefixes themselves.
    for file in code_files().into_iter().filter(|f| !f.ends_with(file!())) {
        let text = fs::read_to_string(&file).unwrap_or_default();
        text.lines().for_each(|l| env_names(l, &mut names));
    }
    assert!(names.contains("HANGSAFE_LOG"), "the scan found nothing");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md does not list (as `NAME`): {missing:?}"
    );
}

#[test]
fn the_scanners_see_what_they_should() {
    assert_eq!(
        crate_paths("use crate::{sync::lock, cancel::word::X}; crate::examine::f()"),
        ["sync", "cancel", "examine"]
    );
    assert!(crate_paths(code_of("// see crate::runner")).is_empty());
    let mut n = BTreeSet::new();
    env_names(
        r#"x=${HANGSAFE_A:-1} "$HANGSAFE_B" getenv("HANGSAFE_C")"#,
        &mut n,
    );
    assert_eq!(
        n.into_iter().collect::<Vec<_>>(),
        ["HANGSAFE_A", "HANGSAFE_B", "HANGSAFE_C"]
    );
}
