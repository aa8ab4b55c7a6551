//! `check --format nagios`: the Nagios/Icinga plugin output of the
//! monitoring-plugins development guidelines. One status line,
//! `HANGSAFE <STATUS> - <summary> | <perfdata>`, then one line per target
//! (the long text), and the status as the exit code: 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN ([`crate::exit::NAGIOS`]).
//!
//! A target is CRITICAL when it is down or timed out or crosses a critical
//! threshold, WARNING when it crosses a warning threshold, UNKNOWN when its
//! probe could not be started, OK otherwise; the command's status is the
//! worst, CRITICAL over WARNING over UNKNOWN over OK (a known problem
//! outranks an unknown state, as in the other output formats).
//!
//! Perfdata, `'label'=value[UOM];[warn];[crit];[min];[max]`, per target:
//! - `'TARGET'=USEDB;W;C;0;TOTAL` for a filesystem (check_disk's series:
//!   used bytes, the thresholds as used-bytes "high tides", the size);
//! - `'TARGET (inodes)'=USED;W;C;0;TOTAL` when an inode threshold is set;
//! - `'TARGET latency'=SECONDSs;W;C;0;TIMEOUT`, `U` (undetermined) when
//!   the probe did not answer.
//!
//! Target names are hostile input: control characters (a newline would
//! end the status line) and `|` (which starts the perfdata) are written as
//! `\ooo` octal escapes everywhere, and a label with a blank, `=` or `'`
//! is quoted with its quotes doubled, as the guidelines say.

use crate::duration;
use crate::exit;
use crate::fsstats::FsStats;
use crate::report::{Report, State};
use crate::threshold::{InodeLimit, Limit};
use std::fmt::Write as _;
use std::time::Duration;

/// A plugin status, ordered by severity (the command takes the worst).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    /// Everything is fine.
    Ok,
    /// Something could not be checked.
    Unknown,
    /// A warning threshold is crossed.
    Warning,
    /// A target is down or timed out, or a critical threshold is crossed.
    Critical,
}

