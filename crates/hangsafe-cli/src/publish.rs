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
//! # Whose table it is, and truncation
//!
//! The regions are created mode 0600, and both the publisher and `status`
//! refuse a region file owned by another user or writable by group or
//! others ([`RegionTrust::Owner`]): in the world-writable `/dev/shm`,
//! anyone could otherwise plant a file under the name and forge rows.
//! `status --trust-owner UID` opts in to reading another user's table.
//!
//! Nothing of the table is accessed through the mapping: it is read with
//! `pread` and written with `pwrite` under the lock, after checking the
//! file's size (see [`SharedRegion::read`]), so a file truncated by
//! another process of the user gives an error, never a `SIGBUS`. Only the
//! lock word is used in place (see the region docs for the window left
//! when the file is emptied to zero bytes).
//!
//! Limits: only the same user, or root, can read a table (reading locks);
//! the owner-death detection is that of [`hangsafe::robust`] (a dead
//! owner's TID reused by an unrelated thread before anyone looks reads as
//! alive). Regions are never unlinked automatically, so `status` works
//! after the publisher ended: `hangsafe status --remove NAME` discards
//! them.

use crate::report::{Report, State};
use hangsafe::robust::{
    AnyBitPattern, LockError, RegionError, RegionOptions, RegionTrust, RobustMutexGuard,
    SharedRegion,
};
use std::fmt;
use std::mem::offset_of;
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

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").finish_non_exhaustive()
    }
}

// SAFETY: `#[repr(C)]`, only integers and arrays of integers: every bit
// pattern is a valid `Row`; no pointers; lengths are checked when read.
unsafe impl AnyBitPattern for Row {}

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

impl std::fmt::Debug for Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copy").finish_non_exhaustive()
    }
}

// SAFETY: `#[repr(C)]`, integers and an array of `Row` (itself `AnyBitPattern`):
// every bit pattern is valid; no pointers. Invariants between fields
// (generations, checksum) are logical and verified by readers.
unsafe impl AnyBitPattern for Copy {}

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

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").finish_non_exhaustive()
    }
}

// SAFETY: `#[repr(C)]`, integers and an array of `Copy` (itself `AnyBitPattern`):
// every bit pattern is valid; no pointers.
unsafe impl AnyBitPattern for Table {}

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

impl std::fmt::Debug for Alive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alive").finish_non_exhaustive()
    }
}

// SAFETY: `#[repr(C)]`, only `u64`s: every bit pattern is valid.
unsafe impl AnyBitPattern for Alive {}

// No padding anywhere: every byte of these types is a field, so their
// bytes may be viewed as `[u8]` (`bytes_of`).
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Row>() == 8 + 2 + 2 + 4 + TARGET_LEN + DETAIL_LEN);
    assert!(size_of::<Copy>() == 8 * 8 + CAPACITY * size_of::<Row>());
    assert!(size_of::<Table>() == 12 * 8 + 2 * size_of::<Copy>());
    assert!(size_of::<Alive>() == 5 * 8);
};

/// Types whose every byte belongs to a field (no padding).
trait NoPadding: AnyBitPattern {}
impl NoPadding for Copy {}
impl NoPadding for Alive {}

