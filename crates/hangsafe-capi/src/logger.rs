//! Where the library's messages go: stderr, or the application's callback.
//!
//! The core library reports through the `log` crate, and a C program has no
//! Rust logger to receive those records. On the first call into the C ABI
//! this module installs [`CLogger`], unless a logger is already set (a Rust
//! program that links the library keeps its own).
//!
//! The level comes from the environment variable `HANGSAFE_LOG`: one of
//! `off`, `error`, `warn`, `info`, `debug`, `trace` (case-insensitive);
//! unset or empty means `warn`. [`hs_set_log_level`] overrides it.
//!
//! Sinks. By default each record is one line on stderr,
//! `hangsafe: <level>: <message>`. [`hs_set_log_callback`] routes every
//! record to a C function instead, as `(priority, "hangsafe: <message>",
//! arg)` with syslog priorities (error `LOG_ERR`, warn `LOG_WARNING`, info
//! `LOG_INFO`, debug and trace `LOG_DEBUG`).
//!
//! Repeats. Identical messages (same level and text) are rate-limited for
//! every sink by a [`RepeatFilter`] with a [`REPEAT_WINDOW`] window: the
//! first passes, the rest are counted and reported once the window is over,
//! as "last message repeated N times: ...", before the next message.
//!
//! The callback guarantee (documented in `hangsafe.h`): the callback is
//! called with a read lock on the sink held, and [`hs_set_log_callback`]
//! takes the write lock. So when `hs_set_log_callback` returns, no call of
//! the previous callback is running on any thread and none will start: the
//! previous `arg` may be freed. A message logged by a hangsafe call made
//! from inside the callback (on the same thread) is dropped rather than
//! delivered recursively, and `hs_set_log_callback` called from inside the
//! callback fails with `EDEADLK` instead of waiting for itself.

use crate::ratelimit::{Decision, Repeat, RepeatFilter};
use crate::{barrier, errno};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The environment variable that selects the level.
const ENV: &str = "HANGSAFE_LOG";

/// The level used when `HANGSAFE_LOG` is unset, empty or not understood.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Warn;

/// Every line starts with this.
const PREFIX: &str = "hangsafe: ";

/// How long identical messages are suppressed after one passes.
pub(crate) const REPEAT_WINDOW: Duration = Duration::from_secs(5);

/// syslog priorities (`<syslog.h>`).
const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
const LOG_INFO: c_int = 6;
const LOG_DEBUG: c_int = 7;

/// The C callback type: `void (*)(int priority, const char *msg, void *arg)`.
pub type HsLogFn = extern "C" fn(priority: c_int, msg: *const c_char, arg: *mut c_void);

/// The application's callback and its argument.
#[derive(Clone, Copy)]
struct Callback {
    func: HsLogFn,
    arg: *mut c_void,
}

// SAFETY: `arg` is never dereferenced here; it is only handed back to the
// application's callback, which hangsafe.h documents may be called from any
// thread (the application vouches for `arg` being usable there).
unsafe impl Send for Callback {}
// SAFETY: as above; a shared `Callback` is only copied and called.
unsafe impl Sync for Callback {}

/// The current sink: `None` is stderr.
static SINK: RwLock<Option<Callback>> = RwLock::new(None);

/// The repeat filter in front of every sink.
static REPEATS: RepeatFilter = RepeatFilter::new(REPEAT_WINDOW);

/// Whether [`CLogger`] is the process's logger (not a host program's).
static OURS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread runs the application's callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Sends each record through the repeat filter to the current sink.
struct CLogger;

static LOGGER: CLogger = CLogger;

