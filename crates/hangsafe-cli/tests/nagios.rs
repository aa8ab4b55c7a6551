//! End-to-end tests of `hangsafe check --format nagios`, the Nagios/Icinga
//! plugin mode: the real binary, its exit status (0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN), its status line and perfdata parsed exactly,
//! and its figures against `check_disk` (monitoring-plugins) where that is
//! installed (mandatory when `CI` is set).
//!
//! Timing: targets expected to answer get a long `--timeout`; the hung
//! FIFO a short one, with only a generous upper bound on the wall time.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Slack on top of `--timeout` for start-up, the grace period and exit.
const MARGIN: Duration = Duration::from_secs(5);

/// check_disk from Debian's monitoring-plugins-basic.
const CHECK_DISK: &str = "/usr/lib/nagios/plugins/check_disk";

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The status line, split at its one `|`: the text and the perfdata.
    fn status_line(&self) -> (&str, Vec<Item>) {
        let first = self.stdout.lines().next().unwrap_or_default();
        assert_eq!(first.matches('|').count(), 1, "{}", self.stdout);
        let (text, perf) = first.split_once(" | ").expect("' | ' on the status line");
        (text, parse_perfdata(perf))
    }
}

/// `hangsafe ARGS`, bounded by `bound`.
fn hangsafe(args: &[&str], bound: Duration) -> Run {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .args(args)
        .env_remove("HANGSAFE_CANCEL_SIGNAL")
        .output()
        .expect("cannot run hangsafe");
    let took = start.elapsed();
    let run = Run {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    };
    assert!(
        took < bound,
        "{args:?} took {took:?}\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// `hangsafe check --format nagios ARGS` with a 30 s timeout.
fn nagios(args: &[&str]) -> Run {
    let mut all = vec!["check", "--format", "nagios", "-t", "30s"];
    all.extend_from_slice(args);
    hangsafe(&all, Duration::from_secs(30) + MARGIN)
}

/// A perfdata item: its label and its fields (value with UOM, warn, crit,
/// min, max; trailing empty ones dropped).
type Item = (String, Vec<String>);

/// Parses perfdata as the plugin guidelines define it: blank-separated
/// `'label'=value[UOM];[warn];[crit];[min];[max]`, the quotes optional
/// unless the label holds a blank, `''` a quote inside quotes.
fn parse_perfdata(s: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let b: Vec<char> = s.trim().chars().collect();
    let mut i = 0;
    while i < b.len() {
        let mut label = String::new();
        if b[i] == '\'' {
            i += 1;
            loop {
                assert!(i < b.len(), "unterminated label in {s:?}");
                if b[i] == '\'' && b.get(i + 1) == Some(&'\'') {
                    label.push('\'');
                    i += 2;
                } else if b[i] == '\'' {
                    i += 1;
                    break;
                } else {
                    label.push(b[i]);
                    i += 1;
                }
            }
            assert_eq!(b.get(i), Some(&'='), "{s:?}");
        } else {
            while b[i] != '=' {
                assert!(b[i] != ' ' && b[i] != '\'', "{s:?}");
                label.push(b[i]);
                i += 1;
            }
        }
        i += 1;
        let mut rest = String::new();
        while i < b.len() && b[i] != ' ' {
            rest.push(b[i]);
            i += 1;
        }
        while i < b.len() && b[i] == ' ' {
            i += 1;
        }
        items.push((label, rest.split(';').map(str::to_owned).collect()));
    }
    items
}

/// A value with its UOM: the number and the unit.
fn value(field: &str) -> (f64, &str) {
    let split = field
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(field.len());
    let n = field[..split]
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {field}"));
    (n, &field[split..])
}

/// A fresh directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hangsafe-nagios-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fields of a healthy directory's space item: used bytes (B), the
/// two thresholds, 0 and a size at least the used bytes.
fn assert_space_item(item: &Item, label: &str) {
    assert_eq!(item.0, label);
    assert_eq!(item.1.len(), 5, "{item:?}");
    let (used, uom) = value(&item.1[0]);
    assert_eq!(uom, "B", "{item:?}");
    assert_eq!(item.1[3], "0");
    let (max, _) = value(&item.1[4]);
    assert!(used <= max && max > 0.0, "{item:?}");
}

#[test]
fn a_healthy_directory_is_ok() {
    let dir = Scratch::new();
    let r = nagios(&[dir.s()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (text, perf) = r.status_line();
    assert_eq!(text, "HANGSAFE OK - 1 of 1 up");
    assert_eq!(perf.len(), 2, "{perf:?}");
    assert_space_item(&perf[0], dir.s());
    assert_eq!(perf[0].1[1], "");
    assert_eq!(perf[1].0, format!("{} latency", dir.s()));
    let (secs, uom) = value(&perf[1].1[0]);
    assert_eq!(uom, "s");
    assert!((0.0..30.0).contains(&secs), "{perf:?}");
    assert_eq!(perf[1].1[1..], ["", "", "0", "30.000000"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[1].starts_with(&format!("[OK] {}: up ", dir.s())) && lines[1].contains("% inode="),
        "{}",
        lines[1]
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn a_usage_threshold_warns() {
    let dir = Scratch::new();
    // Any filesystem has at most 100% free: WARNING.
    let r = nagios(&["--warning", "100%", "--critical", "0.5%", dir.s()]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let (text, perf) = r.status_line();
    let prefix = format!("HANGSAFE WARNING - 1 of 1 warning: {} (", dir.s());
    assert!(
        text.starts_with(&prefix) && text.ends_with("% free, limit 100%)"),
        "{text}"
    );
    assert_space_item(&perf[0], dir.s());
    // The warning floor as used bytes: 0 (all of it may be free).
    assert_eq!(perf[0].1[1], "0");
    assert!(!perf[0].1[2].is_empty());
    // A size floor beyond any disk is critical.
    let r = nagios(&["-w", "1P", "-c", "2P", dir.s()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.contains("1 of 1 critical: "), "{}", r.stdout);
    assert!(r.stdout.contains(" PiB free, limit 2PiB)"), "{}", r.stdout);
}

#[test]
fn a_missing_path_is_critical() {
    let dir = Scratch::new();
    let missing = dir.path("missing");
    let r = nagios(&[dir.s(), s(&missing)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let (text, perf) = r.status_line();
    assert_eq!(
        text,
        format!(
            "HANGSAFE CRITICAL - 1 of 2 down: {} (stat: No such file or directory (os error 2))",
            s(&missing)
        )
    );
    let labels: Vec<&str> = perf.iter().map(|p| p.0.as_str()).collect();
    let want = [
        dir.s().to_owned(),
        format!("{} latency", dir.s()),
        format!("{} latency", s(&missing)),
    ];
    assert_eq!(labels, want);
    assert!(
        r.stdout
            .lines()
            .nth(2)
            .unwrap()
            .starts_with(&format!("[CRITICAL] {}: down ", s(&missing))),
        "{}",
        r.stdout
    );
}

#[test]
fn a_hung_fifo_is_critical_on_time() {
    let dir = Scratch::new();
    let fifo = dir.path("fifo");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let timeout = Duration::from_millis(500);
    let r = hangsafe(
        &[
            "check",
            "--format",
            "nagios",
            "-t",
            "500ms",
            dir.s(),
            s(&fifo),
        ],
        timeout + MARGIN,
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let (text, perf) = r.status_line();
    let prefix = format!(
        "HANGSAFE CRITICAL - 1 of 2 timed out: {} (in open for ",
        s(&fifo)
    );
    assert!(text.starts_with(&prefix) && text.ends_with(")"), "{text}");
    // A FIFO's filesystem answered statfs: its space item, then latency U.
    assert_eq!(perf.len(), 3, "{perf:?}");
    assert_eq!(perf[2].0, format!("{} latency", s(&fifo)));
    assert_eq!(perf[2].1, ["U", "", "", "0", "0.500000"]);
    // Nagios reads stdout only: nothing on stderr.
    assert_eq!(r.stderr, "");
}

#[test]
fn h95_bad_arguments_are_unknown_not_64() {
    for args in [
        &["--warning", "10:20", "/"][..],
        &["--bogus", "/"],
        &["-w", "5X", "/"],
        &["-t", "0", "/"],
        &["http://x"],
    ] {
        let r = nagios(args);
        assert_eq!(r.code, 3, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stdout.starts_with("HANGSAFE UNKNOWN - usage error: "),
            "{args:?}: {}",
            r.stdout
        );
        assert!(!r.stderr.is_empty(), "{args:?}");
    }
    // --help too (the plugin guidelines), on stdout.
    let r = hangsafe(&["check", "--format=nagios", "--help"], MARGIN);
    assert_eq!(r.code, 3);
    assert!(r.stdout.contains("With --format nagios:"), "{}", r.stdout);
    // Thresholds without the plugin mode are the usual usage error.
    let r = hangsafe(&["check", "-w", "10%", "/"], MARGIN);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("need --format nagios"), "{}", r.stderr);
}

/// check_disk's status line: `DISK STATUS - free space: / 33270MiB (35%
/// inode=96%);| /=USEDB;W;C;0;TOTAL`: its free MiB, free percent, and
/// perfdata fields.
fn check_disk(args: &[&str]) -> (i32, u64, u64, Vec<String>) {
    let out = Command::new(CHECK_DISK)
        .args(args)
        .output()
        .expect("check_disk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, perf) = text.trim().split_once('|').expect(&text);
    let free = head.split("free space: ").nth(1).expect(&text);
    let mut words = free.split_whitespace().skip(1);
    let mib = words
        .next()
        .unwrap()
        .trim_end_matches("MiB")
        .parse()
        .unwrap();
    let pct = words
        .next()
        .unwrap()
        .trim_start_matches('(')
        .trim_end_matches('%')
        .parse()
        .unwrap();
    let items = parse_perfdata(perf);
    (out.status.code().unwrap(), mib, pct, items[0].1.clone())
}

/// hangsafe's figures for `/`: exit status, free MiB and percent from the
/// long text, and the space perfdata fields.
fn hangsafe_disk(args: &[&str]) -> (i32, u64, u64, Vec<String>) {
    let mut all = args.to_vec();
    all.push("/");
    let r = nagios(&all);
    let line = r.stdout.lines().nth(1).unwrap().to_owned();
    let free = line.split("; free ").nth(1).expect(&line);
    let mut words = free.split_whitespace();
    let mib = words.next().unwrap().parse().unwrap();
    words.next(); // MiB
    let pct = words
        .next()
        .unwrap()
        .trim_start_matches('(')
        .trim_end_matches('%')
        .parse()
        .unwrap();
    (r.code, mib, pct, r.status_line().1[0].1.clone())
}

/// Whether two byte counts agree within check_disk's rounding (it rounds
/// to whole MiB) and what other processes wrote between the two runs.
fn close(a: &str, b: &str, slack: f64) -> bool {
    (value(a).0 - value(b).0).abs() <= slack
}

#[test]
fn figures_agree_with_check_disk() {
    if !Path::new(CHECK_DISK).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHECK_DISK} is required under CI (monitoring-plugins-basic)"
        );
        eprintln!("skipped: {CHECK_DISK} not installed (apt install monitoring-plugins-basic)");
        return;
    }
    // The machine is shared: other processes write while the two run.
    // Agreement is required within 1 MiB of rounding plus 64 MiB of churn,
    // in one of five tries.
    const MIB: f64 = 1048576.0;
    let slack = MIB + 64.0 * MIB;
    let mut last = String::new();
    for thresholds in [["-w", "10%", "-c", "5%"], ["-w", "100%", "-c", "1%"]] {
        let mut agreed = false;
        for _ in 0..5 {
            let theirs = check_disk(&[&thresholds[..], &["-p", "/"]].concat());
            let ours = hangsafe_disk(&thresholds);
            last = format!("check_disk {theirs:?}\nhangsafe {ours:?}");
            agreed = theirs.0 == ours.0
                && theirs.1.abs_diff(ours.1) <= 64
                && theirs.2 == ours.2
                && theirs.3.len() == ours.3.len()
                && theirs
                    .3
                    .iter()
                    .zip(&ours.3)
                    .all(|(t, o)| (t.is_empty() && o.is_empty()) || close(t, o, slack));
            if agreed {
                break;
            }
        }
        assert!(agreed, "{thresholds:?}:\n{last}");
    }
    eprintln!("agreed: {last}");
}

/// H92: a target name is hostile input. A `|` would end the status text
/// and start the perfdata early, a newline would end the status line, a
/// quote or a blank would end a label: they are escaped (`\ooo`) or
/// quoted (quotes doubled), and the output keeps its shape.
#[test]
fn h92_target_names_cannot_break_the_plugin_output() {
    let dir = Scratch::new();
    let evil = dir.path("a|b c'd=e\nf");
    std::fs::create_dir(&evil).unwrap();
    let r = nagios(&["-w", "100%", s(&evil)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    let (text, perf) = r.status_line();
    let shown = format!("{}/a\\174b c'd=e\\012f", dir.s());
    assert!(
        text.starts_with(&format!("HANGSAFE WARNING - 1 of 1 warning: {shown} (")),
        "{text}"
    );
    let labels: Vec<&str> = perf.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(labels, [shown.clone(), format!("{shown} latency")]);
    assert!(
        r.stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("[WARNING] {shown}: up")),
        "{}",
        r.stdout
    );
}

/// H96: a filesystem with no blocks (proc, sysfs) has no free share: no
/// space verdict and no space series, rather than "0% free" (or a
/// division by zero).
#[test]
fn h96_a_filesystem_without_blocks_gets_no_space_verdict() {
    let r = nagios(&["-w", "100%", "-c", "1G", "-W", "100", "/proc"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let (text, perf) = r.status_line();
    assert_eq!(text, "HANGSAFE OK - 1 of 1 up");
    assert_eq!(perf.len(), 1, "{perf:?}");
    assert_eq!(perf[0].0, "/proc latency");
}
