//! A minimal stderr logger for C programs.
//!
//! The core library reports through the `log` crate, and a C program has no
//! Rust logger to receive those records. On the first call into the C ABI
//! this module installs [`StderrLogger`], unless a logger is already set
//! (a Rust program that links the library keeps its own).
//!
//! The level comes from the environment variable `HANGSAFE_LOG`: one of
//! `off`, `error`, `warn`, `info`, `debug`, `trace` (case-insensitive);
//! unset or empty means `warn`. Each record is one line on stderr:
//! `hangsafe: <level>: <message>`.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::Once;

/// The environment variable that selects the level.
const ENV: &str = "HANGSAFE_LOG";

/// The level used when `HANGSAFE_LOG` is unset, empty or not understood.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Warn;

/// Every line starts with this.
const PREFIX: &str = "hangsafe: ";

/// Writes each record as one line on stderr.
struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(record.level(), &record.args().to_string());
        // One write per line, so lines of concurrent threads do not mix.
        // A failing stderr is ignored: logging must never fail the caller.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Builds one output line. The core library already starts most messages
/// with `"hangsafe: "`; that is not repeated.
fn format_line(level: log::Level, msg: &str) -> String {
    let msg = msg.strip_prefix(PREFIX).unwrap_or(msg);
    let level = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    format!("{PREFIX}{level}: {msg}\n")
}

/// Parses a `HANGSAFE_LOG` value; `None` if it is not a level name.
fn parse_level(value: &str) -> Option<LevelFilter> {
    let v = value.trim();
    let level = if v.is_empty() {
        DEFAULT_LEVEL
    } else if v.eq_ignore_ascii_case("off") {
        LevelFilter::Off
    } else if v.eq_ignore_ascii_case("error") {
        LevelFilter::Error
    } else if v.eq_ignore_ascii_case("warn") || v.eq_ignore_ascii_case("warning") {
        LevelFilter::Warn
    } else if v.eq_ignore_ascii_case("info") {
        LevelFilter::Info
    } else if v.eq_ignore_ascii_case("debug") {
        LevelFilter::Debug
    } else if v.eq_ignore_ascii_case("trace") {
        LevelFilter::Trace
    } else {
        return None;
    };
    Some(level)
}

/// Installs the stderr logger once per process, if no logger is set yet.
/// Cheap after the first call (one atomic load).
pub(crate) fn ensure_installed() {
    static ONCE: Once = Once::new();
    ONCE.call_once(install);
}

fn install() {
    let raw = std::env::var_os(ENV);
    let text = raw.as_ref().map(|v| v.to_string_lossy());
    let parsed = match &text {
        None => Some(DEFAULT_LEVEL),
        Some(t) => parse_level(t),
    };
    if log::set_logger(&LOGGER).is_err() {
        // The host program has its own logger; leave it and its level alone.
        return;
    }
    log::set_max_level(parsed.unwrap_or(DEFAULT_LEVEL));
    if parsed.is_none() {
        log::warn!(
            "{ENV}={:?} is not one of off, error, warn, info, debug, trace; using warn",
            text.as_deref().unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level(""), Some(LevelFilter::Warn));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("ERROR"), Some(LevelFilter::Error));
        assert_eq!(parse_level(" warn "), Some(LevelFilter::Warn));
        assert_eq!(parse_level("Info"), Some(LevelFilter::Info));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("trace"), Some(LevelFilter::Trace));
        assert_eq!(parse_level("loud"), None);
    }

    #[test]
    fn lines_have_one_prefix() {
        assert_eq!(
            format_line(log::Level::Warn, "hangsafe: runner dead"),
            "hangsafe: warning: runner dead\n"
        );
        assert_eq!(
            format_line(log::Level::Error, "get_runner: bad"),
            "hangsafe: error: get_runner: bad\n"
        );
    }
}