impl Log for CLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) || in_callback() {
            return;
        }
        let text = record.args().to_string();
        let text = text.strip_prefix(PREFIX).unwrap_or(&text);
        let level = record.level();
        let mut due = Vec::new();
        let decision = REPEATS.check(level as u8, text, Instant::now(), &mut due);
        for repeat in &due {
            emit(level_of(repeat), &repeat.message());
        }
        if decision == Decision::Pass {
            emit(level, text);
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn in_callback() -> bool {
    IN_CALLBACK.try_with(Cell::get).unwrap_or(true)
}

/// The `log` level a [`Repeat`] was recorded with.
fn level_of(repeat: &Repeat) -> Level {
    match repeat.level {
        1 => Level::Error,
        2 => Level::Warn,
        3 => Level::Info,
        4 => Level::Debug,
        _ => Level::Trace,
    }
}

/// The syslog priority of a `log` level.
pub(crate) fn priority(level: Level) -> c_int {
    match level {
        Level::Error => LOG_ERR,
        Level::Warn => LOG_WARNING,
        Level::Info => LOG_INFO,
        Level::Debug | Level::Trace => LOG_DEBUG,
    }
}

/// Outputs one message (without prefix) to the current sink.
fn emit(level: Level, msg: &str) {
    let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
    match *sink {
        Some(cb) => {
            let line = format!("{PREFIX}{msg}").replace('\0', "\\0");
            let Ok(line) = CString::new(line) else {
                return; // unreachable: NULs were replaced
            };
            let _ = IN_CALLBACK.try_with(|c| c.set(true));
            (cb.func)(priority(level), line.as_ptr(), cb.arg);
            let _ = IN_CALLBACK.try_with(|c| c.set(false));
        }
        None => {
            // One write per line, so lines of concurrent threads do not
            // mix. A failing stderr is ignored: logging must never fail
            // the caller.
            let line = format_line(level, msg);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// Builds one stderr line. The core library already starts most messages
/// with `"hangsafe: "`; that is not repeated.
fn format_line(level: Level, msg: &str) -> String {
    let msg = msg.strip_prefix(PREFIX).unwrap_or(msg);
    let level = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
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

/// Installs the logger once per process, if no logger is set yet. Cheap
/// after the first call (one atomic load).
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
    OURS.store(true, Ordering::Release);
    log::set_max_level(parsed.unwrap_or(DEFAULT_LEVEL));
    if parsed.is_none() {
        log::warn!(
            "{ENV}={:?} is not one of off, error, warn, info, debug, trace; using warn",
            text.as_deref().unwrap_or_default()
        );
    }
}

/// The level filter for a syslog priority: messages at `priority` or more
/// severe pass. `None` for a value that is not a syslog priority.
fn filter_for(priority: c_int) -> Option<LevelFilter> {
    Some(match priority {
        0..=2 => LevelFilter::Off, // hangsafe logs nothing above LOG_ERR
        LOG_ERR => LevelFilter::Error,
        LOG_WARNING | 5 => LevelFilter::Warn, // 5 is LOG_NOTICE
        LOG_INFO => LevelFilter::Info,
        LOG_DEBUG => LevelFilter::Trace,
        _ => return None,
    })
}

/// Routes every message of the library to `func` (or back to stderr if
/// `func` is NULL), with `arg` passed through. Returns 0, or -1 with
/// `errno` set: `EDEADLK` if called from inside the current callback,
/// `ENOTSUP` if the process has another (Rust) logger.
///
/// When it returns 0, no call of the previous callback is running on any
/// thread and none will start.
///
/// # Safety
///
/// `func`, if not NULL, must be a function safe to call from any thread
/// with `arg`, until the next `hs_set_log_callback` returns.
#[no_mangle]
pub unsafe extern "C" fn hs_set_log_callback(func: Option<HsLogFn>, arg: *mut c_void) -> c_int {
    // Not barrier::run: that would install the logger (and complain about a
    // bad HANGSAFE_LOG) before the callback is in place.
    barrier::run_signal_safe("hs_set_log_callback", -1, || {
        if in_callback() {
            errno::set(libc::EDEADLK);
            return -1;
        }
        {
            let mut sink = SINK.write().unwrap_or_else(PoisonError::into_inner);
            *sink = func.map(|func| Callback { func, arg });
        }
        // Installed after the callback is set, so that a complaint about
        // HANGSAFE_LOG already goes to the callback.
        ensure_installed();
        if OURS.load(Ordering::Acquire) {
            0
        } else {
            errno::set(libc::ENOTSUP);
            -1
        }
    })
}

/// Sets the most verbose syslog priority delivered (`LOG_ERR` ...
/// `LOG_DEBUG`; 0..=2 silence the library). Returns 0, or -1 with `errno`
/// = `EINVAL` for a value outside 0..=7, `ENOTSUP` if the process has
/// another (Rust) logger.
#[no_mangle]
pub extern "C" fn hs_set_log_level(priority: c_int) -> c_int {
    barrier::run("hs_set_log_level", -1, || {
        let Some(filter) = filter_for(priority) else {
            log::error!("hs_set_log_level: {priority} is not a syslog priority (0..7)");
            errno::set(libc::EINVAL);
            return -1;
        };
        if !OURS.load(Ordering::Acquire) {
            errno::set(libc::ENOTSUP);
            return -1;
        }
        log::set_max_level(filter);
        0
    })
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
            format_line(Level::Warn, "hangsafe: runner dead"),
            "hangsafe: warning: runner dead\n"
        );
        assert_eq!(
            format_line(Level::Error, "get_runner: bad"),
            "hangsafe: error: get_runner: bad\n"
        );
    }

    #[test]
    fn syslog_priorities() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
        assert_eq!(priority(Level::Trace), 7);
        assert_eq!(filter_for(-1), None);
        assert_eq!(filter_for(8), None);
        assert_eq!(filter_for(2), Some(LevelFilter::Off));
        assert_eq!(filter_for(7), Some(LevelFilter::Trace));
    }

    #[test]
    fn repeat_levels_round_trip() {
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            let r = Repeat {
                level: level as u8,
                text: String::new(),
                count: 1,
            };
            assert_eq!(level_of(&r), level);
        }
    }
}
