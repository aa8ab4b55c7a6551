//! The real `hangsafe` binary's command line: help and version output,
//! usage errors, `hangsafe man` and `hangsafe bench`.
//!
//! Help completeness is checked two ways: each subcommand's `--help` must
//! mention the options the command is specified to have (issue 6) and an
//! "Exit status" section, and every option or argument the help lists must
//! carry a description. (The binary's own unit tests walk the clap tree
//! itself; see `src/cmd/man.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Exit status of a usage error.
const EXIT_USAGE: i32 = 64;

/// Every subcommand, with the options and arguments its `--help` must
/// mention.
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "check",
        &["--timeout", "--json", "--concurrency", "--all", "TARGET"],
    ),
    (
        "watch",
        &["--interval", "--timeout", "--json", "--publish", "TARGET"],
    ),
    (
        "serve",
        &[
            "--listen",
            "--config",
            "--interval",
            "--timeout",
            "--node-compat",
            "--probe-any",
            "TARGET",
        ],
    ),
    ("status", &["--json", "NAME"]),
    ("bench", &["--quick", "--json", "HANGSAFE_BENCH_SCALE"]),
    ("man", &["--dir"]),
];

fn hangsafe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangsafe"));
    c.args(args).env_remove("HANGSAFE_BENCH_SCALE");
    c
}

