//! The command's logger: the hangsafe library reports its own trouble
//! (a thread that cannot be created, a timer failure, ...) through the
//! `log` crate, and without a logger those records would be lost. This
//! one writes them to stderr as `hangsafe: <level>: <message>`, at the
//! level `HANGSAFE_LOG` names (`off`, `error`, `warn`, `info`, `debug`,
//! `trace`; default `warn`).
//!
//! By default (no `HANGSAFE_LOG`) the library's warnings about a runner's
//! fate (a thread abandoned after its cancel, a runner dead after a panic;
//! log target [`RUNNER_FATES`]) are left out: the command reports those in
//! its own table and notes, and a stray stderr line would break `watch`'s
//! live view. Any explicit level shows them.
//!
//! Identical consecutive messages are collapsed, syslog style: the first
//! is written, the repeats are counted, and "last message repeated N
//! times" is written when a different message arrives, when a repeat
//! arrives more than [`REPEAT_WINDOW`] after the count started, and at
//! exit ([`log::Log::flush`]). A process that fails the same way 100,000
//! times writes two lines, not 100,000.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable that selects the level.
pub const ENV: &str = "HANGSAFE_LOG";

/// The longest time repeats are counted before their count is written.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// Every line starts with this.
const PREFIX: &str = "hangsafe: ";

/// The log target of the library's warnings about a runner's fate.
pub const RUNNER_FATES: &str = "hangsafe::runner::handle";

/// Collapses identical consecutive lines; the decision only, no I/O.
#[derive(Debug, Default)]
pub struct Repeats {
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    line: String,
    repeats: u64,
    since: Instant,
}

impl Repeats {
    /// The lines to write for `line`, logged at `now`.
    pub fn feed(&mut self, line: &str, now: Instant) -> Vec<String> {
        if let Some(last) = &mut self.last {
            if last.line == line {
                last.repeats += 1;
                if now.saturating_duration_since(last.since) < REPEAT_WINDOW {
                    return Vec::new();
                }
                let summary = repeated(last.repeats);
                last.repeats = 0;
                last.since = now;
                return vec![summary];
            }
        }
        let mut out: Vec<String> = self.flush().into_iter().collect();
        out.push(line.to_owned());
        self.last = Some(Last {
            line: line.to_owned(),
            repeats: 0,
            since: now,
        });
        out
    }

    /// The count of repeats not written yet, if any.
    pub fn flush(&mut self) -> Option<String> {
        let last = self.last.as_mut()?;
        let n = std::mem::take(&mut last.repeats);
        (n > 0).then(|| repeated(n))
    }
}

fn repeated(n: u64) -> String {
    format!(
        "{PREFIX}last message repeated {n} {}",
        if n == 1 { "time" } else { "times" }
    )
}

/// The stderr logger with [`Repeats`].
struct StderrLogger {
    repeats: Mutex<Repeats>,
    /// Leave out the warnings of [`RUNNER_FATES`] (no explicit level).
    quiet_fates: AtomicBool,
}

static LOGGER: StderrLogger = StderrLogger {
    repeats: Mutex::new(Repeats { last: None }),
    quiet_fates: AtomicBool::new(false),
};

/// Whether a record is one the command reports itself (see the module
/// documentation), when `quiet_fates`.
fn reported_by_the_command(level: log::Level, target: &str) -> bool {
    level == log::Level::Warn && target == RUNNER_FATES
}

impl StderrLogger {
    fn write(lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        // A failing stderr is ignored: logging must never fail the caller.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if self.quiet_fates.load(Ordering::Relaxed)
            && reported_by_the_command(record.level(), record.target())
        {
            return;
        }
        let line = format_line(record.level(), &record.args().to_string());
        // A poisoned lock only means a panic elsewhere while logging: keep
        // the state and go on.
        let mut repeats = self.repeats.lock().unwrap_or_else(|p| p.into_inner());
        let out = repeats.feed(&line, Instant::now());
        Self::write(&out);
    }

