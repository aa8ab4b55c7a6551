//! `hangsafe status NAME`: reads the table a `hangsafe watch --publish
//! NAME` publishes (see [`crate::publish`] for the layout and the
//! liveness scheme).

use crate::duration;
use crate::exit;
use crate::output::{self, ColorChoice};
use crate::publish::{self, PublisherState, ReadError, RemoveError, Snapshot};
use crate::report::{self, Report};
use serde_json::json;
use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

const STATUS_ABOUT: &str = "Show the table a `watch --publish NAME` publishes";

const STATUS_LONG_ABOUT: &str = "\
Show the table that `hangsafe watch --publish NAME` publishes in shared
memory (/dev/shm/hangsafe-NAME), from any process of the same user.

Only a table owned by the user running status, and writable by nobody
else, is shown: /dev/shm is writable by every user, so anyone could
otherwise plant a file under the name and forge its rows. Such a file is
refused (exit 77) with a hint; --trust-owner UID reads a table of a user
you trust, and status --remove discards a stale one. The table is copied
out with pread under its lock, so a file truncated meanwhile is an error
(exit 65), never a crash.

The table is read under hangsafe's robust mutex, waiting at most
--timeout for it: status never hangs, even if the publisher is stopped
while holding the lock. The publisher writes each update into a second
copy and flips to it last, so the table shown is always one complete
update, never a torn one, even if the publisher was killed in the middle
of an update. In that case status says the owner died, shows the last
consistent table, and repairs the lock (marks it consistent) so the table
stays usable.

Also shown: the publisher's state, from a lock it holds for its whole life
(/dev/shm/hangsafe-NAME.alive):
  alive   it is running
  exited  it exited cleanly (the table is its last one)
  died    it was killed or crashed
  unknown no liveness record
and the age of the last update, the watch round it describes, and its
generation. Targets and details longer than the table's fixed fields (256
and 192 bytes) end in \"…\"; at most 128 targets are published.

--json prints one object: name, region, publisher {state, pid, started_unix},
owner_died (bool: the table's lock holder died; this call recovered it),
interrupted_generation (an update that never completed, or null),
generation, round, updated_unix, age_ms, interval_ms, timeout_ms,
recoveries, dropped (targets left out), and rows: the array of
`hangsafe check --json` (target, kind, state, latency_ms, detail).";

const STATUS_EXAMPLES: &str = "\
Examples:
  hangsafe watch --publish web /mnt/nfs &
  hangsafe status web
  hangsafe status --json web
  hangsafe status --remove web          # after the publisher stopped";

/// Options of `hangsafe status`.
#[derive(Debug, clap::Args)]
#[command(about = STATUS_ABOUT, long_about = STATUS_LONG_ABOUT, after_help = format!("{}\n\nWith --remove:\n{}\n\n{STATUS_EXAMPLES}", exit::help_section("status"), exit::help_section("status --remove").trim_start_matches("Exit status:\n")))]
pub(crate) struct StatusArgs {
    /// The name given to `watch --publish`
    #[arg(value_name = "NAME")]
    name: String,

    /// Print one JSON object
    #[arg(long)]
    json: bool,

    /// Colour the states: auto (terminal and no NO_COLOR), always, never
    #[arg(long, value_name = "WHEN", value_enum, default_value = "auto")]
    color: ColorChoice,

    /// Also accept a table owned by this user id (not writable by others)
    #[arg(
        long,
        value_name = "UID",
        long_help = "Also accept a table owned by user id UID, e.g. root reading\n\
                     the table of a service's user. It must still be writable by\n\
                     nobody else. Without it, only this user's own tables are read."
    )]
    trust_owner: Option<u32>,

    /// Remove a stale publication of NAME instead of showing it
    #[arg(
        long,
        long_help = "Remove /dev/shm/hangsafe-NAME and /dev/shm/hangsafe-NAME.alive\n\
                     instead of showing them: only if both are regular files of\n\
                     this user, writable by nobody else, and no live publisher\n\
                     holds NAME (exit 75 otherwise); see --force."
    )]
    remove: bool,

    /// With --remove: also while a publisher lives, and files not ours
    #[arg(
        long,
        requires = "remove",
        long_help = "With --remove: remove the files even if a live publisher holds\n\
                     NAME (it keeps writing into the removed file, which status no\n\
                     longer sees), and whoever owns them, as far as the system\n\
                     allows (in the sticky /dev/shm only their owner or root may).\n\
                     A symlink is removed itself, never followed."
    )]
    force: bool,

    /// How long to wait for the table's lock
    #[arg(
        short,
        long,
        value_name = "DURATION",
        default_value = "1s",
        value_parser = duration::parse,
        long_help = "How long to wait for the table's lock (default 1s); the\n\
                     publisher holds it for microseconds per update. After that,\n\
                     status gives up with exit status 75."
    )]
    timeout: Duration,
}