fn run(args: &[&str]) -> Output {
    hangsafe(args).output().expect("run hangsafe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh, empty directory under the system's temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hangsafe-cli-test-{tag}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts a help/version invocation succeeded with its text on stdout
/// only, and returns that text.
fn help_text(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "hangsafe {args:?}: {:?}\n{}",
        o.status,
        stderr(&o)
    );
    assert!(
        o.stderr.is_empty(),
        "hangsafe {args:?} wrote to stderr: {}",
        stderr(&o)
    );
    let s = stdout(&o);
    assert!(!s.trim().is_empty(), "hangsafe {args:?}: empty stdout");
    s
}

/// The entries (`-t, --timeout <DURATION>`, `[PATH]...`) of the "Options:"
/// and "Arguments:" sections of a long `--help`, each with the text of its
/// description (empty if it has none).
fn help_entries(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_section = false;
    for line in help.lines() {
        if line == "Options:" || line == "Arguments:" {
            in_section = true;
            continue;
        }
        if !line.starts_with(' ') && !line.is_empty() {
            in_section = false;
            continue;
        }
        if !in_section || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        let is_entry =
            indent <= 6 && (t.starts_with('-') || t.starts_with('<') || t.starts_with('['));
        if is_entry {
            // clap puts a short description on the same line, two or more
            // spaces after the name; a long one on the following lines.
            let (name, desc) = match t.find("  ") {
                Some(i) => (t[..i].to_owned(), t[i..].trim().to_owned()),
                None => (t.to_owned(), String::new()),
            };
            out.push((name, desc));
        } else if let Some(last) = out.last_mut() {
            if !last.1.is_empty() {
                last.1.push(' ');
            }
            last.1.push_str(t.trim());
        }
    }
    out
}

#[test]
fn main_help_lists_every_subcommand() {
    for flag in ["--help", "-h"] {
        let h = help_text(&[flag]);
        assert!(h.contains("Usage: hangsafe"), "{h}");
        for (sub, _) in SUBCOMMANDS {
            assert!(
                h.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
                "hangsafe {flag} does not list {sub}:\n{h}"
            );
        }
        assert!(h.contains("--version"), "{h}");
    }
    let h = help_text(&["--help"]);
    assert!(h.contains("Exit status"), "{h}");
}

#[test]
fn version_is_printed() {
    for flag in ["--version", "-V"] {
        let v = help_text(&[flag]);
        assert_eq!(v.trim(), format!("hangsafe {}", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn subcommand_help_is_complete() {
    let mut problems = Vec::new();
    for (sub, wanted) in SUBCOMMANDS {
        let long = help_text(&[sub, "--help"]);
        let short = help_text(&[sub, "-h"]);
        if !long.contains(&format!("Usage: hangsafe {sub}")) {
            problems.push(format!("{sub}: no usage line"));
        }
        for w in *wanted {
            if !long.contains(w) {
                problems.push(format!("{sub} --help does not mention {w}"));
            }
            if w.starts_with("--") && !short.contains(w) {
                problems.push(format!("{sub} -h does not mention {w}"));
            }
        }
        if !long.contains("Exit status") {
            problems.push(format!("{sub} --help has no Exit status section"));
        }
        let entries = help_entries(&long);
        if !entries.iter().any(|(n, _)| n.contains("--help")) {
            problems.push(format!("{sub}: could not parse the Options section"));
        }
        for (name, desc) in &entries {
            if desc.is_empty() {
                problems.push(format!("{sub}: {name} has no description"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "incomplete help:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn help_entries_parser() {
    let h = "Usage: x [OPTIONS]\n\nArguments:\n  [PATH]...\n          Paths to check\n\n\
             Options:\n  -t, --timeout <DURATION>\n          How long.\n          More.\n\n\
             \x20     --bare\n\n  -h, --help  Print help\n\nExit status:\n  0   fine\n";
    let e = help_entries(h);
    assert_eq!(
        e,
        vec![
            ("[PATH]...".to_owned(), "Paths to check".to_owned()),
            (
                "-t, --timeout <DURATION>".to_owned(),
                "How long. More.".to_owned()
            ),
            ("--bare".to_owned(), String::new()),
            ("-h, --help".to_owned(), "Print help".to_owned()),
        ]
    );
}

#[test]
fn usage_errors_exit_64() {
    let cases: &[&[&str]] = &[
        &[],
        &["--no-such-option"],
        &["no-such-subcommand"],
        &["bench", "--no-such-option"],
        &["bench", "extra-argument"],
        &["man", "--dir"],
        &["check", "--timeout", "soon"],
        &["status"],
    ];
    for args in cases {
        let o = run(args);
        assert_eq!(
            o.status.code(),
            Some(EXIT_USAGE),
            "hangsafe {args:?}: {:?}\nstdout: {}\nstderr: {}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        assert!(
            !o.stderr.is_empty(),
            "hangsafe {args:?}: no message on stderr"
        );
        assert!(o.stdout.is_empty(), "hangsafe {args:?}: wrote to stdout");
    }
}

#[test]
fn man_dir_writes_every_page() {
    let dir = temp_dir("man");
    let out = dir.join("man1"); // created by the command
    let o = run(&["man", "--dir", out.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}\n{}", o.status, stderr(&o));
    let listed = stdout(&o);
    let mut pages = vec![("hangsafe.1".to_owned(), "hangsafe".to_owned())];
    for (sub, _) in SUBCOMMANDS {
        pages.push((format!("hangsafe-{sub}.1"), format!("hangsafe-{sub}")));
    }
    for (file, title) in &pages {
        let path = out.join(file);
        let page =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            page.contains(&format!(".TH {title} 1 ")),
            "{file}: no .TH {title} 1 line:\n{page}"
        );
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH \"EXIT STATUS\"",
        ] {
            assert!(page.contains(section), "{file}: no {section}");
        }
        assert!(
            listed.contains(path.to_str().unwrap()),
            "{file} not listed: {listed}"
        );
    }
    let n = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(n, pages.len(), "unexpected files in {}", out.display());

    // Each subcommand's page documents its options (roff escapes '-').
    for (sub, wanted) in SUBCOMMANDS {
        let page = std::fs::read_to_string(out.join(format!("hangsafe-{sub}.1"))).unwrap();
        for w in wanted.iter().filter(|w| w.starts_with("--")) {
            let roff = w.replace('-', "\\-");
            assert!(page.contains(&roff), "hangsafe-{sub}.1 lacks {w}");
        }
    }
    // The main page lists the subcommands.
    let main = std::fs::read_to_string(out.join("hangsafe.1")).unwrap();
    for (sub, _) in SUBCOMMANDS {
        assert!(
            main.contains(&format!("hangsafe\\-{sub}(1)")),
            "hangsafe.1 lacks {sub}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn man_without_dir_prints_the_main_page() {
    let page = help_text(&["man"]);
    assert!(page.contains(".TH hangsafe 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
}

#[test]
fn man_unwritable_dir_exits_73() {
    let dir = temp_dir("man-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let bad: [&Path; 2] = [Path::new("/proc/hangsafe-no-such-dir/man1"), &file];
    for p in bad {
        let o = run(&["man", "--dir", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(73), "{}: {:?}", p.display(), o.status);
        let err = stderr(&o);
        assert!(
            err.starts_with("hangsafe man: cannot ") && err.contains(p.to_str().unwrap()),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench --quick` with a tiny workload: it runs, stays on time and prints
/// every part with ratios and verdicts.
#[test]
fn bench_quick_prints_ratios() {
    let t = Instant::now();
    let o = hangsafe(&["bench", "--quick"])
        .env("HANGSAFE_BENCH_SCALE", "0.05")
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    let out = stdout(&o);
    assert!(o.status.success(), "{:?}\n{out}\n{}", o.status, stderr(&o));
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    for want in [
        "CPU",
        "load average",
        "Runner round trip",
        "hangsafe runner::spawn + wait",
        "detached pthread per runner",
        "std::thread::spawn + join",
        "Cancel latency",
        "p50",
        "p99",
        "poll + eventfd",
        "Cancellable read",
        "raw syscall(SYS_read)",
        "glibc read",
        "hangsafe's overhead:",
        "README target",
        "Robust mutex, uncontended",
        "hangsafe RawRobustMutex",
        "glibc robust pshared",
        "glibc robust PI pshared",
        "std::sync::Mutex",
        "owner death with nobody waiting",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // One ratio and one verdict per peer row (2 + 1 + 3, then the robust
    // mutex: 3 uncontended, 2 + 2 with two processes where the machine
    // has two CPUs, 2 for recovery).
    let peers = if out.contains("skipped (needs two CPUs)") {
        11
    } else {
        15
    };
    assert_eq!(out.matches("× [").count(), peers, "{out}");
    assert_eq!(out.matches("    -> ").count(), peers, "{out}");
}

#[test]
fn bench_json_is_one_object() {
    let o = hangsafe(&["bench", "--quick", "--json"])
        .env("HANGSAFE_BENCH_SCALE", "0.02")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}\n{}", o.status, stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(v["machine_before"]["cpus"].as_u64().unwrap() >= 1);
    let sections = v["sections"].as_array().unwrap();
    let keys: Vec<_> = sections
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "runner_round_trip",
            "cancel_latency",
            "cancellable_read",
            "robust_uncontended",
            "robust_ping_pong",
            "robust_free_running",
            "robust_recovery"
        ]
    );
    for s in sections {
        let rows = s["rows"].as_array().unwrap();
        assert!(rows[0]["ratio"].is_null(), "the subject comes first");
        for r in &rows[1..] {
            let m = r["ratio"]["median"].as_f64().unwrap();
            assert!(m.is_finite() && m > 0.0, "{r}");
            assert!(r["verdict"].as_str().is_some(), "{r}");
        }
        for r in rows {
            for (_, ns) in r["values"].as_object().unwrap() {
                assert!(ns.as_f64().unwrap() > 0.0, "{r}");
            }
        }
    }
}

#[test]
fn bench_rejects_a_bad_scale() {
    let o = hangsafe(&["bench", "--quick"])
        .env("HANGSAFE_BENCH_SCALE", "fast")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(EXIT_USAGE));
    assert!(
        stderr(&o).contains("HANGSAFE_BENCH_SCALE"),
        "{}",
        stderr(&o)
    );
}
