//! The shared library as a distribution ships it: SONAME, exactly the
//! documented symbols (all versioned), `-z nodelete`, and `dlclose` while
//! pool threads run (hazards H33–H35 in docs/races.md).
//!
//! The list of documented functions is parsed from the headers, so a new
//! function that is declared but not exported (or exported but not
//! declared, or missing from `libhangsafe.map`) fails here.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use support::*;

/// The version node every exported symbol carries.
const NODE: &str = "HANGSAFE_0";

/// `text` without C comments, preprocessor lines, and the bodies of the
/// `#if` groups that are about C++ (`extern "C" {`, `static_assert`).
fn c_declarations(text: &str) -> String {
    let mut no_comments = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        no_comments.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    no_comments.push_str(rest);
    let mut out = String::new();
    // One entry per open #if group: whether it is about C++.
    let mut groups: Vec<bool> = Vec::new();
    let mut continued = false;
    for line in no_comments.lines() {
        let t = line.trim_start();
        if continued {
            continued = t.ends_with('\\');
            continue;
        }
        if let Some(directive) = t.strip_prefix('#') {
            let d = directive.trim_start();
            if d.starts_with("if") {
                groups.push(d.contains("__cplusplus"));
            } else if d.starts_with("endif") {
                groups.pop();
            }
            continued = t.ends_with('\\');
            continue;
        }
        if groups.iter().any(|&cpp| cpp) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The functions a header declares (not its `static inline` helpers).
fn declared_functions(header: &str) -> BTreeSet<String> {
    let text = c_declarations(header);
    let mut names = BTreeSet::new();
    let mut depth = 0usize;
    let mut stmt = String::new();
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    // The end of a function body or a type definition.
                    if stmt.contains("static") {
                        stmt.clear();
                        continue;
                    }
                }
            }
            ';' if depth == 0 => {
                let s = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
                stmt.clear();
                let first = s.split_whitespace().next().unwrap_or("");
                if ["typedef", "struct", "enum", "union", "static"].contains(&first)
                    && !(first == "struct" && s.contains('('))
                {
                    continue;
                }
                if let Some(open) = s.find('(') {
                    let name: String = s[..open]
                        .trim_end()
                        .chars()
                        .rev()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
                continue;
            }
            _ => {}
        }
        if depth == 0 || stmt.contains("static") {
            stmt.push(c);
        }
    }
    names
}

/// The names between `global:` and `local:` of libhangsafe.map.
fn map_symbols() -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest_dir().join("libhangsafe.map"))
        .expect("cannot read libhangsafe.map");
    let text = c_declarations(&text);
    let globals = text
        .split("global:")
        .nth(1)
        .and_then(|r| r.split("local:").next())
        .expect("libhangsafe.map has no global: section");
    globals
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn header_symbols() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for h in ["runner.h", "hangsafe.h"] {
        let text = std::fs::read_to_string(manifest_dir().join("include").join(h))
            .unwrap_or_else(|e| panic!("cannot read {h}: {e}"));
        all.extend(declared_functions(&text));
    }
    all
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether build.rs attaches symbol versions on this target (see build.rs:
/// where rustc links with lld).
fn versions_expected() -> bool {
    cfg!(all(
        target_arch = "x86_64",
        target_os = "linux",
        target_env = "gnu"
    ))
}

#[test]
fn header_parser_finds_the_known_functions() {
    let found = header_symbols();
    for name in [
        "get_runner",
        "check_runner",
        "release_runner",
        "runner_state_name",
    ] {
        assert!(found.contains(name), "{name} not found in the headers");
    }
    assert!(found.contains("hs_openat4") && found.contains("hs_read"));
    // The static inline wrappers are not library symbols.
    assert!(!found.contains("hs_openat") && !found.contains("hs_ioctl"));
}

/// H33: the library exports exactly the functions the headers declare
/// and the version script lists, each with the version node.
#[test]
fn h33_exports_are_exactly_the_documented_functions_all_versioned() {
    let lib = library("libhangsafe.so");
    let declared = header_symbols();
    let mapped = map_symbols();
    assert_eq!(
        declared, mapped,
        "include/*.h and libhangsafe.map disagree (left: headers, right: map)"
    );
    let nm = tool("nm", &["-D", "--defined-only", &lib.display().to_string()]);
    let mut exported = BTreeSet::new();
    let mut unversioned = Vec::new();
    for line in nm.lines() {
        let mut f = line.split_whitespace();
        let (Some(_addr), Some(kind), Some(sym)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if kind == "A" && sym.trim_end_matches('@') == NODE {
            continue; // the version node's own definition
        }
        let (name, version) = match sym.split_once("@@") {
            Some((n, v)) => (n, Some(v)),
            None => (sym.split('@').next().unwrap_or(sym), None),
        };
        if version != Some(NODE) {
            unversioned.push(sym.to_owned());
        }
        exported.insert(name.to_owned());
    }
    assert_eq!(
        exported, declared,
        "nm -D --defined-only (left) differs from the headers' functions (right)"
    );
    if versions_expected() {
        assert!(
            unversioned.is_empty(),
            "exported without version {NODE}: {unversioned:?}"
        );
    }
}

/// H34: SONAME libhangsafe.so.0 (so `-lhangsafe` programs find the
/// installed library without an rpath) and NODELETE.
#[test]
fn h34_soname_and_nodelete() {
    let lib = library("libhangsafe.so");
    let dynamic = tool("readelf", &["-d", &lib.display().to_string()]);
    assert!(
        dynamic.contains("Library soname: [libhangsafe.so.0]"),
        "no SONAME libhangsafe.so.0:\n{dynamic}"
    );
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("FLAGS_1") && l.contains("NODELETE")),
        "not linked with -z nodelete:\n{dynamic}"
    );
}

/// A release build of the shared library carries no debug info (the
/// workspace's release profile keeps line tables for the benchmarks).
#[test]
fn release_library_has_no_debug_info() {
    if profile_dir().file_name().and_then(|n| n.to_str()) != Some("release") {
        println!("skipped: not a release build");
        return;
    }
    let lib = library("libhangsafe.so");
    let sections = tool("readelf", &["-S", "-W", &lib.display().to_string()]);
    assert!(
        !sections.contains(".debug_"),
        "debug sections left:\n{sections}"
    );
}

/// H35: dlclose() while a pool thread runs work, then the work returns
/// into the pool and a cancel signal arrives: no crash, still mapped.
#[test]
fn h35_dlclose_while_work_runs_does_not_unmap_the_library() {
    let dir = shared_lib_dir();
    let exe = out_path("dlclose_test");
    compile(
        "dlclose_test",
        &exe,
        &["-ldl".to_owned(), "-lpthread".to_owned()],
    );
    let mut cmd = Command::new(&exe);
    cmd.arg(dir.join("libhangsafe.so.0"));
    run_c_test(cmd, "dlclose_test", Duration::from_secs(120));
}
