//! The table `hangsafe watch --publish NAME` shares with `hangsafe status
//! NAME`: two shared-memory regions under `/dev/shm`, each guarded by
//! hangsafe's robust mutex.
//!
//! # `/dev/shm/hangsafe-NAME`: the table
//!
//! A [`Table`]: a small header and **two copies** of the rows. The
//! publisher updates it entirely under the region's robust mutex:
//!
//! 1. it writes the copy that is *not* current: its generation `g` into
//!    `gen_begin` first, then the rows, their count, the times, a checksum
//!    (FNV-1a over all of it), and `g` into `gen_end` last;
//! 2. only then does it flip `current` to that copy (a single aligned
//!    store), and unlock.
//!
//! Fences separate the steps, so a publisher SIGKILLed at any instruction
//! leaves `current` naming a copy that was completely written: the copy it
//! was writing is never current. A reader that finds the lock
//! `OwnerDead` therefore shows the current copy as it is (it is
//! consistent by construction), marks the mutex consistent, and
//! unlocks: the region stays usable. It still verifies the copy
//! (`gen_begin == gen_end`, checksum, row count) and refuses to show one
//! that fails, so even a corrupted file cannot show torn data.
//!
//! Capacity is fixed: [`CAPACITY`] rows; a target longer than
//! [`TARGET_LEN`] bytes or a detail longer than [`DETAIL_LEN`] bytes is cut
//! at a UTF-8 character boundary, and `status` shows it with a trailing
//! `…`. Targets beyond [`CAPACITY`] are not published (the copy records
//! how many were left out).
//!
//! # `/dev/shm/hangsafe-NAME.alive`: publisher liveness
//!
//! A second region holds an [`Alive`] record under its own robust mutex,
//! which the publisher locks when it starts and **holds for its whole
//! life** (on its main thread). `status` only `try_lock`s it:
//!
//! * `WouldBlock`: somebody holds it, so the publisher is **alive**;
//! * `OwnerDead`: the publisher died (killed, crashed) while holding it.
//!   `status` records that in the record (`state = died`), marks the mutex
//!   consistent and unlocks, so later readers still say "died";
//! * acquired normally: the publisher **exited** cleanly (it wrote
//!   `state = exited` before unlocking), or died earlier and was already
//!   noticed (`state = died`).
//!
//! A second publisher for the same NAME waits up to two seconds for that
//! lock and then refuses to start (one publisher per NAME). A newer
//! publisher that finds either mutex `OwnerDead` recovers it and records
//! it (`recoveries`, `last_recovery_*` in the table header).
//!
//! Limits: the regions are created mode 0600 (only the same user, or root,
//! can read them, because reading locks); the owner-death detection is
//! that of [`hangsafe::robust`] (a dead owner's TID reused by an unrelated
//! thread before anyone looks reads as alive). Regions are never unlinked
//! automatically, so `status` works after the publisher ended: remove
//! `/dev/shm/hangsafe-NAME` and `/dev/shm/hangsafe-NAME.alive` to discard
//! them.

use crate::report::{Report, State};
use hangsafe::robust::{
    LockError, Pod, RegionError, RegionOptions, RobustMutexGuard, SharedRegion,
};
use std::fmt;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Rows a table holds.
pub const CAPACITY: usize = 128;
/// Bytes of a target kept (cut at a UTF-8 boundary).
pub const TARGET_LEN: usize = 256;
/// Bytes of a detail kept (cut at a UTF-8 boundary).
pub const DETAIL_LEN: usize = 192;
/// The longest NAME accepted.
pub const NAME_MAX: usize = 64;

/// "HSWATCH1": the table format; a change of layout or meaning changes it
/// (and the region tags below).
const FORMAT: u64 = u64::from_be_bytes(*b"HSWATCH1");
/// Layout tag of the table region (explicit, so that separately built
/// binaries agree; see `RegionOptions::tag`).
const TABLE_TAG: u64 = 0x6873_7761_7463_0001;
/// Layout tag of the liveness region.
const ALIVE_TAG: u64 = 0x6873_616c_6976_0001;

