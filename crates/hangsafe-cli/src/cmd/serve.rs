//! `hangsafe serve`: `watch`'s checker loop (the runner set, the per-target
//! hung rule, examine) exported over HTTP for Prometheus, with a status
//! page and blackbox-style on-demand probes.
//!
//! The main thread runs the loop ([`Watch`]); after every turn its
//! [`Hooks`] hand a snapshot to the HTTP side (`crate::serve`), ping the
//! systemd watchdog, and on SIGHUP re-read the configuration file. The
//! HTTP workers render pages from the latest snapshot and never probe.

use super::watch::{Hooks, Signals, Watch, WatchArgs, Watched};
use crate::exit;
use crate::serve::http::{self, Shared};
use crate::serve::notify::Notifier;
use crate::serve::ondemand::OnDemand;
use crate::serve::State;
use crate::snapshot::Snapshot;
use crate::watchlist;
use crate::{config, duration};
use hangsafe::nexus::RunnerSet;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default listen address: loopback only.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:9799";

const SERVE_ABOUT: &str = "Export the watch loop's results to Prometheus over HTTP";

const SERVE_LONG_ABOUT: &str = "\
Probe targets periodically, as `hangsafe watch` does (same loop: one probe
per target at a time, a hung probe keeps its target's key so no second
thread is started for it), and serve the results over HTTP:

  GET /metrics   the Prometheus exposition of the latest results (classic
                 text format, or OpenMetrics when the scraper asks for it),
                 rendered from the loop's state: a scrape never probes and
                 answers at once, even the first one (targets not decided
                 yet are \"pending\") and however many targets hang.
  GET /probe?target=T[&timeout=D]
                 a blackbox_exporter-style probe on demand (probe_success,
                 probe_duration_seconds, hangsafe_probe_phase_info), bounded
                 by D (default --timeout, at most 60s). A target whose
                 previous on-demand probe is still hung is answered at once
                 (probe_success 0 and its phase); no second thread starts.
                 Only the targets served are accepted unless --probe-any.
  GET /          a status page (HTML): targets, states, hung probes' phases.

Metrics: hangsafe_probe_success, hangsafe_probe_state{state},
hangsafe_probe_duration_seconds, hangsafe_probe_hung_seconds,
hangsafe_probe_phase_info{phase}, hangsafe_threads{state},
hangsafe_abandoned_threads_total, hangsafe_rounds_total, and for path
targets node_exporter's filesystem series as
hangsafe_filesystem_{size_bytes,free_bytes,avail_bytes,files,files_free,
readonly,device_error}{device,mountpoint,fstype} (with --node-compat also
as node_filesystem_*, so node_exporter can run with
--no-collector.filesystem and keep its dashboards). Probe series carry the
labels target and kind, plus a target's labels from the config file.

Configuration file (--config, TOML; unknown keys are errors, reported with
line and column):
  interval = \"5s\"          timeout = \"2s\"
  mounts = true            # also every mount point, minus:
  mount_points_exclude = \"^/(dev|proc|run|sys)($|/)\"
  fs_types_exclude = \"^(tmpfs|overlay)$\"
  [[target]]
  target = \"/mnt/nfs\"      timeout = \"3s\"   interval = \"30s\"
  labels = { team = \"storage\" }
Command-line --interval/--timeout win over the file's. With neither TARGET
nor config targets, every mount point is served (as for watch).

Signals: SIGTERM or SIGINT stop it within a second, hung probes or not
(exit status 0). SIGHUP re-reads the config file; a bad file is reported
on stderr and the running configuration kept. A reload changes the
targets and their settings (a target kept keeps its state and its hung
probe); the pace of the rounds is set at start.

systemd: with Type=notify it sends READY=1 once it listens and the loop
has turned, and with WatchdogSec= it sends WATCHDOG=1 from the loop only
while the loop turns within its bound (its sleeps are capped at a quarter
of the watchdog period), so a wedged loop gets the service restarted.";

const SERVE_EXAMPLES: &str = "\
Examples:
  hangsafe serve /mnt/nfs tcp://db:5432
  hangsafe serve --listen 0.0.0.0:9799 --config /etc/hangsafe/hangsafe.toml --node-compat
  curl -s 'http://127.0.0.1:9799/probe?target=/mnt/nfs&timeout=2s'";

/// Options of `hangsafe serve`.
#[derive(Debug, clap::Args)]
#[command(about = SERVE_ABOUT, long_about = SERVE_LONG_ABOUT, after_help = exit::after_help("serve", SERVE_EXAMPLES))]
pub(crate) struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Read targets and settings from a TOML file (re-read on SIGHUP)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Time between rounds of probes [default: the file's, else 5s]
    #[arg(short, long, value_name = "DURATION", value_parser = duration::parse)]
    interval: Option<Duration>,

    /// How long each probe may take [default: the file's, else 2s]
    #[arg(short, long, value_name = "DURATION", value_parser = duration::parse)]
    timeout: Option<Duration>,

    /// With every mount point: include pseudo filesystems
    #[arg(short, long)]
    all: bool,

    /// Also emit the filesystem series as node_exporter's node_filesystem_*
    #[arg(long)]
    node_compat: bool,

    /// Let GET /probe probe any target, not only the ones served
    #[arg(long)]
    probe_any: bool,

    /// Targets [default: the config file's, else every mount point]
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How the target list is made (kept for SIGHUP).
#[derive(Debug)]
struct Recipe {
    cli: Vec<String>,
    config: Option<PathBuf>,
    timeout: Option<Duration>,
    all: bool,
}

impl Recipe {
    /// The targets, with the config file read now; the error says why.
    fn build(&self) -> Result<(Vec<Watched>, Option<config::Config>), (String, u8)> {
        let cfg = match &self.config {
            Some(p) => Some(watchlist::load_config(p).map_err(|e| (e, exit::USAGE.code))?),
            None => None,
        };
        let timeout = self
            .timeout
            .or(cfg.as_ref().and_then(|c| c.timeout))
            .unwrap_or(DEFAULT_TIMEOUT);
        let src = watchlist::Sources {
            cli: &self.cli,
            config: cfg.as_ref(),
            timeout,
            all: self.all,
        };
        let deadline = duration::after(Instant::now(), timeout);
        let list = watchlist::build(&src, deadline).map_err(|e| (e.message, e.code))?;
        Ok((list, cfg))
    }
}

/// The loop's hooks in `serve`.
struct ServeHooks {
    state: Arc<State>,
    shared: Arc<Shared>,
    recipe: Recipe,
    notifier: Notifier,
}

impl Hooks for ServeHooks {
    fn observe(&mut self, snap: &Snapshot, _changed: bool) {
        let status = status_line(snap);
        self.state.publish(snap.clone());
        self.notifier.turn(&status);
    }

    fn reload(&mut self) -> Option<Vec<Watched>> {
        self.notifier.reloading(false);
        let r = match self.recipe.build() {
            Ok((list, _)) => {
                eprintln!(
                    "hangsafe serve: SIGHUP: configuration reloaded, {} targets",
                    list.len()
                );
                self.shared.ondemand.set_allowed(specs(&list));
                Some(list)
            }
            Err((e, _)) => {
                eprintln!("hangsafe serve: SIGHUP: {e}; keeping the running configuration");
                None
            }
        };
        self.notifier.reloading(true);
        r
    }

    fn max_wait(&self) -> Option<Duration> {
        // The watchdog's bound, and at least once a second so the
        // snapshot's "hung for" figures and the page stay fresh.
        Some(
            self.notifier
                .max_wait()
                .map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1))),
        )
    }
}