/// Runs `hangsafe status`.
pub(crate) fn run(args: StatusArgs) -> ExitCode {
    if args.remove {
        return remove(&args.name, args.force);
    }
    let snap = match publish::read(&args.name, args.timeout, args.trust_owner) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hangsafe status {}: {e}", args.name);
            return ExitCode::from(match e {
                ReadError::BadName(_) => exit::USAGE.code,
                ReadError::NotFound => exit::UNAVAILABLE.code,
                ReadError::LockTimedOut(_) => exit::TEMPFAIL.code,
                ReadError::PermissionDenied(_) => exit::UNREADABLE.code,
                ReadError::Untrusted(_) => exit::NOPERM.code,
                ReadError::Unusable(_) => exit::DATAERR.code,
            });
        }
    };
    let text = if args.json {
        let mut s = to_json(&args.name, &snap).to_string();
        s.push('\n');
        s
    } else {
        human(&args.name, &snap, output::use_color(args.color))
    };
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("hangsafe status: cannot write output: {e}");
        }
    }
    ExitCode::from(report::exit_code(&snap.rows))
}

/// `status --remove NAME`.
fn remove(name: &str, force: bool) -> ExitCode {
    match publish::remove(name, force) {
        Ok(paths) => {
            for p in paths {
                println!("removed {p}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hangsafe status --remove {name}: {e}");
            ExitCode::from(match e {
                RemoveError::BadName(_) => exit::USAGE.code,
                RemoveError::NotFound => exit::NOTHING_TO_REMOVE.code,
                RemoveError::Alive { .. } => exit::REMOVE_ALIVE.code,
                RemoveError::Refused(_) => exit::REMOVE_REFUSED.code,
                RemoveError::Io(_) => exit::REMOVE_IOERR.code,
            })
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn unix_secs(ns: u64) -> Option<f64> {
    (ns != 0).then(|| ns as f64 / 1e9)
}

/// The `--json` object.
fn to_json(name: &str, s: &Snapshot) -> serde_json::Value {
    json!({
        "name": name,
        "region": format!("/dev/shm/{}", publish::table_name(name)),
        "publisher": {
            "state": s.publisher.as_str(),
            "pid": (s.pid != 0).then_some(s.pid),
            "started_unix": unix_secs(s.started_ns),
        },
        "owner_died": s.owner_died,
        "interrupted_generation": s.interrupted,
        "generation": s.generation,
        "round": s.round,
        "updated_unix": unix_secs(s.updated_ns),
        "age_ms": s.age.map(ms),
        "interval_ms": ms(s.interval),
        "timeout_ms": ms(s.timeout),
        "recoveries": s.recoveries,
        "dropped": s.dropped,
        "rows": s.rows.iter().map(Report::to_json).collect::<Vec<_>>(),
    })
}

/// `HH:MM:SS` local time of a Unix time in nanoseconds.
fn local_time(ns: u64) -> String {
    let secs = (UNIX_EPOCH + Duration::from_nanos(ns))
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: all-zero is a valid `struct tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    } else {
        "?".to_owned()
    }
}

/// The human report: header lines, warnings, the table.
fn human(name: &str, s: &Snapshot, color: bool) -> String {
    let mut out = header(name, s);
    out.push_str(&notes(s));
    if s.rows.is_empty() {
        out.push_str("(no targets published yet)\n");
    } else {
        out.push_str(&output::render_table(&s.rows, color));
    }
    out
}

/// The first lines of the human view: who publishes the table NAME, how
/// often, and its last update.
fn header(name: &str, s: &Snapshot) -> String {
    let pid = if s.pid != 0 {
        format!("pid {}", s.pid)
    } else {
        "pid ?".to_owned()
    };
    let started = if s.started_ns != 0 {
        format!(", started {}", local_time(s.started_ns))
    } else {
        String::new()
    };
    let mut out = format!(
        "{name}: publisher {} ({pid}{started}); every {}, timeout {}\n",
        s.publisher.as_str(),
        duration::format(s.interval),
        duration::format(s.timeout),
    );
    match s.age {
        Some(age) => out.push_str(&format!(
            "last update {} ago ({}), round {}, generation {}\n",
            duration::format_latency(age),
            local_time(s.updated_ns),
            s.round,
            s.generation
        )),
        None => out.push_str("no update published yet\n"),
    }
    out
}

/// The warnings and notes of the human view: a recovered lock, an
/// interrupted update, a publisher gone, targets left out.
fn notes(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.owner_died {
        out.push_str(
            "warning: the table's owner died while holding its lock (in the middle of an \
             update); showing the last consistent table; the lock was recovered\n",
        );
    }
    if let Some(g) = s.interrupted {
        out.push_str(&format!(
            "note: update {g} was interrupted and discarded (its copy is incomplete)\n"
        ));
    }
    match s.publisher {
        PublisherState::Died => out.push_str(
            "warning: the publisher died; this table is its last one and is no longer updated\n",
        ),
        PublisherState::Exited => {
            out.push_str("note: the publisher has exited; this table is its last one\n")
        }
        _ => {}
    }
    if s.dropped > 0 {
        out.push_str(&format!(
            "note: {} targets were not published (the table holds {})\n",
            s.dropped,
            publish::CAPACITY
        ));
    }
    out
}