/// How long a publisher waits for a lock a reader holds (readers hold
/// them for microseconds; this only matters if one is stopped).
const PUBLISHER_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Environment variable (tests only): milliseconds the publisher sleeps
/// inside each locked update, after writing the new copy's rows and before
/// completing and flipping it, so that a SIGKILL lands mid-update.
pub const STALL_ENV: &str = "HANGSAFE_TEST_PUBLISH_STALL_MS";

/// `Alive::state`: never set.
const ALIVE_NONE: u64 = 0;
/// `Alive::state`: a publisher holds the lock.
const ALIVE_RUNNING: u64 = 1;
/// `Alive::state`: the publisher exited cleanly.
const ALIVE_EXITED: u64 = 2;
/// `Alive::state`: the publisher died holding the lock (noticed by a
/// reader or a newer publisher).
const ALIVE_DIED: u64 = 3;

/// `Table::last_recovery_by`: a newer publisher recovered the table lock.
const BY_PUBLISHER: u64 = 1;
/// `Table::last_recovery_by`: `status` recovered the table lock.
const BY_STATUS: u64 = 2;

/// One published row.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Row {
    /// Latency in nanoseconds; `u64::MAX` for none.
    latency_ns: u64,
    /// Bytes of `target` used.
    target_len: u16,
    /// Bytes of `detail` used.
    detail_len: u16,
    /// Kind code (see [`kind_code`]).
    kind: u8,
    /// State code: 1 up, 2 down, 3 timeout.
    state: u8,
    /// Bit 0: target cut; bit 1: detail cut.
    cut: u8,
    /// Zero.
    reserved: u8,
    /// The target, UTF-8.
    target: [u8; TARGET_LEN],
    /// The detail, UTF-8.
    detail: [u8; DETAIL_LEN],
}

// SAFETY: `#[repr(C)]`, only integers and arrays of integers: every bit
// pattern is a valid `Row`; no pointers; lengths are checked when read.
unsafe impl Pod for Row {}

/// One copy of the table.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Copy {
    /// The generation, written first.
    gen_begin: u64,
    /// When it was written: nanoseconds since the Unix epoch.
    updated_real_ns: u64,
    /// When it was written: `CLOCK_BOOTTIME` nanoseconds (for the age).
    updated_boot_ns: u64,
    /// The watch round it describes.
    round: u64,
    /// Rows used.
    rows_len: u64,
    /// Targets left out for lack of room.
    dropped: u64,
    /// FNV-1a of every other field of the copy (rows up to `rows_len`).
    checksum: u64,
    /// The rows.
    rows: [Row; CAPACITY],
    /// The generation again, written last.
    gen_end: u64,
}

// SAFETY: `#[repr(C)]`, integers and an array of `Row` (itself `Pod`):
// every bit pattern is valid; no pointers. Invariants between fields
// (generations, checksum) are logical and verified by readers.
unsafe impl Pod for Copy {}

/// The whole table region's data.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Table {
    /// [`FORMAT`].
    format: u64,
    /// Index (0 or 1; only bit 0 is used) of the consistent copy.
    current: u64,
    /// Generation of the last completed copy.
    generation: u64,
    /// PID of the last publisher.
    publisher_pid: u64,
    /// When it started (Unix ns).
    publisher_started_ns: u64,
    /// Its `--interval` and `--timeout` (ns).
    interval_ns: u64,
    /// See `interval_ns`.
    timeout_ns: u64,
    /// How many publishers opened this region.
    publishers: u64,
    /// How many times a dead owner's lock was recovered.
    recoveries: u64,
    /// When the last recovery happened (Unix ns).
    last_recovery_ns: u64,
    /// Who recovered it: its PID.
    last_recovery_pid: u64,
    /// [`BY_PUBLISHER`] or [`BY_STATUS`].
    last_recovery_by: u64,
    /// The two copies.
    copies: [Copy; 2],
}