/// The systemd STATUS= line.
fn status_line(snap: &Snapshot) -> String {
    let up = snap
        .rows
        .iter()
        .filter(|r| r.state == crate::report::State::Up)
        .count();
    format!(
        "{up} of {} targets up; round {}; {} threads abandoned",
        snap.rows.len(),
        snap.round,
        snap.pool.threads_abandoned
    )
}

fn specs(list: &[Watched]) -> HashSet<String> {
    list.iter().map(|w| w.target.spec.clone()).collect()
}

/// Runs `hangsafe serve`.
pub(crate) fn run(args: ServeArgs) -> ExitCode {
    // First, before any thread exists.
    let signals = match Signals::block_these(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hangsafe serve: cannot set up signal handling: {e}");
            return ExitCode::from(exit::OSERR.code);
        }
    };
    let recipe = Recipe {
        cli: args.targets.clone(),
        config: args.config.clone(),
        timeout: args.timeout,
        all: args.all,
    };
    let (list, cfg) = match recipe.build() {
        Ok(x) => x,
        Err((e, code)) => {
            eprintln!("hangsafe serve: {e}");
            // A mount table that did not answer is 66 here: serve's exit
            // 2 would read as "a target timed out".
            let code = if code == exit::TIMEOUT.code {
                exit::NO_MOUNTINFO.code
            } else {
                code
            };
            return ExitCode::from(code);
        }
    };
    let cfg_interval = cfg.as_ref().and_then(|c| c.interval);
    let timeout = args
        .timeout
        .or(cfg.as_ref().and_then(|c| c.timeout))
        .unwrap_or(DEFAULT_TIMEOUT);
    // The rounds come every --interval, or as often as the most frequent
    // target's own interval asks.
    let interval = list.iter().filter_map(|w| w.interval).fold(
        args.interval.or(cfg_interval).unwrap_or(DEFAULT_INTERVAL),
        Duration::min,
    );
    let set = match RunnerSet::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hangsafe serve: cannot create the runner set: {e}");
            return ExitCode::from(exit::OSERR.code);
        }
    };
    let allowed = specs(&list);
    let watch = Watch::new(
        WatchArgs::for_serve(interval, timeout),
        list,
        set,
        signals,
        None,
    );
    let state = Arc::new(State::new(watch.snapshot()));
    let shared = Arc::new(Shared {
        state: Arc::clone(&state),
        ondemand: OnDemand::new(timeout, args.probe_any, allowed),
        node_compat: args.node_compat,
    });
    let bound = match http::start(args.listen, Arc::clone(&shared)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hangsafe serve: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(exit::OSERR.code);
        }
    };
    eprintln!("hangsafe serve: listening on http://{bound}/");
    let notifier = Notifier::new();
    let hooks = ServeHooks {
        state,
        shared,
        recipe,
        notifier,
    };
    let _ = watch
        .named("hangsafe serve")
        .with_hooks(Box::new(hooks), false)
        .run();
    Notifier::new().stopping();
    ExitCode::SUCCESS
}