    fn flush(&self) {
        let mut repeats = self.repeats.lock().unwrap_or_else(|p| p.into_inner());
        let out: Vec<String> = repeats.flush().into_iter().collect();
        Self::write(&out);
        let _ = std::io::stderr().flush();
    }
}

/// One output line: `hangsafe: <level>: <message>` (the library's own
/// "hangsafe: " prefix is not repeated).
fn format_line(level: log::Level, msg: &str) -> String {
    let msg = msg.strip_prefix(PREFIX).unwrap_or(msg);
    let level = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    format!("{PREFIX}{level}: {msg}")
}

/// The level a `HANGSAFE_LOG` value names; `None` if it names none.
/// Unset or empty means `warn`.
pub fn parse_level(value: Option<&str>) -> Option<LevelFilter> {
    let v = value.unwrap_or("").trim();
    if v.is_empty() {
        return Some(LevelFilter::Warn);
    }
    let v = v.to_ascii_lowercase();
    Some(match v.as_str() {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Installs the logger (once; later calls do nothing). An unknown
/// `HANGSAFE_LOG` value is said on stderr, and `warn` is used.
pub fn install() {
    if log::set_logger(&LOGGER).is_err() {
        return;
    }
    let raw = std::env::var(ENV).ok();
    let level = parse_level(raw.as_deref());
    let explicit = raw.as_deref().is_some_and(|v| !v.trim().is_empty());
    LOGGER.quiet_fates.store(!explicit, Ordering::Relaxed);
    log::set_max_level(level.unwrap_or(LevelFilter::Warn));
    if level.is_none() {
        log::warn!(
            "{ENV}={:?} is not one of off, error, warn, info, debug, trace; using warn",
            raw.unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_are_counted_and_the_count_written_once() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.feed("a", t0), ["a"]);
        for _ in 0..99_999 {
            assert!(r.feed("a", t0).is_empty());
        }
        assert_eq!(
            r.feed("b", t0),
            ["hangsafe: last message repeated 99999 times", "b"]
        );
        assert_eq!(r.feed("a", t0), ["a"]);
        assert_eq!(r.flush(), None);
        assert!(r.feed("a", t0).is_empty());
        assert_eq!(
            r.flush().as_deref(),
            Some("hangsafe: last message repeated 1 time")
        );
        assert_eq!(r.flush(), None);
    }

    #[test]
    fn a_long_run_of_repeats_is_counted_per_window() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.feed("x", t0), ["x"]);
        assert!(r.feed("x", t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            r.feed("x", t0 + REPEAT_WINDOW),
            ["hangsafe: last message repeated 2 times"]
        );
        assert!(r
            .feed("x", t0 + REPEAT_WINDOW + Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            r.flush().as_deref(),
            Some("hangsafe: last message repeated 1 time")
        );
    }

    #[test]
    fn lines_and_levels() {
        assert_eq!(
            format_line(log::Level::Error, "hangsafe: cannot x"),
            "hangsafe: error: cannot x"
        );
        assert_eq!(format_line(log::Level::Warn, "y"), "hangsafe: warning: y");
        assert_eq!(parse_level(None), Some(LevelFilter::Warn));
        assert_eq!(parse_level(Some(" ")), Some(LevelFilter::Warn));
        assert_eq!(parse_level(Some("DEBUG")), Some(LevelFilter::Debug));
        assert_eq!(parse_level(Some("off")), Some(LevelFilter::Off));
        assert_eq!(parse_level(Some("loud")), None);
        assert!(reported_by_the_command(log::Level::Warn, RUNNER_FATES));
        assert!(!reported_by_the_command(log::Level::Error, RUNNER_FATES));
        assert!(!reported_by_the_command(
            log::Level::Warn,
            "hangsafe::cancel::signal"
        ));
    }
}