// SAFETY: `#[repr(C)]`, integers and an array of `Copy` (itself `Pod`):
// every bit pattern is valid; no pointers.
unsafe impl Pod for Table {}

/// The liveness record.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Alive {
    /// [`FORMAT`].
    format: u64,
    /// One of the `ALIVE_*` values.
    state: u64,
    /// The publisher's PID.
    pid: u64,
    /// When it started (Unix ns).
    started_ns: u64,
    /// When it exited, or when its death was noticed (Unix ns).
    ended_ns: u64,
}

// SAFETY: `#[repr(C)]`, only `u64`s: every bit pattern is valid.
unsafe impl Pod for Alive {}

/// Why a NAME is rejected, or a region could not be used.
#[derive(Debug)]
pub enum PublishError {
    /// NAME is not `[A-Za-z0-9_-]{1,64}`.
    BadName(String),
    /// Another publisher holds NAME.
    Busy {
        /// Its PID, as last recorded.
        pid: u64,
    },
    /// The region exists but is not a table of this version, or cannot be
    /// created, mapped or locked.
    Region(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::BadName(n) => write!(
                f,
                "invalid name {n:?}: use 1 to {NAME_MAX} letters, digits, '-' or '_'"
            ),
            PublishError::Busy { pid } => write!(
                f,
                "another publisher (pid {pid}) is publishing under this name"
            ),
            PublishError::Region(e) => f.write_str(e),
        }
    }
}

/// Checks NAME: 1 to [`NAME_MAX`] ASCII letters, digits, `-` or `_`.
pub fn validate_name(name: &str) -> Result<(), PublishError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PublishError::BadName(name.to_owned()))
    }
}

/// The shared-memory name of the table of NAME.
pub fn table_name(name: &str) -> String {
    format!("hangsafe-{name}")
}

/// The shared-memory name of the liveness record of NAME.
pub fn alive_name(name: &str) -> String {
    format!("hangsafe-{name}.alive")
}