impl Status {
    /// The exit status ([`crate::exit`]'s Nagios codes).
    pub(crate) fn code(self) -> u8 {
        match self {
            Status::Ok => exit::NAGIOS_OK.code,
            Status::Warning => exit::NAGIOS_WARNING.code,
            Status::Critical => exit::NAGIOS_CRITICAL.code,
            Status::Unknown => exit::NAGIOS_UNKNOWN.code,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// The thresholds of the command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Thresholds {
    /// `--warning`: floors of free space (any crossed warns).
    pub warning: Vec<Limit>,
    /// `--critical`: floors of free space.
    pub critical: Vec<Limit>,
    /// `--iwarning`: a floor of free inodes.
    pub iwarning: Option<InodeLimit>,
    /// `--icritical`.
    pub icritical: Option<InodeLimit>,
    /// `--latency-warning`: an answer slower than this warns.
    pub latency_warning: Option<Duration>,
    /// `--latency-critical`.
    pub latency_critical: Option<Duration>,
}

/// One target's result, as the plugin output needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<'a> {
    /// The report (the other formats' row).
    pub report: &'a Report,
    /// What the probe's `statfs` found, if it got that far.
    pub fs: Option<FsStats>,
    /// For a timeout: the phase the probe was in, and for how long.
    pub phase: Option<&'a (String, Duration)>,
}

/// What one target means for the plugin.
struct Verdict {
    status: Status,
    /// The summary group: `timed out`, `down`, `critical`, `warning`,
    /// `not checked` or `up`.
    group: &'static str,
    /// Why, in a few words (for the summary).
    why: String,
}

/// The summary groups, in the order the status line lists them.
const GROUPS: [&str; 5] = ["timed out", "down", "critical", "warning", "not checked"];

/// The verdict on one row under `t`.
fn verdict(row: &Row<'_>, t: &Thresholds) -> Verdict {
    let r = row.report;
    let v = |status, group, why: String| Verdict { status, group, why };
    match r.state {
        State::Timeout => {
            let why = match row.phase {
                Some((phase, since)) if !phase.is_empty() => {
                    format!("in {phase} for {}", duration::format_latency(*since))
                }
                _ => r.detail.split(';').next().unwrap_or_default().to_owned(),
            };
            v(Status::Critical, "timed out", why)
        }
        State::Down => v(Status::Critical, "down", r.detail.clone()),
        State::Error | State::Pending => v(Status::Unknown, "not checked", r.detail.clone()),
        State::Up => {
            let critical = crossed(row, &t.critical, t.icritical, t.latency_critical);
            if !critical.is_empty() {
                return v(Status::Critical, "critical", critical.join("; "));
            }
            let warning = crossed(row, &t.warning, t.iwarning, t.latency_warning);
            if !warning.is_empty() {
                return v(Status::Warning, "warning", warning.join("; "));
            }
            v(Status::Ok, "up", String::new())
        }
    }
}

/// The thresholds of one level an up target crosses, described.
fn crossed(
    row: &Row<'_>,
    space: &[Limit],
    inodes: Option<InodeLimit>,
    latency: Option<Duration>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(fs) = &row.fs {
        for l in space {
            if l.breached(fs) == Some(true) {
                out.push(l.describe(fs));
            }
        }
        if let Some(l) = inodes {
            if l.breached(fs) == Some(true) {
                let free = fs.inodes_free_percent().unwrap_or(0);
                out.push(format!("inodes {free}% free, limit {l}"));
            }
        }
    }
    if let (Some(limit), Some(took)) = (latency, row.report.latency) {
        if took > limit {
            out.push(format!(
                "took {}, limit {}",
                duration::format_latency(took),
                duration::format(limit)
            ));
        }
    }
    out
}

/// The whole plugin output (status line, long text), and the status.
pub(crate) fn render(rows: &[Row<'_>], t: &Thresholds, timeout: Duration) -> (String, Status) {
    let verdicts: Vec<Verdict> = rows.iter().map(|r| verdict(r, t)).collect();
    let status = verdicts
        .iter()
        .map(|v| v.status)
        .max()
        .unwrap_or(Status::Ok);
    let mut out = format!(
        "HANGSAFE {} - {} |",
        status.name(),
        text(&summary(rows, &verdicts))
    );
    for row in rows {
        out.push(' ');
        out.push_str(&perfdata(row, t, timeout));
    }
    out.push('\n');
    for (row, v) in rows.iter().zip(&verdicts) {
        out.push_str(&text(&long_line(row, v)));
        out.push('\n');
    }
    (out, status)
}

/// `N of M timed out: T (why), ...; N of M down: ...`, or `M of M up`.
fn summary(rows: &[Row<'_>], verdicts: &[Verdict]) -> String {
    let m = rows.len();
    let mut parts = Vec::new();
    for group in GROUPS {
        let members: Vec<String> = rows
            .iter()
            .zip(verdicts)
            .filter(|(_, v)| v.group == group)
            .map(|(r, v)| format!("{} ({})", r.report.target, v.why))
            .collect();
        if !members.is_empty() {
            parts.push(format!(
                "{} of {m} {group}: {}",
                members.len(),
                members.join(", ")
            ));
        }
    }
    if parts.is_empty() {
        format!("{m} of {m} up")
    } else {
        parts.join("; ")
    }
}

/// One line of long text: `[STATUS] TARGET: state LATENCY - detail`, and
/// for a filesystem check_disk's figures: `free N MiB (P% inode=Q%)`.
fn long_line(row: &Row<'_>, v: &Verdict) -> String {
    let r = row.report;
    let mut line = format!("[{}] {}: {}", v.status.name(), r.target, r.state);
    if let Some(took) = r.latency {
        let _ = write!(line, " {}", duration::format_latency(took));
    }
    let _ = write!(line, " - {}", r.detail);
    if let Some(fs) = row.fs.filter(|fs| fs.blocks > 0) {
        let pct = |p: Option<u64>| p.map_or_else(|| "-".to_owned(), |p| format!("{p}%"));
        let _ = write!(
            line,
            "; free {} MiB ({} inode={})",
            fs.avail_bytes() >> 20,
            pct(fs.free_percent()),
            pct(fs.inodes_free_percent())
        );
    }
    if !v.why.is_empty() && matches!(v.group, "critical" | "warning") {
        let _ = write!(line, "; {}", v.why);
    }
    line
}

/// The perfdata of one row: space (filesystems), inodes (with an inode
/// threshold) and latency.
fn perfdata(row: &Row<'_>, t: &Thresholds, timeout: Duration) -> String {
    let target = &row.report.target;
    let mut items = Vec::new();
    if let Some(fs) = row.fs.filter(|fs| fs.blocks > 0) {
        let tide = |limits: &[Limit]| limits.iter().map(|l| l.used_high_tide(&fs)).min();
        items.push(item(
            &label(target),
            &fs.used_bytes().to_string(),
            "B",
            [
                tide(&t.warning).map(|v| v.to_string()),
                tide(&t.critical).map(|v| v.to_string()),
                Some("0".into()),
                Some(fs.total_bytes().to_string()),
            ],
        ));
        if fs.files > 0 && (t.iwarning.is_some() || t.icritical.is_some()) {
            let tide = |l: Option<InodeLimit>| l.map(|l| l.used_high_tide(&fs).to_string());
            items.push(item(
                &label(&format!("{target} (inodes)")),
                &fs.inodes_used().to_string(),
                "",
                [
                    tide(t.iwarning),
                    tide(t.icritical),
                    Some("0".into()),
                    Some(fs.files.to_string()),
                ],
            ));
        }
    }
    let (value, uom) = match row.report.latency {
        Some(d) if row.report.state == State::Up || row.report.state == State::Down => {
            (seconds(d), "s")
        }
        _ => ("U".to_owned(), ""),
    };
    items.push(item(
        &label(&format!("{target} latency")),
        &value,
        uom,
        [
            t.latency_warning.map(seconds),
            t.latency_critical.map(seconds),
            Some("0".into()),
            Some(seconds(timeout)),
        ],
    ));
    items.join(" ")
}

/// `label=valueUOM;warn;crit;min;max`, trailing empty fields dropped.
fn item(label: &str, value: &str, uom: &str, rest: [Option<String>; 4]) -> String {
    let mut fields: Vec<String> = rest.into_iter().map(Option::unwrap_or_default).collect();
    while fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    let mut out = format!("{label}={value}{uom}");
    for f in fields {
        out.push(';');
        out.push_str(&f);
    }
    out
}

/// A duration in seconds, to the microsecond.
fn seconds(d: Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// `s` with control characters and `|` as `\ooo` octal escapes, so that
/// it stays on its line and out of the perfdata.
pub(crate) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '|' {
            let _ = write!(out, "\\{:03o}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A perfdata label: [`text`], quoted (quotes doubled) when it holds a
/// blank, `=` or `'`.
pub(crate) fn label(s: &str) -> String {
    let t = text(s);
    if t.contains(|c: char| c.is_whitespace() || c == '=' || c == '\'') {
        format!("'{}'", t.replace('\'', "''"))
    } else {
        t
    }
}

/// The plugin output of a failure before any probe ran (`UNKNOWN` or
/// `CRITICAL`): one status line.
pub(crate) fn failure(status: Status, message: &str) -> String {
    format!("HANGSAFE {} - {}\n", status.name(), text(message))
}

/// Whether the command line `args` (program name first) asks for
/// `check --format nagios`, looked at before clap parses it, so that
/// even a usage error is reported the plugin way.
pub(crate) fn requested<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> bool {
    let args: Vec<std::ffi::OsString> = args.into_iter().skip(1).collect();
    let is_check = args.first().is_some_and(|a| a == "check");
    is_check
        && args.iter().enumerate().any(|(i, a)| {
            a == "--format=nagios"
                || (a == "--format" && args.get(i + 1).is_some_and(|n| n == "nagios"))
        })
}

/// A clap error (a usage error, or `--help`/`--version`) in the plugin
/// mode: the full message on stderr for a human, its first line on the
/// status line, and UNKNOWN.
pub(crate) fn usage_error(e: &clap::Error) -> std::process::ExitCode {
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .map(|l| l.trim_start_matches("error: ").trim())
        .find(|l| !l.is_empty())
        .unwrap_or("usage error");
    if e.use_stderr() {
        eprint!("{rendered}");
        super::print_stdout(&failure(Status::Unknown, &format!("usage error: {first}")));
    } else {
        // --help, --version: printed as asked, with the plugin status.
        super::print_stdout(&rendered);
    }
    std::process::ExitCode::from(Status::Unknown.code())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A perfdata item split into its label and its fields.
    pub(crate) type Item = (String, Vec<String>);

    /// Parses the perfdata after the status line's `|`, with the
    /// guidelines' quoting: items are separated by blanks, a label in
    /// single quotes may hold blanks and `=`, and `''` is a quote.
    pub(crate) fn parse_perfdata(s: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut chars = s.trim().chars().peekable();
        while chars.peek().is_some() {
            let mut label = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            label.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => label.push(c),
                        None => panic!("unterminated label in {s:?}"),
                    }
                }
                assert_eq!(chars.next(), Some('='), "{s:?}");
            } else {
                for c in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    assert!(!c.is_whitespace() && c != '\'', "{s:?}");
                    label.push(c);
                }
            }
            let mut rest = String::new();
            for c in chars.by_ref() {
                if c == ' ' {
                    break;
                }
                rest.push(c);
            }
            items.push((label, rest.split(';').map(str::to_owned).collect()));
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        }
        items
    }

    fn report(target: &str, state: State, latency_ms: Option<u64>, detail: &str) -> Report {
        Report {
            target: target.into(),
            kind: "path",
            state,
            latency: latency_ms.map(Duration::from_millis),
            detail: detail.into(),
        }
    }

    /// 1000 MiB, `avail` MiB available, nothing reserved, 10% of the
    /// inodes free.
    fn fs(avail: u64) -> FsStats {
        FsStats {
            block_size: 4096,
            bsize: 4096,
            blocks: 256_000,
            bfree: avail * 256,
            bavail: avail * 256,
            files: 1000,
            ffree: 100,
        }
    }

    fn two() -> Duration {
        Duration::from_secs(2)
    }

    #[test]
    fn ok_prints_the_count_and_every_series() {
        let root = report("/", State::Up, Some(1), "directory on ext4, read 3 entries");
        let tcp = report("tcp://db:5432", State::Up, Some(2), "connected");
        let rows = [
            Row {
                report: &root,
                fs: Some(fs(600)),
                phase: None,
            },
            Row {
                report: &tcp,
                fs: None,
                phase: None,
            },
        ];
        let t = Thresholds {
            warning: vec![Limit::parse("10%").unwrap()],
            critical: vec![Limit::parse("5%").unwrap(), Limit::parse("100").unwrap()],
            ..Thresholds::default()
        };
        let (out, status) = render(&rows, &t, two());
        assert_eq!(status, Status::Ok);
        assert_eq!(
            out,
            "HANGSAFE OK - 2 of 2 up | /=419430400B;943718400;943718400;0;1048576000 \
             '/ latency'=0.001000s;;;0;2.000000 'tcp://db:5432 latency'=0.002000s;;;0;2.000000\n\
             [OK] /: up 1.0ms - directory on ext4, read 3 entries; free 600 MiB (60% inode=10%)\n\
             [OK] tcp://db:5432: up 2.0ms - connected\n"
        );
    }

    #[test]
    fn the_worst_status_wins_and_the_summary_groups_targets() {
        let hung = report("/mnt/nfs", State::Timeout, None, "no answer within 2s; ...");
        let gone = report(
            "/gone",
            State::Down,
            Some(0),
            "stat: No such file or directory",
        );
        let full = report("/var", State::Up, Some(1), "directory on xfs");
        let phase = ("stat".to_owned(), Duration::from_millis(1990));
        let rows = [
            Row {
                report: &hung,
                fs: None,
                phase: Some(&phase),
            },
            Row {
                report: &gone,
                fs: None,
                phase: None,
            },
            Row {
                report: &full,
                fs: Some(fs(80)),
                phase: None,
            },
        ];
        let t = Thresholds {
            warning: vec![Limit::parse("10%").unwrap()],
            ..Thresholds::default()
        };
        let (out, status) = render(&rows, &t, two());
        assert_eq!(status, Status::Critical);
        let first = out.lines().next().unwrap();
        assert!(
            first.starts_with(
                "HANGSAFE CRITICAL - 1 of 3 timed out: /mnt/nfs (in stat for 1.99s); \
                 1 of 3 down: /gone (stat: No such file or directory); \
                 1 of 3 warning: /var (8% free, limit 10%) | "
            ),
            "{first}"
        );
        let perf = parse_perfdata(first.split_once(" | ").unwrap().1);
        assert_eq!(
            perf[0],
            (
                "/mnt/nfs latency".into(),
                vec![
                    "U".into(),
                    "".into(),
                    "".into(),
                    "0".into(),
                    "2.000000".into()
                ]
            )
        );
        assert_eq!(perf[1].0, "/gone latency");
        assert_eq!(perf[2].0, "/var");
        assert_eq!(perf[2].1[1], "943718400");
        // A warning alone is WARNING; an unchecked target alone UNKNOWN.
        let (_, s) = render(&rows[2..], &t, two());
        assert_eq!(s, Status::Warning);
        let error = report("/x", State::Error, None, "probe not started: EAGAIN");
        let (out, s) = render(
            &[Row {
                report: &error,
                fs: None,
                phase: None,
            }],
            &t,
            two(),
        );
        assert_eq!(s, Status::Unknown);
        assert!(
            out.starts_with(
                "HANGSAFE UNKNOWN - 1 of 1 not checked: /x (probe not started: EAGAIN) | "
            ),
            "{out}"
        );
        assert_eq!(Status::Unknown.code(), 3);
    }

    #[test]
    fn the_mode_is_seen_before_parsing() {
        let yes = |a: &[&str]| requested(a.iter().map(std::ffi::OsString::from));
        assert!(yes(&["hangsafe", "check", "--format", "nagios", "-w", "x"]));
        assert!(yes(&["hangsafe", "check", "--bogus", "--format=nagios"]));
        assert!(!yes(&["hangsafe", "check", "--format", "json"]));
        assert!(!yes(&["hangsafe", "watch", "--format", "nagios"]));
        assert!(!yes(&["hangsafe", "check", "--format"]));
    }

    #[test]
    fn latency_and_inode_thresholds() {
        let slow = report("/", State::Up, Some(1500), "directory");
        let rows = [Row {
            report: &slow,
            fs: Some(fs(600)),
            phase: None,
        }];
        let t = Thresholds {
            latency_warning: Some(Duration::from_secs(1)),
            iwarning: Some(InodeLimit(5.0)),
            icritical: Some(InodeLimit(10.0)),
            ..Thresholds::default()
        };
        let (out, status) = render(&rows, &t, two());
        assert_eq!(status, Status::Critical);
        assert!(
            out.starts_with(
                "HANGSAFE CRITICAL - 1 of 1 critical: / (inodes 10% free, limit 10%) | "
            ),
            "{out}"
        );
        let perf = parse_perfdata(out.lines().next().unwrap().split_once(" | ").unwrap().1);
        assert_eq!(
            perf[1],
            (
                "/ (inodes)".into(),
                vec![
                    "900".into(),
                    "950".into(),
                    "900".into(),
                    "0".into(),
                    "1000".into()
                ]
            )
        );
        assert_eq!(
            perf[2].1[..2],
            ["1.500000s".to_owned(), "1.000000".to_owned()]
        );
        let t = Thresholds {
            latency_warning: Some(Duration::from_secs(1)),
            ..Thresholds::default()
        };
        let (out, status) = render(&rows, &t, two());
        assert_eq!(status, Status::Warning);
        assert!(
            out.contains("1 of 1 warning: / (took 1.50s, limit 1s)"),
            "{out}"
        );
    }
}