/// The bytes of `v`, to be written with `pwrite`.
fn bytes_of<T: NoPadding>(v: &T) -> &[u8] {
    // SAFETY: `T: NoPadding` (asserted above for each implementor): all
    // `size_of::<T>()` bytes are initialised field bytes; the slice borrows
    // `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// `u64`s as native-endian bytes, to be written with `pwrite`.
fn u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

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
    /// The region file belongs to another user or is writable by others:
    /// refused (someone else may have planted it).
    Untrusted(String),
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
            PublishError::Busy { pid: 0 } => {
                f.write_str("another publisher (pid unknown) is publishing under this name")
            }
            PublishError::Busy { pid } => write!(
                f,
                "another publisher (pid {pid}) is publishing under this name"
            ),
            PublishError::Untrusted(e) | PublishError::Region(e) => f.write_str(e),
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
fn zeroed<T: AnyBitPattern>() -> T {
    // SAFETY: `T: AnyBitPattern`: every bit pattern, all zeros included, is a valid
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

fn table_options(trust: RegionTrust) -> RegionOptions {
    RegionOptions::new().tag(TABLE_TAG).trust(trust)
}

fn alive_options(trust: RegionTrust) -> RegionOptions {
    RegionOptions::new().tag(ALIVE_TAG).trust(trust)
}

/// The advice that goes with a refused region of NAME.
fn untrusted_hint(name: &str, e: &RegionError) -> String {
    let owner = match e {
        RegionError::Untrusted { owner, .. } => *owner,
        _ => 0,
    };
    format!(
        "another user may have planted or changed it, so it is not used. Remove it \
         (as root: `hangsafe status --remove --force {name}`; as its owner: \
         `hangsafe status --remove {name}`), or, to read a table of a user you trust, \
         `hangsafe status --trust-owner {owner} {name}`"
    )
}

fn region_error(name: &str, what: &str, e: RegionError) -> PublishError {
    match e {
        RegionError::Untrusted { .. } => PublishError::Untrusted(format!(
            "/dev/shm/{what}: {e}: {}",
            untrusted_hint(name, &e)
        )),
        _ => PublishError::Region(format!("/dev/shm/{what}: {e}")),
    }
}

/// Writes `bytes` at `offset` of the data of `region` under `guard`.
fn put<T: AnyBitPattern>(
    region: &SharedRegion<T>,
    guard: &mut RobustMutexGuard<'_, T>,
    offset: usize,
    bytes: &[u8],
) -> Result<(), String> {
    region
        .write_at(guard, offset, bytes)
        .map_err(|e| format!("cannot write the table: {e}"))
}

/// Reads the `u64` at `offset` of the data of `region` under `guard`.
fn get_u64<T: AnyBitPattern>(
    region: &SharedRegion<T>,
    guard: &RobustMutexGuard<'_, T>,
    offset: usize,
) -> Result<u64, String> {
    let mut b = [0u8; 8];
    region
        .read_at(guard, offset, &mut b)
        .map_err(|e| format!("cannot read the table: {e}"))?;
    Ok(u64::from_ne_bytes(b))
}

/// The recovery fields of the table header (`recoveries` and the three
/// `last_recovery_*`), bumped by one recovery by `by`.
fn recovery_fields(recoveries: u64, by: u64) -> Vec<u8> {
    u64s(&[
        recoveries.wrapping_add(1),
        real_ns(),
        u64::from(std::process::id()),
        by,
    ])
}

/// Locks the table for a publisher, recovering it if its owner died.
/// Returns the guard and whether a recovery happened.
fn lock_table_publisher(
    table: &SharedRegion<Table>,
) -> Result<(RobustMutexGuard<'_, Table>, bool), String> {
    table.check_len().map_err(|e| e.to_string())?;
    match table.lock_timeout(PUBLISHER_LOCK_WAIT) {
        Ok(g) => Ok((g, false)),
        Err(LockError::OwnerDead(dead)) => {
            // The owner (an earlier publisher, or a reader) died holding
            // the lock. The current copy is complete by construction; the
            // other one is scratch and is rewritten before it is used.
            let mut g = dead.into_guard();
            let n = get_u64(table, &g, offset_of!(Table, recoveries))?;
            let fields = recovery_fields(n, BY_PUBLISHER);
            put(table, &mut g, offset_of!(Table, recoveries), &fields)?;
            g.make_consistent()
                .map_err(|e| format!("cannot make the table consistent: {e}"))?;
            Ok((g, true))
        }
        Err(e) => Err(format!("cannot lock the table: {e}")),
    }
}

/// Releases a lock of `region` (see [`SharedRegion::unlock`]).
fn release<T: AnyBitPattern>(
    region: &SharedRegion<T>,
    g: RobustMutexGuard<'_, T>,
) -> Result<(), String> {
    region
        .unlock(g)
        .map_err(|e| format!("cannot unlock the table: {e}"))
}

/// The publishing side: owns the table region and holds the liveness lock
/// for as long as it exists. Not `Send`: the liveness lock belongs to the
/// thread that took it (the watch's main thread).
pub struct Publisher {
    table: SharedRegion<Table>,
    alive_region: &'static SharedRegion<Alive>,
    alive: Option<RobustMutexGuard<'static, Alive>>,
    stall: Option<Duration>,
    /// What happened at start-up worth telling the user (recoveries).
    pub notes: Vec<String>,
    /// Updates that failed (lock timeouts), for the final summary.
    pub failures: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// Every liveness region a publisher of this process mapped (each leaked
/// on purpose: its guard lives until exit).
static LIVENESS_REGIONS: std::sync::Mutex<Vec<&'static SharedRegion<Alive>>> =
    std::sync::Mutex::new(Vec::new());

/// The PID of the live publisher of NAME, whose liveness lock is held:
/// from its liveness record (read without the lock, which it holds; it
/// wrote its PID right after taking it), else from the table header.
fn busy_pid(name: &str, alive_region: &SharedRegion<Alive>) -> u64 {
    let from_alive = alive_region.read_unlocked().map_or(0, |a| a.pid);
    if from_alive != 0 {
        return from_alive;
    }
    let Ok(t) = table_options(RegionTrust::Owner).open::<Table>(&table_name(name)) else {
        return 0;
    };
    if t.check_len().is_err() {
        return 0;
    }
    let pid = match t.lock_timeout(Duration::from_millis(200)) {
        Ok(g) => {
            let pid = get_u64(&t, &g, offset_of!(Table, publisher_pid)).unwrap_or(0);
            let _ = release(&t, g);
            pid
        }
        Err(LockError::OwnerDead(dead)) => {
            // Never drop an owner-dead guard unrepaired: the current copy
            // is complete by construction.
            let mut g = dead.into_guard();
            let pid = get_u64(&t, &g, offset_of!(Table, publisher_pid)).unwrap_or(0);
            let _ = g.make_consistent();
            let _ = release(&t, g);
            pid
        }
        Err(_) => 0,
    };
    pid
}

/// Creates or opens the region `region` of NAME with `options`, `init`
/// if new; one that is not recoverable (only a buggy or foreign client can
/// leave it so) is unlinked and created again, with a note saying so.
fn create_or_recreate<T: AnyBitPattern>(
    options: &RegionOptions,
    name: &str,
    region: &str,
    init: T,
    notes: &mut Vec<String>,
) -> Result<SharedRegion<T>, PublishError> {
    let r = options
        .create_or_open(region, init)
        .map_err(|e| region_error(name, region, e))?;
    if !r.is_not_recoverable() {
        return Ok(r);
    }
    notes.push(format!(
        "/dev/shm/{region} was not recoverable; recreated it"
    ));
    drop(r);
    let _ = SharedRegion::unlink(region);
    options
        .create_or_open(region, init)
        .map_err(|e| region_error(name, region, e))
}

/// The liveness region of NAME, mapped for the rest of the process: the
/// guard of its lock is held until exit, so the region it borrows is
/// leaked (one mapping per process).
fn liveness_region(
    name: &str,
    notes: &mut Vec<String>,
) -> Result<&'static SharedRegion<Alive>, PublishError> {
    let init = Alive {
        format: FORMAT,
        state: ALIVE_NONE,
        pid: 0,
        started_ns: 0,
        ended_ns: 0,
    };
    let an = alive_name(name);
    let options = alive_options(RegionTrust::Owner);
    let region = create_or_recreate(&options, name, &an, init, notes)?;
    region
        .check_len()
        .map_err(|e| PublishError::Region(format!("/dev/shm/{an}: {e}")))?;
    let region: &'static SharedRegion<Alive> = Box::leak(Box::new(region));
    // Kept reachable, so that leak checkers (the fuzz targets run under
    // LeakSanitizer) see the deliberate leak as in use.
    if let Ok(mut all) = LIVENESS_REGIONS.lock() {
        all.push(region);
    }
    Ok(region)
}

/// Takes the liveness lock of NAME (see [`lock_liveness`]), and writes
/// this process into it as the running publisher.
fn take_liveness(
    name: &str,
    alive_region: &'static SharedRegion<Alive>,
    now: u64,
    notes: &mut Vec<String>,
) -> Result<RobustMutexGuard<'static, Alive>, PublishError> {
    let an = alive_name(name);
    let alive_err = |e: String| PublishError::Region(format!("/dev/shm/{an}: {e}"));
    let mut guard = lock_liveness(name, alive_region, notes)?;
    let me = Alive {
        format: FORMAT,
        state: ALIVE_RUNNING,
        pid: u64::from(std::process::id()),
        started_ns: now,
        ended_ns: 0,
    };
    put(alive_region, &mut guard, 0, bytes_of(&me)).map_err(alive_err)?;
    Ok(guard)
}

/// Takes the liveness lock of NAME, recovering it if its holder died (and
/// marking that publisher as died); `Busy` if a live publisher holds it.
fn lock_liveness(
    name: &str,
    alive_region: &'static SharedRegion<Alive>,
    notes: &mut Vec<String>,
) -> Result<RobustMutexGuard<'static, Alive>, PublishError> {
    let an = alive_name(name);
    let alive_err = |e: String| PublishError::Region(format!("/dev/shm/{an}: {e}"));
    match alive_region.lock_timeout(PUBLISHER_LOCK_WAIT) {
        Ok(g) => {
            let before = alive_region
                .read(&g)
                .map_err(|e| alive_err(e.to_string()))?;
            if before.state == ALIVE_DIED {
                notes.push(format!(
                    "the previous publisher (pid {}) had died; taking over",
                    before.pid
                ));
            }
            Ok(g)
        }
        Err(LockError::OwnerDead(dead)) => {
            recover_liveness(name, alive_region, dead.into_guard(), notes)
        }
        Err(LockError::TimedOut | LockError::WouldBlock) => Err(PublishError::Busy {
            pid: busy_pid(name, alive_region),
        }),
        Err(e) => Err(alive_err(e.to_string())),
    }
}