/// Nanoseconds since the Unix epoch.
fn real_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `CLOCK_BOOTTIME` in nanoseconds (monotonic, counts suspend; the same
/// clock in every process).
fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// `s` cut to at most `max` bytes at a character boundary, and whether it
/// was cut.
fn cut_utf8(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// The code of a report kind.
fn kind_code(kind: &str) -> u8 {
    match kind {
        "path" => 1,
        "block" => 2,
        "tur" => 3,
        "tcp" => 4,
        "unix" => 5,
        _ => 0,
    }
}

/// The kind name of a code.
fn kind_name(code: u8) -> &'static str {
    match code {
        1 => "path",
        2 => "block",
        3 => "tur",
        4 => "tcp",
        5 => "unix",
        _ => "?",
    }
}

fn state_code(s: State) -> u8 {
    match s {
        State::Up => 1,
        State::Down => 2,
        State::Timeout => 3,
        State::Error => 4,
        State::Pending => 5,
    }
}

fn state_of(code: u8) -> Option<State> {
    match code {
        1 => Some(State::Up),
        2 => Some(State::Down),
        3 => Some(State::Timeout),
        4 => Some(State::Error),
        5 => Some(State::Pending),
        _ => None,
    }
}

/// 64-bit FNV-1a, fed piecewise.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// The checksum of a copy: every field but `checksum` and `gen_end`, rows
/// up to `rows_len` (at most [`CAPACITY`]), strings up to their lengths.
fn checksum(c: &Copy) -> u64 {
    let mut h = Fnv::new();
    for v in [
        c.gen_begin,
        c.updated_real_ns,
        c.updated_boot_ns,
        c.round,
        c.rows_len,
        c.dropped,
    ] {
        h.u64(v);
    }
    let n = usize::try_from(c.rows_len)
        .unwrap_or(usize::MAX)
        .min(CAPACITY);
    for r in &c.rows[..n] {
        h.u64(r.latency_ns);
        h.bytes(&[r.kind, r.state, r.cut]);
        let t = usize::from(r.target_len).min(TARGET_LEN);
        let d = usize::from(r.detail_len).min(DETAIL_LEN);
        h.u64(t as u64);
        h.bytes(&r.target[..t]);
        h.u64(d as u64);
        h.bytes(&r.detail[..d]);
    }
    h.0
}

/// Writes `rep` into `row`.
fn encode(row: &mut Row, rep: &Report) {
    let (t, t_cut) = cut_utf8(&rep.target, TARGET_LEN);
    let (d, d_cut) = cut_utf8(&rep.detail, DETAIL_LEN);
    row.latency_ns = rep.latency.map_or(u64::MAX, |l| {
        u64::try_from(l.as_nanos()).unwrap_or(u64::MAX - 1)
    });
    row.target_len = t.len() as u16;
    row.detail_len = d.len() as u16;
    row.kind = kind_code(rep.kind);
    row.state = state_code(rep.state);
    row.cut = u8::from(t_cut) | (u8::from(d_cut) << 1);
    row.reserved = 0;
    row.target[..t.len()].copy_from_slice(t.as_bytes());
    row.detail[..d.len()].copy_from_slice(d.as_bytes());
}

/// Reads a row back; `None` if it is not a valid row.
fn decode(row: &Row) -> Option<Report> {
    let t = usize::from(row.target_len);
    let d = usize::from(row.detail_len);
    if t > TARGET_LEN || d > DETAIL_LEN {
        return None;
    }
    let mut target = std::str::from_utf8(&row.target[..t]).ok()?.to_owned();
    let mut detail = std::str::from_utf8(&row.detail[..d]).ok()?.to_owned();
    if row.cut & 1 != 0 {
        target.push('…');
    }
    if row.cut & 2 != 0 {
        detail.push('…');
    }
    Some(Report {
        target,
        kind: kind_name(row.kind),
        state: state_of(row.state)?,
        latency: (row.latency_ns != u64::MAX).then(|| Duration::from_nanos(row.latency_ns)),
        detail,
    })
}

/// Whether a copy is complete and intact; the reason if not.
fn verify(c: &Copy) -> Result<(), String> {
    if c.gen_begin != c.gen_end {
        return Err(format!(
            "torn: generation {} started, {} completed",
            c.gen_begin, c.gen_end
        ));
    }
    if c.rows_len > CAPACITY as u64 {
        return Err(format!("row count {} exceeds {CAPACITY}", c.rows_len));
    }
    if checksum(c) != c.checksum {
        return Err("checksum mismatch".to_owned());
    }
    Ok(())
}

/// A zeroed `T`.
fn zeroed<T: Pod>() -> T {
    // SAFETY: `T: Pod`: every bit pattern, all zeros included, is a valid
    // `T`.
    unsafe { std::mem::zeroed() }
}

/// A fresh table: copy 0 current, generation 0, no rows (valid).
fn empty_table() -> Table {
    let mut t: Table = zeroed();
    t.format = FORMAT;
    for c in &mut t.copies {
        c.checksum = checksum(c);
    }
    t
}

fn table_options() -> RegionOptions {
    RegionOptions::new().tag(TABLE_TAG)
}

fn alive_options() -> RegionOptions {
    RegionOptions::new().tag(ALIVE_TAG)
}

fn region_error(what: &str, e: RegionError) -> PublishError {
    PublishError::Region(format!("/dev/shm/{what}: {e}"))
}

/// Locks the table for a publisher, recovering it if its owner died.
/// Returns the guard and whether a recovery happened.
fn lock_table_publisher(
    table: &SharedRegion<Table>,
) -> Result<(RobustMutexGuard<'_, Table>, bool), String> {
    match table.lock_timeout(PUBLISHER_LOCK_WAIT) {
        Ok(g) => Ok((g, false)),
        Err(LockError::OwnerDead(dead)) => {
            // The owner (an earlier publisher, or a reader) died holding
            // the lock. The current copy is complete by construction; the
            // other one is scratch and is rewritten before it is used.
            let mut g = dead.into_guard();
            g.recoveries = g.recoveries.wrapping_add(1);
            g.last_recovery_ns = real_ns();
            g.last_recovery_pid = u64::from(std::process::id());
            g.last_recovery_by = BY_PUBLISHER;
            g.make_consistent()
                .map_err(|e| format!("cannot make the table consistent: {e}"))?;
            Ok((g, true))
        }
        Err(e) => Err(format!("cannot lock the table: {e}")),
    }
}

/// The publishing side: owns the table region and holds the liveness lock
/// for as long as it exists. Not `Send`: the liveness lock belongs to the
/// thread that took it (the watch's main thread).
pub struct Publisher {
    table: SharedRegion<Table>,
    alive: Option<RobustMutexGuard<'static, Alive>>,
    stall: Option<Duration>,
    /// What happened at start-up worth telling the user (recoveries).
    pub notes: Vec<String>,
    /// Updates that failed (lock timeouts), for the final summary.
    pub failures: u64,
}

impl Publisher {
    /// Becomes the publisher of NAME: creates or opens both regions,
    /// takes the liveness lock (recovering it if a publisher died), and
    /// records this process in the table header.
    pub fn open(
        name: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<Publisher, PublishError> {
        validate_name(name)?;
        let mut notes = Vec::new();
        let now = real_ns();
        let pid = u64::from(std::process::id());

        // Liveness first, so that two publishers never share a table.
        let alive_init = Alive {
            format: FORMAT,
            state: ALIVE_NONE,
            pid: 0,
            started_ns: 0,
            ended_ns: 0,
        };
        let an = alive_name(name);
        let mut alive_region = alive_options()
            .create_or_open(&an, alive_init)
            .map_err(|e| region_error(&an, e))?;
        if alive_region.is_not_recoverable() {
            // Only a buggy or foreign client can leave it so; start over.
            notes.push(format!("/dev/shm/{an} was not recoverable; recreated it"));
            drop(alive_region);
            let _ = SharedRegion::unlink(&an);
            alive_region = alive_options()
                .create_or_open(&an, alive_init)
                .map_err(|e| region_error(&an, e))?;
        }
        // The guard must outlive this function (it is held until exit), so
        // the region it borrows is leaked: one mapping per process.
        let alive_region: &'static SharedRegion<Alive> = Box::leak(Box::new(alive_region));
        let mut guard = match alive_region.lock_timeout(PUBLISHER_LOCK_WAIT) {
            Ok(g) => {
                if g.state == ALIVE_DIED {
                    notes.push(format!(
                        "the previous publisher (pid {}) had died; taking over",
                        g.pid
                    ));
                }
                g
            }
            Err(LockError::OwnerDead(dead)) => {
                let mut g = dead.into_guard();
                notes.push(format!(
                    "the previous publisher (pid {}) died; recovered its liveness lock",
                    g.pid
                ));
                g.state = ALIVE_DIED;
                g.make_consistent().map_err(|e| {
                    PublishError::Region(format!("/dev/shm/{an}: cannot make consistent: {e}"))
                })?;
                g
            }
            Err(LockError::TimedOut | LockError::WouldBlock) => {
                let pid = table_options()
                    .open::<Table>(&table_name(name))
                    .ok()
                    .and_then(|t| match t.try_lock() {
                        Ok(g) => Some(g.publisher_pid),
                        Err(LockError::OwnerDead(dead)) => {
                            // Never drop an owner-dead guard unrepaired: the
                            // current copy is complete by construction.
                            let mut g = dead.into_guard();
                            let _ = g.make_consistent();
                            Some(g.publisher_pid)
                        }
                        Err(_) => None,
                    })
                    .unwrap_or(0);
                return Err(PublishError::Busy { pid });
            }
            Err(e) => {
                return Err(PublishError::Region(format!("/dev/shm/{an}: {e}")));
            }
        };
        guard.format = FORMAT;
        guard.state = ALIVE_RUNNING;
        guard.pid = pid;
        guard.started_ns = now;
        guard.ended_ns = 0;

        let tn = table_name(name);
        let mut table = match table_options().create_or_open(&tn, empty_table()) {
            Ok(t) => t,
            Err(e) => return Err(region_error(&tn, e)),
        };
        if table.is_not_recoverable() {
            notes.push(format!("/dev/shm/{tn} was not recoverable; recreated it"));
            drop(table);
            let _ = SharedRegion::unlink(&tn);
            table = table_options()
                .create_or_open(&tn, empty_table())
                .map_err(|e| region_error(&tn, e))?;
        }
        {
            let (mut g, recovered) = lock_table_publisher(&table)
                .map_err(|e| PublishError::Region(format!("/dev/shm/{tn}: {e}")))?;
            if recovered {
                notes.push(format!(
                    "the table's previous owner (pid {}) died holding its lock; recovered it \
                     (the last complete table is kept)",
                    g.publisher_pid
                ));
            }
            if g.format != FORMAT {
                return Err(PublishError::Region(format!(
                    "/dev/shm/{tn} holds another table format; remove it"
                )));
            }
            g.publisher_pid = pid;
            g.publisher_started_ns = now;
            g.interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
            g.timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            g.publishers = g.publishers.wrapping_add(1);
        }
        let stall = std::env::var(STALL_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        Ok(Publisher {
            table,
            alive: Some(guard),
            stall,
            notes,
            failures: 0,
        })
    }

    /// Publishes `rows` (the first [`CAPACITY`]) as the table of `round`.
    pub fn update(&mut self, rows: &[Report], round: u64) -> Result<(), String> {
        let (mut g, recovered) = lock_table_publisher(&self.table)?;
        if recovered {
            self.notes
                .push("a reader died holding the table lock; recovered it".to_owned());
        }
        let next = usize::from(g.current & 1 == 0);
        let gen = g.generation.wrapping_add(1);
        let n = rows.len().min(CAPACITY);
        {
            let c = &mut g.copies[next];
            c.gen_begin = gen;
            // The copy is marked "being written" before anything else of
            // it changes.
            fence(Ordering::SeqCst);
            c.updated_real_ns = real_ns();
            c.updated_boot_ns = boot_ns();
            c.round = round;
            c.rows_len = n as u64;
            c.dropped = (rows.len() - n) as u64;
            for (row, rep) in c.rows.iter_mut().zip(&rows[..n]) {
                encode(row, rep);
            }
            c.checksum = checksum(c);
        }
        if let Some(stall) = self.stall {
            // Test knob: a SIGKILL during this sleep leaves a written but
            // incomplete copy (no `gen_end`, not current), lock held.
            std::thread::sleep(stall);
        }
        fence(Ordering::SeqCst);
        g.copies[next].gen_end = gen;
        // The copy is complete before it becomes current.
        fence(Ordering::SeqCst);
        g.generation = gen;
        g.current = next as u64;
        fence(Ordering::SeqCst);
        drop(g);
        Ok(())
    }
}

impl Drop for Publisher {
    /// A clean exit: the liveness record says so, then the lock is
    /// released (a reader's `try_lock` then succeeds and reads "exited").
    fn drop(&mut self) {
        if let Some(mut g) = self.alive.take() {
            g.state = ALIVE_EXITED;
            g.ended_ns = real_ns();
            if let Err(e) = RobustMutexGuard::unlock(g) {
                log::error!("hangsafe: releasing the publisher lock: {e}");
            }
        }
    }
}

/// What is known of the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherState {
    /// It holds its liveness lock.
    Alive,
    /// It exited cleanly.
    Exited,
    /// It died (killed, crashed) without releasing its lock.
    Died,
    /// No liveness record, or an unreadable one.
    Unknown,
}

impl PublisherState {
    /// `alive`, `exited`, `died` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublisherState::Alive => "alive",
            PublisherState::Exited => "exited",
            PublisherState::Died => "died",
            PublisherState::Unknown => "unknown",
        }
    }
}

