//! systemd notifications (`Type=notify`, `WatchdogSec=`), through the
//! `sd-notify` crate; nothing happens when `NOTIFY_SOCKET` is unset.
//!
//! `READY=1` is sent once the HTTP socket listens and the loop has turned
//! once. `WATCHDOG=1` is sent from the loop itself, after a turn, and only
//! if that turn came within the loop's own bound (its longest sleep plus
//! [`SLACK`]): a loop that stops turning stops the pings, and systemd
//! restarts the service. The loop's sleep is capped at a quarter of the
//! watchdog period, so a healthy loop pings well within it.

use std::time::{Duration, Instant};

/// How late a turn may come before the loop counts as unhealthy.
pub(crate) const SLACK: Duration = Duration::from_secs(1);

/// The notifier.
#[derive(Debug)]
pub(crate) struct Notifier {
    ready: bool,
    watchdog: Option<Duration>,
    last_turn: Instant,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// A notifier for this process's service (if any).
    pub(crate) fn new() -> Notifier {
        Notifier {
            ready: false,
            watchdog: sd_notify::watchdog_enabled(),
            last_turn: Instant::now(),
            last_ping: None,
        }
    }

    /// The longest the loop may sleep for the watchdog's sake.
    pub(crate) fn max_wait(&self) -> Option<Duration> {
        self.watchdog
            .map(|w| (w / 4).max(Duration::from_millis(10)))
    }

    /// After a turn of the loop: READY once, then WATCHDOG if the loop is
    /// healthy; `status` is the STATUS= line.
    pub(crate) fn turn(&mut self, status: &str) {
        let now = Instant::now();
        let bound = self
            .max_wait()
            .unwrap_or(Duration::MAX)
            .saturating_add(SLACK);
        let healthy = now.saturating_duration_since(self.last_turn) <= bound;
        self.last_turn = now;
        if !self.ready {
            self.ready = true;
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(status),
            ]);
        }
        let Some(w) = self.max_wait() else { return };
        let due = self
            .last_ping
            .is_none_or(|p| now.saturating_duration_since(p) >= w);
        if healthy && due {
            self.last_ping = Some(now);
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Watchdog,
                sd_notify::NotifyState::Status(status),
            ]);
        }
    }

    /// A reload began (SIGHUP) and ended.
    pub(crate) fn reloading(&self, done: bool) {
        let state = if done {
            sd_notify::NotifyState::Ready
        } else {
            sd_notify::NotifyState::Reloading
        };
        let _ = sd_notify::notify(&[state]);
    }

    /// The service is stopping.
    pub(crate) fn stopping(&self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}