/// Recovers the liveness lock of NAME, taken as `g` from a holder that
/// died: marks that publisher as died, and makes the lock consistent.
fn recover_liveness(
    name: &str,
    alive_region: &'static SharedRegion<Alive>,
    mut g: RobustMutexGuard<'static, Alive>,
    notes: &mut Vec<String>,
) -> Result<RobustMutexGuard<'static, Alive>, PublishError> {
    let an = alive_name(name);
    let alive_err = |e: String| PublishError::Region(format!("/dev/shm/{an}: {e}"));
    let before = alive_region
        .read(&g)
        .map_err(|e| alive_err(e.to_string()))?;
    notes.push(format!(
        "the previous publisher (pid {}) died; recovered its liveness lock",
        before.pid
    ));
    put(
        alive_region,
        &mut g,
        offset_of!(Alive, state),
        &u64s(&[ALIVE_DIED]),
    )
    .map_err(alive_err)?;
    g.make_consistent()
        .map_err(|e| alive_err(format!("cannot make consistent: {e}")))?;
    Ok(g)
}

/// Records this process in the header of NAME's `table` as its
/// publisher: PID, start time, interval, timeout, and one more publisher.
fn claim_table(
    name: &str,
    table: &SharedRegion<Table>,
    now: u64,
    interval: Duration,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<(), PublishError> {
    let tn = table_name(name);
    let table_err = |e: String| PublishError::Region(format!("/dev/shm/{tn}: {e}"));
    let (mut g, recovered) = lock_table_publisher(table).map_err(table_err)?;
    let head = table.read(&g).map_err(|e| table_err(e.to_string()))?;
    if recovered {
        notes.push(format!(
            "the table's previous owner (pid {}) died holding its lock; recovered it \
             (the last complete table is kept)",
            head.publisher_pid
        ));
    }
    if head.format != FORMAT {
        let _ = release(table, g);
        return Err(PublishError::Region(format!(
            "/dev/shm/{tn} holds another table format; remove it"
        )));
    }
    let fields = u64s(&[
        u64::from(std::process::id()),
        now,
        u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
        u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
        head.publishers.wrapping_add(1),
    ]);
    put(table, &mut g, offset_of!(Table, publisher_pid), &fields).map_err(table_err)?;
    release(table, g).map_err(table_err)
}

/// The copy of generation `gen` holding `rows` (the first [`CAPACITY`])
/// of `round`, checksummed, with its `gen_end` not yet `gen` (the copy is
/// incomplete until `gen_end` is written).
fn new_copy(rows: &[Report], round: u64, gen: u64) -> Box<Copy> {
    let n = rows.len().min(CAPACITY);
    let mut c: Box<Copy> = Box::new(zeroed());
    c.gen_begin = gen;
    c.updated_real_ns = real_ns();
    c.updated_boot_ns = boot_ns();
    c.round = round;
    c.rows_len = n as u64;
    c.dropped = (rows.len() - n) as u64;
    for (row, rep) in c.rows.iter_mut().zip(&rows[..n]) {
        encode(row, rep);
    }
    c.checksum = checksum(&c);
    c.gen_end = !gen;
    c
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
        // Liveness first, so that two publishers never share a table.
        let alive_region = liveness_region(name, &mut notes)?;
        let guard = take_liveness(name, alive_region, now, &mut notes)?;
        let tn = table_name(name);
        let options = table_options(RegionTrust::Owner);
        let table = create_or_recreate(&options, name, &tn, empty_table(), &mut notes)?;
        claim_table(name, &table, now, interval, timeout, &mut notes)?;
        let stall = std::env::var(STALL_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        Ok(Publisher {
            table,
            alive_region,
            alive: Some(guard),
            stall,
            notes,
            failures: 0,
        })
    }

    /// Publishes `rows` (the first [`CAPACITY`]) as the table of `round`.
    ///
    /// Every step is a `pwrite` under the lock, in this order: the copy's
    /// `gen_begin`, the rest of the copy but `gen_end`, `gen_end`, the
    /// header's `generation`, then `current`. A publisher killed between
    /// any two leaves `current` naming a complete copy.
    pub fn update(&mut self, rows: &[Report], round: u64) -> Result<(), String> {
        let table = &self.table;
        let (mut g, recovered) = lock_table_publisher(table)?;
        if recovered {
            self.notes
                .push("a reader died holding the table lock; recovered it".to_owned());
        }
        let current = get_u64(table, &g, offset_of!(Table, current))?;
        let generation = get_u64(table, &g, offset_of!(Table, generation))?;
        let next = usize::from(current & 1 == 0);
        let gen = generation.wrapping_add(1);
        let c = new_copy(rows, round, gen);
        let at = offset_of!(Table, copies) + next * std::mem::size_of::<Copy>();
        let bytes = bytes_of(&*c);
        let end = offset_of!(Copy, gen_end);
        // The copy is marked "being written" before anything else of it
        // changes.
        put(table, &mut g, at, &bytes[..8])?;
        put(table, &mut g, at + 8, &bytes[8..end])?;
        if let Some(stall) = self.stall {
            // Test knob: a SIGKILL during this sleep leaves a written but
            // incomplete copy (no `gen_end`, not current), lock held.
            std::thread::sleep(stall);
        }
        put(table, &mut g, at + end, &gen.to_ne_bytes())?;
        // The copy is complete before it becomes current.
        put(
            table,
            &mut g,
            offset_of!(Table, generation),
            &gen.to_ne_bytes(),
        )?;
        put(
            table,
            &mut g,
            offset_of!(Table, current),
            &(next as u64).to_ne_bytes(),
        )?;
        release(table, g)
    }
}

impl Drop for Publisher {
    /// A clean exit: the liveness record says so, then the lock is
    /// released (a reader's `try_lock` then succeeds and reads "exited").
    fn drop(&mut self) {
        if let Some(mut g) = self.alive.take() {
            let r = put(
                self.alive_region,
                &mut g,
                offset_of!(Alive, state),
                &ALIVE_EXITED.to_ne_bytes(),
            )
            .and_then(|()| {
                let at = offset_of!(Alive, ended_ns);
                put(self.alive_region, &mut g, at, &real_ns().to_ne_bytes())
            });
            if let Err(e) = r {
                log::error!("hangsafe: recording the publisher's exit: {e}");
            }
            if let Err(e) = self.alive_region.unlock(g) {
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
    /// The table exists but this user may not open it.
    PermissionDenied(String),
    /// The table (or its liveness record) belongs to another user or is
    /// writable by others: refused.
    Untrusted(String),
    /// The table is unusable: another format, not recoverable, truncated,
    /// or no intact copy.
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
                "the table's lock was not released within {d:?} (its holder is stopped or hung)"
            ),
            ReadError::PermissionDenied(e) | ReadError::Untrusted(e) | ReadError::Unusable(e) => {
                f.write_str(e)
            }
        }
    }
}

/// What a table that cannot be opened is, for `status`.
fn open_error(name: &str, region: &str, e: RegionError) -> ReadError {
    let path = format!("/dev/shm/{region}");
    match e {
        RegionError::NotFound => ReadError::NotFound,
        RegionError::Untrusted { .. } => {
            ReadError::Untrusted(format!("{path}: {e}: {}", untrusted_hint(name, &e)))
        }
        RegionError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            use std::os::unix::fs::MetadataExt as _;
            let whose = std::fs::symlink_metadata(&path).map_or(String::new(), |m| {
                format!(" (owner uid {}, mode {:04o})", m.uid(), m.mode() & 0o7777)
            });
            ReadError::PermissionDenied(format!(
                "{path}: permission denied{whose}: only its owner (or root) can read a table; \
                 run status as that user"
            ))
        }
        e => ReadError::Unusable(format!("{path}: {e}")),
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
fn publisher_state(name: &str, trust: RegionTrust) -> Result<PublisherState, ReadError> {
    let an = alive_name(name);
    let region = match alive_options(trust).open::<Alive>(&an) {
        Ok(r) => r,
        Err(e @ RegionError::Untrusted { .. }) => return Err(open_error(name, &an, e)),
        Err(_) => return Ok(PublisherState::Unknown),
    };
    if region.check_len().is_err() {
        return Ok(PublisherState::Unknown);
    }
    let state = match region.try_lock() {
        Err(LockError::WouldBlock) => PublisherState::Alive,
        Ok(g) => {
            let state = region.read(&g).map_or(ALIVE_NONE, |a| a.state);
            let _ = region.unlock(g);
            match state {
                ALIVE_EXITED => PublisherState::Exited,
                ALIVE_DIED => PublisherState::Died,
                _ => PublisherState::Unknown,
            }
        }
        Err(LockError::OwnerDead(dead)) => {
            let mut g = dead.into_guard();
            let fields = u64s(&[ALIVE_DIED]);
            let _ = put(&region, &mut g, offset_of!(Alive, state), &fields);
            let at = offset_of!(Alive, ended_ns);
            let _ = put(&region, &mut g, at, &real_ns().to_ne_bytes());
            if let Err(e) = g.make_consistent() {
                // Dropping it now makes it not recoverable; the next
                // publisher recreates it.
                log::error!("hangsafe: cannot make the liveness lock consistent: {e}");
            }
            let _ = region.unlock(g);
            PublisherState::Died
        }
        Err(_) => PublisherState::Unknown,
    };
    Ok(state)
}

/// Reads the table of NAME: waits at most `timeout` for its lock, recovers
/// it if its holder died, and returns the current copy after verifying it.
/// Only a table owned by this user (or by `trust_owner`), writable by
/// nobody else, is read.
///
/// Whatever the file holds, and even if it is truncated meanwhile, this
/// returns an error rather than crash: the table is copied out with
/// `pread` (see the module docs).
pub fn read(
    name: &str,
    timeout: Duration,
    trust_owner: Option<u32>,
) -> Result<Snapshot, ReadError> {
    if validate_name(name).is_err() {
        return Err(ReadError::BadName(name.to_owned()));
    }
    let trust = trust_owner.map_or(RegionTrust::Owner, RegionTrust::OwnerOrUid);
    let tn = table_name(name);
    // A table file not yet initialised is waited for, within the timeout.
    let table = table_options(trust)
        .ready_timeout(timeout.min(Duration::from_secs(1)))
        .open::<Table>(&tn)
        .map_err(|e| open_error(name, &tn, e))?;
    let publisher = publisher_state(name, trust)?;
    let damaged = |e: String| ReadError::Unusable(format!("/dev/shm/{tn}: {e}"));
    table.check_len().map_err(|e| damaged(e.to_string()))?;
    let (mut g, owner_died) = match table.lock_timeout(timeout) {
        Ok(g) => (g, false),
        Err(LockError::OwnerDead(dead)) => (dead.into_guard(), true),
        Err(LockError::TimedOut) => return Err(ReadError::LockTimedOut(timeout)),
        Err(e) => return Err(damaged(e.to_string())),
    };
    if owner_died {
        // Nothing to repair: the current copy is complete by construction
        // (and verified below); the other copy is scratch.
        let n = get_u64(&table, &g, offset_of!(Table, recoveries)).map_err(damaged)?;
        let fields = recovery_fields(n, BY_STATUS);
        put(&table, &mut g, offset_of!(Table, recoveries), &fields).map_err(damaged)?;
        if let Err(e) = g.make_consistent() {
            return Err(damaged(format!("cannot make the lock consistent: {e}")));
        }
    }
    // Copied out under the lock with pread; everything else happens after
    // unlocking.
    let t = table.read(&g).map_err(|e| damaged(e.to_string()));
    let unlocked = table.unlock(g).map_err(|e| damaged(e.to_string()));
    let t = t?;
    unlocked?;
    parse(&tn, &t, owner_died, publisher)
}

/// The snapshot a table copied out of the region describes; an error if
/// it is of another format or its current copy is damaged. Pure: any
/// bytes give a snapshot or an error.
fn parse(
    tn: &str,
    t: &Table,
    owner_died: bool,
    publisher: PublisherState,
) -> Result<Snapshot, ReadError> {
    if t.format != FORMAT {
        return Err(ReadError::Unusable(format!(
            "/dev/shm/{tn}: unknown table format"
        )));
    }
    let cur = (t.current & 1) as usize;
    let copy = &t.copies[cur];
    let other = &t.copies[1 - cur];
    verify(copy).map_err(|why| {
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
        pid: t.publisher_pid,
        started_ns: t.publisher_started_ns,
        interval: Duration::from_nanos(t.interval_ns),
        timeout: Duration::from_nanos(t.timeout_ns),
        recoveries: t.recoveries,
    })
}

/// Fuzzing: recomputes the checksum of both copies of the table in
/// `file` (the bytes of a whole table region file), so that mutated rows
/// get past verification and reach the row decoder. Files too short or
/// with an implausible data offset are left alone.
#[doc(hidden)]
pub fn reseal_for_fuzz(file: &mut [u8]) {
    let Some(raw) = file.get(40..48) else { return };
    let mut b = [0u8; 8];
    b.copy_from_slice(raw);
    let Ok(data) = usize::try_from(u64::from_ne_bytes(b)) else {
        return;
    };
    let size = std::mem::size_of::<Copy>();
    for i in 0..2 {
        let at = data
            .saturating_add(offset_of!(Table, copies))
            .saturating_add(i * size);
        let Some(bytes) = file.get_mut(at..at.saturating_add(size)) else {
            return;
        };
        let mut c: Box<Copy> = Box::new(zeroed());
        // SAFETY: `Copy: AnyBitPattern` and has no padding: any `size` bytes make a
        // valid `Copy`; the box is exclusively ours and `size` bytes long.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut *c as *mut Copy).cast::<u8>(), size)
        };
        let sum = checksum(&c).to_ne_bytes();
        let o = offset_of!(Copy, checksum);
        bytes[o..o + 8].copy_from_slice(&sum);
    }
}

/// What `status --remove` did, or why it did not.
#[derive(Debug)]
pub enum RemoveError {
    /// NAME is invalid.
    BadName(String),
    /// Neither file exists.
    NotFound,
    /// A live publisher holds NAME (and `force` was not given).
    Alive {
        /// Its PID (0 if unknown).
        pid: u64,
    },
    /// A file is not ours (another owner, writable by others, not a
    /// regular file), and `force` was not given; or the system refused.
    Refused(String),
    /// A system call failed.
    Io(String),
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::BadName(n) => write!(
                f,
                "invalid name {n:?}: use 1 to {NAME_MAX} letters, digits, '-' or '_'"
            ),
            RemoveError::NotFound => f.write_str("no such table: nothing to remove"),
            RemoveError::Alive { pid } => {
                let pid = if *pid == 0 {
                    "pid unknown".to_owned()
                } else {
                    format!("pid {pid}")
                };
                write!(
                    f,
                    "a live publisher ({pid}) holds this name: stop it first, or pass --force \
                     (it keeps publishing into the removed file, which status no longer sees)"
                )
            }
            RemoveError::Refused(e) | RemoveError::Io(e) => f.write_str(e),
        }
    }
}