/// Why a table could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// NAME is invalid.
    BadName(String),
    /// No table of that name.
    NotFound,
    /// The lock was not obtained within the timeout.
    LockTimedOut(Duration),
    /// The table is unusable: another format, not recoverable, or no
    /// intact copy.
    Unusable(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::BadName(n) => write!(
                f,
                "invalid name {n:?}: use 1 to {NAME_MAX} letters, digits, '-' or '_'"
            ),
            ReadError::NotFound => {
                f.write_str("no such table (is `hangsafe watch --publish` running?)")
            }
            ReadError::LockTimedOut(d) => write!(
                f,
                "the table's lock was not released within {} (its holder is stopped or hung)",
                crate::duration::format(*d)
            ),
            ReadError::Unusable(e) => f.write_str(e),
        }
    }
}

/// A consistent table, as `status` reads it.
#[derive(Debug)]
pub struct Snapshot {
    /// The rows.
    pub rows: Vec<Report>,
    /// Targets the publisher had to leave out.
    pub dropped: u64,
    /// The copy's generation.
    pub generation: u64,
    /// The watch round.
    pub round: u64,
    /// When it was written (Unix ns; 0 if never).
    pub updated_ns: u64,
    /// How long ago it was written (`None` if never).
    pub age: Option<Duration>,
    /// The table lock was `OwnerDead`: its holder died mid-update; this
    /// read made it consistent.
    pub owner_died: bool,
    /// The generation of an update that was started and never completed
    /// (its copy is torn and ignored), if any.
    pub interrupted: Option<u64>,
    /// The publisher's state.
    pub publisher: PublisherState,
    /// The publisher's PID (0 if unknown).
    pub pid: u64,
    /// When it started (Unix ns).
    pub started_ns: u64,
    /// Its `--interval`.
    pub interval: Duration,
    /// Its `--timeout`.
    pub timeout: Duration,
    /// Dead owners recovered so far (this read included).
    pub recoveries: u64,
}

/// Looks at the liveness record of NAME (see the module docs).
fn publisher_state(name: &str) -> PublisherState {
    let Ok(region) = alive_options().open::<Alive>(&alive_name(name)) else {
        return PublisherState::Unknown;
    };
    let state = match region.try_lock() {
        Err(LockError::WouldBlock) => PublisherState::Alive,
        Ok(g) => match g.state {
            ALIVE_EXITED => PublisherState::Exited,
            ALIVE_DIED => PublisherState::Died,
            _ => PublisherState::Unknown,
        },
        Err(LockError::OwnerDead(dead)) => {
            let mut g = dead.into_guard();
            g.state = ALIVE_DIED;
            g.ended_ns = real_ns();
            match g.make_consistent() {
                Ok(()) => PublisherState::Died,
                Err(e) => {
                    // Dropping it now makes it not recoverable; the next
                    // publisher recreates it.
                    log::error!("hangsafe: cannot make the liveness lock consistent: {e}");
                    PublisherState::Died
                }
            }
        }
        Err(_) => PublisherState::Unknown,
    };
    state
}

/// Reads the table of NAME: waits at most `timeout` for its lock, recovers
/// it if its holder died, and returns the current copy after verifying it.
pub fn read(name: &str, timeout: Duration) -> Result<Snapshot, ReadError> {
    if validate_name(name).is_err() {
        return Err(ReadError::BadName(name.to_owned()));
    }
    let tn = table_name(name);
    let table = match table_options().open::<Table>(&tn) {
        Ok(t) => t,
        Err(RegionError::NotFound) => return Err(ReadError::NotFound),
        Err(e) => return Err(ReadError::Unusable(format!("/dev/shm/{tn}: {e}"))),
    };
    let publisher = publisher_state(name);
    let (mut g, owner_died) = match table.lock_timeout(timeout) {
        Ok(g) => (g, false),
        Err(LockError::OwnerDead(dead)) => (dead.into_guard(), true),
        Err(LockError::TimedOut) => return Err(ReadError::LockTimedOut(timeout)),
        Err(e) => return Err(ReadError::Unusable(format!("/dev/shm/{tn}: {e}"))),
    };
    if owner_died {
        // Nothing to repair: the current copy is complete by construction
        // (and verified below); the other copy is scratch.
        g.recoveries = g.recoveries.wrapping_add(1);
        g.last_recovery_ns = real_ns();
        g.last_recovery_pid = u64::from(std::process::id());
        g.last_recovery_by = BY_STATUS;
        if let Err(e) = g.make_consistent() {
            return Err(ReadError::Unusable(format!(
                "/dev/shm/{tn}: cannot make the lock consistent: {e}"
            )));
        }
    }
    if g.format != FORMAT {
        return Err(ReadError::Unusable(format!(
            "/dev/shm/{tn}: unknown table format"
        )));
    }
    let cur = (g.current & 1) as usize;
    // Copied out under the lock; everything else happens after unlocking.
    let copy: Box<Copy> = Box::new(g.copies[cur]);
    let other: Box<Copy> = Box::new(g.copies[1 - cur]);
    let head = (
        g.publisher_pid,
        g.publisher_started_ns,
        g.interval_ns,
        g.timeout_ns,
        g.recoveries,
    );
    drop(g);

    verify(&copy).map_err(|why| {
        ReadError::Unusable(format!(
            "/dev/shm/{tn}: the current copy is damaged ({why})"
        ))
    })?;
    let rows = copy.rows[..copy.rows_len as usize]
        .iter()
        .map(decode)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ReadError::Unusable(format!("/dev/shm/{tn}: a row is invalid")))?;
    let interrupted = (other.gen_begin != other.gen_end && other.gen_begin > copy.gen_end)
        .then_some(other.gen_begin);
    let age = (copy.updated_boot_ns != 0)
        .then(|| Duration::from_nanos(boot_ns().saturating_sub(copy.updated_boot_ns)));
    Ok(Snapshot {
        rows,
        dropped: copy.dropped,
        generation: copy.gen_end,
        round: copy.round,
        updated_ns: copy.updated_real_ns,
        age,
        owner_died,
        interrupted,
        publisher,
        pid: head.0,
        started_ns: head.1,
        interval: Duration::from_nanos(head.2),
        timeout: Duration::from_nanos(head.3),
        recoveries: head.4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(target: &str, state: State, detail: &str) -> Report {
        Report {
            target: target.to_owned(),
            kind: "path",
            state,
            latency: Some(Duration::from_micros(1500)),
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn rows_round_trip_and_cut_on_char_boundaries() {
        let mut row: Row = zeroed();
        let r = rep("/mnt/x", State::Down, "ENOENT");
        encode(&mut row, &r);
        assert_eq!(decode(&row), Some(r));

        let long = "é".repeat(200); // 400 bytes
        encode(&mut row, &rep(&long, State::Up, &long));
        let back = decode(&row).unwrap();
        assert!(back.target.ends_with('…'));
        assert_eq!(back.target.trim_end_matches('…').len(), TARGET_LEN);
        assert_eq!(back.detail.trim_end_matches('…').len(), DETAIL_LEN);
    }

    #[test]
    fn a_torn_copy_fails_verification() {
        let mut t = empty_table();
        assert!(verify(&t.copies[0]).is_ok());
        let c = &mut t.copies[1];
        c.gen_begin = 5;
        c.rows_len = 1;
        encode(&mut c.rows[0], &rep("/", State::Up, ""));
        c.checksum = checksum(c);
        assert!(verify(c).is_err());
        c.gen_end = 5;
        assert!(verify(c).is_ok());
        c.rows[0].state = 2;
        assert!(verify(c).is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("web-1_a").is_ok());
        for bad in ["", "a/b", "a.b", "..", &"x".repeat(65), "sp ace"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