/// A file of NAME to remove: its path and identity when checked.
struct Doomed {
    path: String,
    dev: u64,
    ino: u64,
}

/// Checks one file of NAME for removal: a regular file (never a symlink,
/// which is not followed), owned by this user and writable by nobody else,
/// unless `force`. `None` if it does not exist.
fn check_removable(region: &str, force: bool) -> Result<Option<Doomed>, RemoveError> {
    use std::os::unix::fs::MetadataExt as _;
    let path = format!("/dev/shm/{region}");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RemoveError::Io(format!("{path}: {e}"))),
    };
    let doomed = Doomed {
        path: path.clone(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if force {
        return Ok(Some(doomed));
    }
    if !meta.file_type().is_file() {
        return Err(RemoveError::Refused(format!(
            "{path}: not a regular file (a symlink or other object planted under the name); \
             remove it by hand, or pass --force"
        )));
    }
    let meta = file_metadata(&path, meta)?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if let Err(e) = RegionTrust::Owner.check_owner_mode(meta.uid(), meta.gid(), meta.mode(), euid) {
        return Err(RemoveError::Refused(format!(
            "{path}: {e}: not removing it; as its owner, or as root with --force, you can"
        )));
    }
    Ok(Some(Doomed {
        path,
        dev: meta.dev(),
        ino: meta.ino(),
    }))
}

/// The metadata of the file at `path` itself, through a descriptor (no
/// symlink followed); `meta` (of the name) if it cannot be opened for lack
/// of permission.
fn file_metadata(path: &str, meta: std::fs::Metadata) -> Result<std::fs::Metadata, RemoveError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match file.and_then(|f| f.metadata()) {
        Ok(m) => Ok(m),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(meta),
        Err(e) => Err(RemoveError::Io(format!("{path}: {e}"))),
    }
}

/// `status --remove NAME`: removes a stale publication (both files), only
/// if both are ours and no live publisher holds NAME; `force` removes them
/// anyway (whoever owns them, as far as the system allows).
pub fn remove(name: &str, force: bool) -> Result<Vec<String>, RemoveError> {
    if validate_name(name).is_err() {
        return Err(RemoveError::BadName(name.to_owned()));
    }
    let (tn, an) = (table_name(name), alive_name(name));
    let doomed: Vec<Doomed> = [check_removable(&tn, force)?, check_removable(&an, force)?]
        .into_iter()
        .flatten()
        .collect();
    if doomed.is_empty() {
        return Err(RemoveError::NotFound);
    }
    if !force {
        refuse_if_alive(&an)?;
    }
    let mut removed = Vec::new();
    for d in doomed {
        if remove_doomed(&d)? {
            removed.push(d.path);
        }
    }
    Ok(removed)
}

/// Refuses (`Alive`) if a live publisher holds the liveness lock of the
/// region `an`; a lock whose holder died is made consistent and released.
fn refuse_if_alive(an: &str) -> Result<(), RemoveError> {
    let Ok(region) = alive_options(RegionTrust::Owner).open::<Alive>(an) else {
        return Ok(());
    };
    if region.check_len().is_err() {
        return Ok(());
    }
    match region.try_lock() {
        Err(LockError::WouldBlock) => {
            return Err(RemoveError::Alive {
                pid: region.read_unlocked().map_or(0, |a| a.pid),
            })
        }
        Ok(g) => {
            let _ = region.unlock(g);
        }
        Err(LockError::OwnerDead(dead)) => {
            let mut g = dead.into_guard();
            let _ = g.make_consistent();
            let _ = region.unlock(g);
        }
        Err(_) => {}
    }
    Ok(())
}

/// Removes the checked file `d`, if its name is still that file; `false`
/// if it was already gone.
fn remove_doomed(d: &Doomed) -> Result<bool, RemoveError> {
    use std::os::unix::fs::MetadataExt as _;
    // The name must still be the file that was checked. In the sticky
    // /dev/shm only its owner (us) or root can replace it meanwhile.
    let same =
        std::fs::symlink_metadata(&d.path).is_ok_and(|m| (m.dev(), m.ino()) == (d.dev, d.ino));
    if !same {
        return Err(RemoveError::Refused(format!(
            "{}: replaced while being removed; not removing it",
            d.path
        )));
    }
    match std::fs::remove_file(&d.path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(RemoveError::Refused(format!("{}: {e}", d.path)))
        }
        Err(e) => Err(RemoveError::Io(format!("{}: {e}", d.path))),
    }
}

/// Fuzzing and tests: reads the table of NAME as `status` does, from
/// whatever the files hold. Never panics; every outcome is a value.
#[doc(hidden)]
pub fn read_for_fuzz(name: &str) -> Result<Snapshot, ReadError> {
    read(name, Duration::from_millis(20), None)
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
