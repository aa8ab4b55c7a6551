//! Shared-memory regions holding one [`RobustMutex<T>`], with a header that
//! lets a process refuse a region laid out for another type or version.
//!
//! # Layout (version 1)
//!
//! ```text
//! offset 0    Header (128 bytes, all fields native-endian atomics)
//!               0  magic         u64   "HSREGION"; written last (Release)
//!               8  version       u32   1
//!              12  header_size   u32   128
//!              16  total_len     u64   bytes used by the region
//!              24  mutex_offset  u64   where the RobustMutex<T> starts
//!              32  mutex_size    u64   size_of::<RobustMutex<T>>()
//!              40  data_offset   u64   where the T starts
//!              48  data_size     u64   size_of::<T>()
//!              56  data_align    u64   align_of::<T>()
//!              64  layout_tag    u64   type tag (see RegionOptions::tag)
//!              72  reserved, zero
//! mutex_offset RawRobustMutex (64 bytes), then T at data_offset
//! ```
//!
//! `magic` and `version` stay at offsets 0 and 8 in every future version, so
//! that any build can tell "not a region" from "a region of another
//! version".
//!
//! # Whose file it is
//!
//! `/dev/shm` is writable by everyone (sticky, like `/tmp`), so the file
//! behind a name may have been planted by another local user, or made
//! writable by others since. Whoever can write the file can forge its data,
//! break its lock and truncate it. Opening or creating a region **by name**
//! therefore checks the opened descriptor (`fstat`, after an `open` with
//! `O_NOFOLLOW`, and before anything is mapped or read, so no other file can
//! be swapped in between check and use): by default ([`RegionTrust::Owner`])
//! it must be a regular file owned by the effective user and not writable
//! by its group or by others, or the call fails with
//! [`RegionError::Untrusted`]. Deliberate sharing between users is opted
//! into with [`RegionOptions::trust`]. Regions opened from a descriptor
//! ([`SharedRegion::open_from_fd`]) trust whoever handed the descriptor
//! over and are not checked (a memfd is mode `0777`).
//!
//! # Truncation
//!
//! A process that can write the file can also shrink it; the kernel then
//! removes the pages beyond the new end from every mapping, and the next
//! access to one of them through the mapping raises `SIGBUS`. So:
//!
//! * opening reads the header and the mutex with `pread` (never through the
//!   mapping) after checking the size with `fstat`;
//! * [`SharedRegion::read`] and [`SharedRegion::write_at`] copy the data
//!   with `pread`/`pwrite` after checking the size under the lock: a
//!   truncated file is [`RegionError::Truncated`], never a signal;
//!   [`SharedRegion::check_len`] checks it before any other access.
//!
//! What remains: the mutex's own word lives in the first page of the file
//! and is used with atomic instructions (lock, unlock, `make_consistent`).
//! Shrinking the file **to zero bytes** (any other size keeps the first
//! page mapped) between a size check and such an instruction, a window of
//! nanoseconds, still raises `SIGBUS` in the locker. With the default
//! [`RegionTrust::Owner`], only processes of the same user (or root) can do
//! that: processes that could equally kill or `ptrace` the locker. Data
//! accessed through the guard's `Deref` is not protected either: use
//! [`read`](SharedRegion::read)/[`write_at`](SharedRegion::write_at) where
//! another process of the user may truncate the file.

use super::any_bit_pattern::AnyBitPattern;
use super::error::Error;
use super::mutex::RobustMutex;
use super::mutex::RobustMutexGuard;
use super::raw::RawRobustMutex;
use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// "HSREGION", read as a big-endian number (stored native-endian).
const MAGIC: u64 = u64::from_be_bytes(*b"HSREGION");
/// The header layout version this build writes and accepts.
const VERSION: u32 = 1;
/// Size of the header; the mutex starts at the next multiple of its
/// alignment.
const HEADER_SIZE: usize = 128;
/// Where named regions live (as with `shm_open`).
const SHM_DIR: &str = "/dev/shm";
/// The longest name `shm_open` accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Mappings are page-aligned; every supported page size is at least this.
const MIN_PAGE: usize = 4096;

/// The region header. All fields are atomics: an opener may read it while
/// a creator (in another process) is still writing it, and a corrupt file
/// may hold anything, which atomics of integers tolerate.
#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    header_size: AtomicU32,
    total_len: AtomicU64,
    mutex_offset: AtomicU64,
    mutex_size: AtomicU64,
    data_offset: AtomicU64,
    data_size: AtomicU64,
    data_align: AtomicU64,
    layout_tag: AtomicU64,
    reserved: [AtomicU64; 7],
}

const _: () = {
    assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
    assert!(std::mem::align_of::<Header>() == 8);
    assert!(std::mem::offset_of!(Header, version) == 8);
};

/// The layout of a region of `T`, as recorded in (and checked against) the
/// header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    total_len: u64,
    mutex_offset: u64,
    mutex_size: u64,
    data_offset: u64,
    data_size: u64,
    data_align: u64,
    tag: u64,
}

impl Layout {
    fn of<T: AnyBitPattern>(tag: u64) -> Layout {
        let mutex_offset = mutex_offset::<T>();
        let mutex_size = std::mem::size_of::<RobustMutex<T>>();
        Layout {
            // No overflow: a type's size is at most isize::MAX, and the
            // offset is at most one page.
            total_len: (mutex_offset as u64) + mutex_size as u64,
            mutex_offset: mutex_offset as u64,
            mutex_size: mutex_size as u64,
            data_offset: (mutex_offset + RobustMutex::<T>::DATA_OFFSET) as u64,
            data_size: std::mem::size_of::<T>() as u64,
            data_align: std::mem::align_of::<T>() as u64,
            tag,
        }
    }
}

/// Offset of the `RobustMutex<T>` from the start of the mapping.
fn mutex_offset<T: AnyBitPattern>() -> usize {
    const {
        assert!(
            std::mem::align_of::<RobustMutex<T>>() <= MIN_PAGE,
            "a SharedRegion's type must not need more than 4096-byte alignment"
        )
    };
    HEADER_SIZE.next_multiple_of(std::mem::align_of::<RobustMutex<T>>())
}

/// The default layout tag of `T`: 64-bit FNV-1a over `type_name::<T>()`,
/// then `size_of::<T>()` and `align_of::<T>()` (little-endian `u64`s).
fn default_tag<T: AnyBitPattern>() -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let size = (std::mem::size_of::<T>() as u64).to_le_bytes();
    let align = (std::mem::align_of::<T>() as u64).to_le_bytes();
    std::any::type_name::<T>()
        .bytes()
        .chain(size)
        .chain(align)
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Why a [`SharedRegion`] could not be created or opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegionError {
    /// The name is not usable as a shared-memory name: it is empty, longer
    /// than 255 bytes, `.` or `..`, or contains `/` (other than one leading
    /// `/`) or a NUL byte.
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `create`: a region (or any file) of that name already exists.
    /// `create_from_fd`: the file is not empty, so it may hold a region in
    /// use.
    Exists,
    /// `open`: no region of that name exists.
    NotFound,
    /// The file exists but its creator has not published it (its magic is
    /// still zero, or it is still empty) after waiting
    /// [`RegionOptions::ready_timeout`]. Its creator is slow, or died while
    /// initialising it; such a file never becomes ready and must be
    /// unlinked. Regions created by name with this crate are published
    /// atomically and never show this state.
    NotReady {
        /// How long the opener waited.
        waited: Duration,
    },
    /// The file is not a hangsafe region: its magic number is wrong.
    BadMagic {
        /// The first 8 bytes of the file, as a native-endian `u64`.
        found: u64,
    },
    /// The region was written by a build with another header version.
    VersionMismatch {
        /// The version in the region.
        found: u32,
        /// The version this build uses.
        expected: u32,
    },
    /// The region holds a different type (or was laid out differently):
    /// `field` of the header differs from what this `T` needs.
    LayoutMismatch {
        /// The header field that differs: `data_size`, `data_align`,
        /// `layout_tag`, `header_size`, `mutex_offset`, `mutex_size`,
        /// `data_offset` or `total_len`.
        field: &'static str,
        /// The value for this process's `T` and options.
        expected: u64,
        /// The value in the region.
        found: u64,
    },
    /// The file is too short to hold the region (or even its header).
    TooSmall {
        /// The file's size.
        len: u64,
        /// The size needed.
        needed: u64,
    },
    /// The file is not one this process may trust: see [`RegionTrust`]
    /// and [`RegionOptions::trust`]. Nothing of it was read or mapped.
    Untrusted {
        /// Why it is refused.
        reason: UntrustedReason,
        /// The file's owner (uid).
        owner: u32,
        /// The file's group (gid).
        group: u32,
        /// The file's permission bits.
        mode: u32,
        /// The effective uid of this process.
        euid: u32,
    },
    /// The file was shrunk below the region's size after it was opened
    /// (someone with write access truncated it). The data was not touched.
    Truncated {
        /// The file's size now.
        len: u64,
        /// The region's size.
        needed: u64,
    },
    /// A system call failed (`open`, `ftruncate`, `mmap`, `linkat`...).
    Io(io::Error),
    /// The mutex could not be initialised (e.g. no `/proc` to identify the
    /// PID namespace).
    Mutex(Error),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::InvalidName { name, reason } => {
                write!(f, "invalid shared region name {name:?}: {reason}")
            }
            RegionError::Exists => f.write_str("shared region already exists"),
            RegionError::NotFound => f.write_str("shared region does not exist"),
            RegionError::NotReady { waited } => write!(
                f,
                "shared region is still not initialised after {waited:?}: its creator is slow \
                 or died while initialising it"
            ),
            RegionError::BadMagic { found } => write!(
                f,
                "not a hangsafe shared region: magic is {found:#018x}, expected {MAGIC:#018x}"
            ),
            RegionError::VersionMismatch { found, expected } => write!(
                f,
                "shared region has header version {found}, this build expects {expected}"
            ),
            RegionError::LayoutMismatch {
                field,
                expected,
                found,
            } => write!(
                f,
                "shared region layout mismatch: {field} is {found} in the region, \
                 {expected} for this type"
            ),
            RegionError::TooSmall { len, needed } => write!(
                f,
                "shared region file is too small: {len} bytes, {needed} needed"
            ),
            RegionError::Untrusted {
                reason,
                owner,
                group,
                mode,
                euid,
            } => {
                let why = match reason {
                    UntrustedReason::OtherOwner => {
                        format!("owned by uid {owner} (this process runs as uid {euid})")
                    }
                    UntrustedReason::GroupWritable => {
                        format!("writable by its group (gid {group}, mode {mode:04o})")
                    }
                    UntrustedReason::OtherWritable => {
                        format!("writable by others (mode {mode:04o})")
                    }
                };
                write!(f, "refusing shared region file {why}")
            }
            RegionError::Truncated { len, needed } => write!(
                f,
                "shared region file was truncated to {len} bytes ({needed} needed) while in use"
            ),
            RegionError::Io(e) => write!(f, "shared region: {e}"),
            RegionError::Mutex(e) => write!(f, "shared region: {e}"),
        }
    }
}

impl std::error::Error for RegionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegionError::Io(e) => Some(e),
            RegionError::Mutex(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RegionError {
    fn from(e: io::Error) -> RegionError {
        RegionError::Io(e)
    }
}

impl From<Error> for RegionError {
    fn from(e: Error) -> RegionError {
        RegionError::Mutex(e)
    }
}

/// Why a region file is not trusted ([`RegionError::Untrusted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UntrustedReason {
    /// Another user owns it (and the [`RegionTrust`] does not name it).
    OtherOwner,
    /// Its group may write it (and the [`RegionTrust`] does not allow that
    /// group).
    GroupWritable,
    /// Every user may write it.
    OtherWritable,
}

/// Which region files a process accepts when it opens (or creates) a region
/// by name: see [`RegionOptions::trust`].
///
/// Every policy but [`Anyone`](Self::Anyone) refuses a file writable by
/// others (mode `o+w`), since anyone at all could then forge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RegionTrust {
    /// The default: the file is owned by the effective uid and is not
    /// writable by its group or by others. Only this user (and root) can
    /// change it.
    #[default]
    Owner,
    /// Also a file owned by this uid (for example a daemon's user, whose
    /// region a monitoring process reads), still not writable by group or
    /// others.
    OwnerOrUid(u32),
    /// Sharing within a group: a file owned by the effective uid or whose
    /// group is this gid, which that group may write (mode `0660`). Only
    /// members of the group (and root) can create a file of that group, so
    /// this trusts exactly them. A region created by name with this policy
    /// is given that group (`fchown`) before it gets its name; choose a
    /// mode that lets the group write (e.g. `0o660`, with a umask that
    /// keeps it).
    Group(u32),
    /// Any file: no check. Whoever can write the file can forge the data,
    /// break the lock and truncate the file (see the module docs). Only for
    /// files in a directory that only trusted users can write.
    Anyone,
}

impl RegionTrust {
    /// Whether a file with this owner, group and mode (as `fstat` gives
    /// them) is acceptable to a process running as `euid`:
    /// [`RegionError::Untrusted`] if not. This is the check every named
    /// open and create applies to the opened file.
    ///
    /// ```
    /// use hangsafe::robust::RegionTrust;
    ///
    /// assert!(RegionTrust::Owner.check_owner_mode(1000, 1000, 0o600, 1000).is_ok());
    /// assert!(RegionTrust::Owner.check_owner_mode(1001, 1000, 0o600, 1000).is_err());
    /// assert!(RegionTrust::Owner.check_owner_mode(1000, 1000, 0o666, 1000).is_err());
    /// assert!(RegionTrust::Group(50).check_owner_mode(1001, 50, 0o660, 1000).is_ok());
    /// ```
    pub fn check_owner_mode(
        self,
        owner: u32,
        group: u32,
        mode: u32,
        euid: u32,
    ) -> Result<(), RegionError> {
        let refuse = |reason| {
            Err(RegionError::Untrusted {
                reason,
                owner,
                group,
                mode: mode & 0o7777,
                euid,
            })
        };
        let group_writable = mode & 0o020 != 0;
        let (owner_ok, group_ok) = match self {
            RegionTrust::Anyone => return Ok(()),
            RegionTrust::Owner => (owner == euid, false),
            RegionTrust::OwnerOrUid(uid) => (owner == euid || owner == uid, false),
            RegionTrust::Group(gid) => (owner == euid || group == gid, group == gid),
        };
        if !owner_ok {
            refuse(UntrustedReason::OtherOwner)
        } else if mode & 0o002 != 0 {
            refuse(UntrustedReason::OtherWritable)
        } else if group_writable && !group_ok {
            refuse(UntrustedReason::GroupWritable)
        } else {
            Ok(())
        }
    }

    fn check_file(self, meta: &std::fs::Metadata) -> Result<(), RegionError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        self.check_owner_mode(meta.uid(), meta.gid(), meta.mode(), euid)
    }
}

/// How to create or open a [`SharedRegion`]: file mode, layout tag, and how
/// long to wait for a region that is not yet initialised.
///
/// The constructors of [`SharedRegion`] use the defaults; this builder is
/// for the rest.
///
/// ```
/// use hangsafe::robust::{RegionOptions, SharedRegion};
/// use std::time::Duration;
///
/// let name = format!("hangsafe-doc-options-{}", std::process::id());
/// let opts = RegionOptions::new()
///     .mode(0o600)
///     .tag(0x5e55_1012) // agreed on by every program that maps it
///     .ready_timeout(Duration::from_millis(200));
/// let region = opts.create_or_open(&name, [0u32; 4])?;
/// assert!(region.is_creator());
/// let other: SharedRegion<[u32; 4]> = opts.open(&name)?;
/// assert!(!other.is_creator());
/// SharedRegion::unlink(&name)?;
/// # Ok::<(), hangsafe::robust::RegionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegionOptions {
    mode: u32,
    tag: Option<u64>,
    ready_timeout: Duration,
    trust: RegionTrust,
}

impl Default for RegionOptions {
    fn default() -> RegionOptions {
        RegionOptions::new()
    }
}

impl RegionOptions {
    /// The defaults: mode `0o600`, the type's default tag, and a
    /// one-second [`ready_timeout`](Self::ready_timeout).
    pub fn new() -> RegionOptions {
        RegionOptions {
            mode: 0o600,
            tag: None,
            ready_timeout: Duration::from_secs(1),
            trust: RegionTrust::Owner,
        }
    }

    /// Which files a region opened or created **by name** may be (default
    /// [`RegionTrust::Owner`]: owned by this user, not writable by group or
    /// others). A file that does not qualify is refused with
    /// [`RegionError::Untrusted`] before anything of it is read or mapped.
    /// A region this process creates is checked too (a mode the policy
    /// refuses, such as `0o666` with a zero umask, is an error).
    ///
    /// ```
    /// use hangsafe::robust::{RegionOptions, RegionTrust};
    ///
    /// // Readers and writers in group 1234 share the region.
    /// let opts = RegionOptions::new().mode(0o660).trust(RegionTrust::Group(1234));
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn trust(mut self, trust: RegionTrust) -> RegionOptions {
        self.trust = trust;
        self
    }

    /// The permission bits of a file created by name (default `0o600`: the
    /// owner only). As with `open(2)`, the process umask is applied.
    ///
    /// Anyone who can write the file can corrupt the data, break the lock,
    /// or truncate the file (which makes a process that then accesses the
    /// mapping crash with `SIGBUS`; see "Truncation" in the module docs):
    /// share a region only with processes you trust. A mode that lets
    /// group or others write is refused unless [`trust`](Self::trust)
    /// allows it.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> RegionOptions {
        self.mode = mode;
        self
    }

    /// The layout tag recorded at creation and required at opening.
    ///
    /// By default it is a hash of [`std::any::type_name`] of `T` with its
    /// size and alignment ([`SharedRegion::default_tag`]). Type names are
    /// not guaranteed stable between compiler versions and change when a
    /// type is renamed or moved, so programs built separately (or in
    /// different languages) should agree on an explicit tag, and change it
    /// whenever the meaning of the data changes. Size and alignment are
    /// checked separately whatever the tag.
    #[must_use]
    pub fn tag(mut self, tag: u64) -> RegionOptions {
        self.tag = Some(tag);
        self
    }

    /// How long [`open`](Self::open) and
    /// [`create_or_open`](Self::create_or_open) wait for a region whose
    /// creator has not published it yet (default one second), before
    /// failing with [`RegionError::NotReady`]. Zero does not wait.
    ///
    /// Named regions created by this crate are published atomically (see
    /// [`SharedRegion::create`]), so only files initialised in place (by
    /// [`create_from_fd`](Self::create_from_fd), or by a creator on a
    /// filesystem without `O_TMPFILE`) can be seen unpublished.
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> RegionOptions {
        self.ready_timeout = timeout;
        self
    }

    fn layout<T: AnyBitPattern>(&self) -> Layout {
        Layout::of::<T>(self.tag.unwrap_or_else(default_tag::<T>))
    }

    /// Creates the region `name`, holding `init`; fails with
    /// [`RegionError::Exists`] if the name exists. See
    /// [`SharedRegion::create`].
    pub fn create<T: AnyBitPattern>(
        &self,
        name: &str,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let path = shm_path(name)?;
        self.create_at(&path, init)
    }

    /// Opens the existing region `name`. See [`SharedRegion::open`].
    pub fn open<T: AnyBitPattern>(&self, name: &str) -> Result<SharedRegion<T>, RegionError> {
        let path = shm_path(name)?;
        let file = open_existing(&path)?;
        self.attach(file, true)
    }

    /// Opens the region `name`, creating it with `init` if it does not
    /// exist. See [`SharedRegion::create_or_open`].
    pub fn create_or_open<T: AnyBitPattern>(
        &self,
        name: &str,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let path = shm_path(name)?;
        // Each round is: open (the name exists), else create (it did not).
        // Another round is only needed when the name appears between the
        // two and disappears again before the next open, i.e. when someone
        // unlinks it concurrently; give up after a few such rounds.
        let mut last = RegionError::NotFound;
        for _ in 0..16 {
            match open_existing(&path) {
                Ok(file) => return self.attach(file, true),
                Err(RegionError::NotFound) => {}
                Err(e) => return Err(e),
            }
            match self.create_at(&path, init) {
                Err(RegionError::Exists) => last = RegionError::Exists,
                r => return r,
            }
        }
        Err(last)
    }

    /// A region in anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`),
    /// shared with the children this process `fork`s afterwards. See
    /// [`SharedRegion::anonymous`].
    pub fn anonymous<T: AnyBitPattern>(&self, init: T) -> Result<SharedRegion<T>, RegionError> {
        let layout = self.layout::<T>();
        let map = Mapping::new(None, layout.total_len)?;
        // SAFETY: a fresh private-to-us mapping of `total_len` zeroed bytes;
        // nobody else can see it yet.
        unsafe { publish::<T>(&map, &layout, init)? };
        Ok(SharedRegion::new(map, None, true))
    }

    /// Creates a region in the file `fd` refers to (a memfd, or any regular
    /// file), which must be empty ([`RegionError::Exists`] otherwise): the
    /// file is sized, mapped, initialised, and then published by writing its
    /// magic number. The region owns `fd` and closes it when dropped.
    ///
    /// Processes that open the same file before it is published wait for it
    /// (up to [`ready_timeout`](Self::ready_timeout)). Only one process may
    /// create a region in a given file: the emptiness check is not atomic
    /// with the initialisation, so two concurrent creators would both
    /// initialise it. (Named regions have no such restriction: use
    /// [`create_or_open`](Self::create_or_open).)
    pub fn create_from_fd<T: AnyBitPattern>(
        &self,
        fd: impl Into<OwnedFd>,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let file = File::from(fd.into());
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(not_regular());
        }
        if meta.len() != 0 {
            return Err(RegionError::Exists);
        }
        self.init_file(file, init)
    }

    /// Opens the region in the file `fd` refers to (a memfd received from
    /// another process, or any regular file). The region owns `fd` and
    /// closes it when dropped.
    pub fn open_from_fd<T: AnyBitPattern>(
        &self,
        fd: impl Into<OwnedFd>,
    ) -> Result<SharedRegion<T>, RegionError> {
        self.attach(File::from(fd.into()), false)
    }

    /// Creates the region at `path`, atomically if the filesystem can.
    fn create_at<T: AnyBitPattern>(
        &self,
        path: &Path,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(self.mode)
            .custom_flags(libc::O_TMPFILE)
            .open(SHM_DIR);
        match tmp {
            Ok(file) => {
                self.adopt_created(&file)?;
                // Initialise a file nobody can see, then give it its name:
                // an opener never sees it half-initialised, and if this
                // process dies first, the kernel frees the file.
                let region = self.init_file(file, init)?;
                let fd = region.fd.as_ref().expect("a file-backed region");
                match link_at(fd.as_fd(), path) {
                    Ok(()) => Ok(region),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(RegionError::Exists),
                    Err(e) => Err(RegionError::Io(e)),
                }
            }
            // No O_TMPFILE (filesystem or kernel before 3.11): create the
            // name first and initialise in place. Openers wait for the
            // magic; a creator dying now leaves a file that never becomes
            // ready.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                self.create_in_place(path, init)
            }
            Err(e) => Err(RegionError::Io(e)),
        }
    }

    fn create_in_place<T: AnyBitPattern>(
        &self,
        path: &Path,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => RegionError::Exists,
                _ => RegionError::Io(e),
            })?;
        let id = file.metadata().map(|m| (m.dev(), m.ino()));
        let r = self
            .adopt_created(&file)
            .and_then(|()| self.init_file(file, init));
        if r.is_err() {
            // Remove the unpublished file we created, unless someone
            // already replaced it.
            if let Ok((dev, ino)) = id {
                if std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino)) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        r
    }

    /// Gives a file this process just created the group of a
    /// [`RegionTrust::Group`] policy, then checks it against the policy.
    fn adopt_created(&self, file: &File) -> Result<(), RegionError> {
        if let RegionTrust::Group(gid) = self.trust {
            // SAFETY: fchown on a descriptor we own; -1 keeps the owner.
            let rc = unsafe { libc::fchown(file.as_raw_fd(), u32::MAX, gid) };
            if rc != 0 {
                return Err(RegionError::Io(io::Error::last_os_error()));
            }
        }
        self.trust.check_file(&file.metadata()?)
    }

    /// Sizes an empty file for the region, maps it, initialises it and
    /// publishes it.
    fn init_file<T: AnyBitPattern>(
        &self,
        file: File,
        init: T,
    ) -> Result<SharedRegion<T>, RegionError> {
        let layout = self.layout::<T>();
        file.set_len(layout.total_len)?;
        let map = Mapping::new(Some(file.as_fd()), layout.total_len)?;
        // SAFETY: `map` is `total_len` bytes of a file that was empty and
        // was extended with zeroes; nobody else uses it until `publish`
        // stores the magic (an opener waits for it).
        unsafe { publish::<T>(&map, &layout, init)? };
        Ok(SharedRegion::new(map, Some(file.into()), true))
    }

    /// Validates an existing region and maps it, waiting up to
    /// `ready_timeout` for its creator to publish it. `named`: opened by
    /// name, so the file's owner and mode are checked first.
    ///
    /// Everything is read with `pread` after an `fstat`, never through a
    /// mapping, so a file of any size and content (even one shrinking
    /// meanwhile) gives an error, not a `SIGBUS`.
    fn attach<T: AnyBitPattern>(
        &self,
        file: File,
        named: bool,
    ) -> Result<SharedRegion<T>, RegionError> {
        let want = self.layout::<T>();
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            let meta = file.metadata()?;
            if !meta.file_type().is_file() {
                return Err(not_regular());
            }
            if named {
                self.trust.check_file(&meta)?;
            }
            let size = meta.len();
            // An empty file is one whose creator has not sized it yet.
            if size != 0 {
                if size < HEADER_SIZE as u64 {
                    return Err(RegionError::TooSmall {
                        len: size,
                        needed: want.total_len,
                    });
                }
                match read_header(file.as_fd(), &want)?.magic {
                    0 => {}
                    MAGIC => {
                        // Pairs with the creator's Release store of the
                        // magic: the header and mutex read after this
                        // fence are the ones it initialised.
                        fence(Ordering::Acquire);
                        let h = read_header(file.as_fd(), &want)?;
                        validate(&h, &want, size)?;
                        // Refuse a mutex from another PID namespace (or one
                        // never initialised) now, not at the first lock.
                        read_mutex(file.as_fd(), &want)?.check_caller()?;
                        let map = Mapping::new(Some(file.as_fd()), want.total_len)?;
                        return Ok(SharedRegion::new(map, Some(file.into()), false));
                    }
                    found => return Err(RegionError::BadMagic { found }),
                }
            }
            let waited = start.elapsed();
            if waited >= self.ready_timeout {
                return Err(RegionError::NotReady { waited });
            }
            std::thread::sleep(pause.min(self.ready_timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// The header's fields, as read from the file.
struct HeaderValues {
    magic: u64,
    version: u32,
    header_size: u32,
    total_len: u64,
    mutex_offset: u64,
    mutex_size: u64,
    data_offset: u64,
    data_size: u64,
    data_align: u64,
    layout_tag: u64,
}

impl HeaderValues {
    /// Decodes the header's native-endian fields (see the layout in the
    /// module docs).
    fn parse(b: &[u8; HEADER_SIZE]) -> HeaderValues {
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(x)
        };
        let u32_at = |o: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[o..o + 4]);
            u32::from_ne_bytes(x)
        };
        HeaderValues {
            magic: u64_at(0),
            version: u32_at(8),
            header_size: u32_at(12),
            total_len: u64_at(16),
            mutex_offset: u64_at(24),
            mutex_size: u64_at(32),
            data_offset: u64_at(40),
            data_size: u64_at(48),
            data_align: u64_at(56),
            layout_tag: u64_at(64),
        }
    }
}

/// Reads the header with `pread`; a file shorter than the header (it
/// shrank since its size was checked) is `TooSmall`.
fn read_header(fd: BorrowedFd<'_>, want: &Layout) -> Result<HeaderValues, RegionError> {
    let mut b = [0u8; HEADER_SIZE];
    read_exact_at(fd, &mut b, 0).map_err(|e| short_read(fd, e, want.total_len))?;
    Ok(HeaderValues::parse(&b))
}

/// A copy of the region's mutex, read with `pread` (to check its namespace
/// without touching the mapping).
fn read_mutex(fd: BorrowedFd<'_>, want: &Layout) -> Result<RawRobustMutex, RegionError> {
    let mut b = [0u8; RawRobustMutex::SIZE];
    read_exact_at(fd, &mut b, want.mutex_offset).map_err(|e| short_read(fd, e, want.total_len))?;
    // SAFETY: `RawRobustMutex` is `repr(C)` and made of atomic integers
    // and a `u32` array, 64 bytes without padding (asserted next to its
    // definition): every 64-byte pattern is a valid value, and the copy is
    // a local value nobody else sees.
    Ok(unsafe { std::mem::transmute::<[u8; RawRobustMutex::SIZE], RawRobustMutex>(b) })
}

/// Turns an `UnexpectedEof` of a `pread` into `TooSmall` (the file is
/// shorter than what was read).
fn short_read(fd: BorrowedFd<'_>, e: io::Error, needed: u64) -> RegionError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        RegionError::TooSmall {
            len: file_len(fd).unwrap_or(0),
            needed,
        }
    } else {
        RegionError::Io(e)
    }
}

/// The size of the file `fd` (`fstat`).
fn file_len(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a live descriptor and `st` is writable for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// `pread` until `buf` is full; `UnexpectedEof` if the file ends first.
fn read_exact_at(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `fd` is
        // live for the call.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => {
                let n = n as usize;
                buf = &mut buf[n..];
                offset += n as u64;
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// `pwrite` all of `buf` at `offset`.
fn write_all_at(fd: BorrowedFd<'_>, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is
        // live for the call.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
        match n {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n if n > 0 => {
                let n = n as usize;
                buf = &buf[n..];
                offset += n as u64;
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// A zeroed `T` on the heap (a shared table can be too big for a thread's
/// stack).
fn zeroed_box<T: AnyBitPattern>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        // SAFETY: `T: AnyBitPattern`: all-zero (here: no bytes) is a valid `T`.
        return Box::new(unsafe { std::mem::zeroed() });
    }
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` was allocated by the global allocator with `T`'s layout,
    // and its zeroed bytes are a valid `T` (`T: AnyBitPattern`).
    unsafe { Box::from_raw(p) }
}

/// `offset..offset + len` lies within a `T`.
fn check_range<T>(offset: usize, len: usize) -> Result<(), RegionError> {
    let fits = offset
        .checked_add(len)
        .is_some_and(|end| end <= std::mem::size_of::<T>());
    if fits {
        Ok(())
    } else {
        Err(invalid_input("range beyond the region's data"))
    }
}

fn invalid_input(what: &'static str) -> RegionError {
    RegionError::Io(io::Error::new(io::ErrorKind::InvalidInput, what))
}

fn not_regular() -> RegionError {
    RegionError::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "a shared region must be a regular file",
    ))
}

/// Checks a published header against the layout this process needs.
fn validate(h: &HeaderValues, want: &Layout, file_len: u64) -> Result<(), RegionError> {
    let version = h.version;
    if version != VERSION {
        return Err(RegionError::VersionMismatch {
            found: version,
            expected: VERSION,
        });
    }
    let fields = [
        ("header_size", HEADER_SIZE as u64, u64::from(h.header_size)),
        ("data_size", want.data_size, h.data_size),
        ("data_align", want.data_align, h.data_align),
        ("layout_tag", want.tag, h.layout_tag),
        ("mutex_offset", want.mutex_offset, h.mutex_offset),
        ("mutex_size", want.mutex_size, h.mutex_size),
        ("data_offset", want.data_offset, h.data_offset),
        ("total_len", want.total_len, h.total_len),
    ];
    for (field, expected, found) in fields {
        if expected != found {
            return Err(RegionError::LayoutMismatch {
                field,
                expected,
                found,
            });
        }
    }
    if file_len < want.total_len {
        return Err(RegionError::TooSmall {
            len: file_len,
            needed: want.total_len,
        });
    }
    Ok(())
}

/// Writes the header, initialises the mutex and the data, then publishes
/// the region by storing the magic number (Release).
///
/// # Safety
///
/// `map` must be at least `layout.total_len` bytes, and nothing else may
/// access it until this returns. Its current bytes may be anything.
unsafe fn publish<T: AnyBitPattern>(
    map: &Mapping,
    layout: &Layout,
    init: T,
) -> Result<(), RegionError> {
    debug_assert!(map.len as u64 >= layout.total_len);
    let h = map.header();
    h.version.store(VERSION, Ordering::Relaxed);
    h.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
    h.total_len.store(layout.total_len, Ordering::Relaxed);
    h.mutex_offset.store(layout.mutex_offset, Ordering::Relaxed);
    h.mutex_size.store(layout.mutex_size, Ordering::Relaxed);
    h.data_offset.store(layout.data_offset, Ordering::Relaxed);
    h.data_size.store(layout.data_size, Ordering::Relaxed);
    h.data_align.store(layout.data_align, Ordering::Relaxed);
    h.layout_tag.store(layout.tag, Ordering::Relaxed);
    for r in &h.reserved {
        r.store(0, Ordering::Relaxed);
    }
    // SAFETY: the mapping is page-aligned and `mutex_offset` a multiple of
    // the mutex's alignment, the mutex lies within `total_len` bytes
    // (caller), its raw part is integers (any bytes are a valid value), and
    // nobody else uses it yet (caller).
    unsafe { RobustMutex::init_in_place(map.mutex_ptr::<T>(), init)? };
    h.magic.store(MAGIC, Ordering::Release);
    Ok(())
}

/// A `MAP_SHARED` mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, or anonymous shared memory
    /// when `fd` is `None`. `len` is at least `HEADER_SIZE`.
    fn new(fd: Option<BorrowedFd<'_>>, len: u64) -> io::Result<Mapping> {
        let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
        debug_assert!(len >= HEADER_SIZE);
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a new mapping at an address the kernel chooses: no
        // existing memory is affected. `raw` is a live descriptor (borrowed
        // for the call) or -1 with MAP_ANONYMOUS.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mapping { ptr, len })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned (so 8-aligned), at least
        // HEADER_SIZE bytes and lives as long as `self`; the header is all
        // atomic integers, valid for any bytes and for concurrent access by
        // other processes.
        unsafe { &*self.ptr.as_ptr().cast::<Header>() }
    }

    /// Where the region's mutex lives. In bounds only once the mapping is
    /// known to be a full region of `T`.
    fn mutex_ptr<T: AnyBitPattern>(&self) -> *mut RobustMutex<T> {
        self.ptr
            .as_ptr()
            .wrapping_add(mutex_offset::<T>())
            .cast::<RobustMutex<T>>()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; every reference
        // into it borrows the `SharedRegion` that owns `self`, so none is
        // left.
        let r = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if r != 0 {
            log::error!("shared region: munmap: {}", io::Error::last_os_error());
        }
    }
}

/// Opens an existing file under `/dev/shm` for reading and writing.
fn open_existing(path: &Path) -> Result<File, RegionError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        // Never a symlink; never block (a FIFO planted under the name is
        // refused by the regular-file check that follows).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RegionError::NotFound,
            _ => RegionError::Io(e),
        })
}

/// Gives the anonymous (`O_TMPFILE`) file `fd` the name `path`; fails with
/// `EEXIST` if the name exists. Linking through `/proc/self/fd` is the
/// unprivileged way (`open(2)`); `AT_EMPTY_PATH` needs a capability.
fn link_at(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let src = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("no NUL in a formatted number");
    let dst = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both paths are NUL-terminated strings that live across the
    // call; linkat reads them and nothing else.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The path of the shared-memory object `name` (`/dev/shm/<name>`), after
/// checking the name as `shm_open` would.
fn shm_path(name: &str) -> Result<PathBuf, RegionError> {
    let invalid = |reason| RegionError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(invalid("empty"));
    }
    if bare.len() > NAME_MAX {
        return Err(invalid("longer than 255 bytes"));
    }
    if bare.contains('/') {
        return Err(invalid("contains '/' after the first byte"));
    }
    if bare.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if bare == "." || bare == ".." {
        return Err(invalid("is '.' or '..'"));
    }
    Ok(Path::new(SHM_DIR).join(bare))
}

/// A shared-memory region holding one [`RobustMutex<T>`], mapped into this
/// process. Dereferences to the mutex.
///
/// The region is a file under `/dev/shm` (a "POSIX shared memory object",
/// named as for `shm_open`), a file or memfd given by descriptor, or
/// anonymous shared memory inherited over `fork`. It starts with a header
/// recording a magic number, a version, and the layout of `T`; opening a
/// region checks all of them, so a process built for another type or
/// version gets a [`RegionError`] instead of misreading the data.
///
/// Every constructor is a single call; [`RegionOptions`] holds the knobs.
/// Dropping the region unmaps it and closes its descriptor; a named region
/// persists until [`SharedRegion::unlink`] (or reboot), whatever happens to
/// the processes using it.
///
/// # Example
///
/// ```
/// use hangsafe::robust::{LockError, AnyBitPattern, SharedRegion};
///
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Stats {
///     requests: u64,
///     errors: u64,
/// }
/// // SAFETY: repr(C), only integers: every bit pattern is valid.
/// unsafe impl AnyBitPattern for Stats {}
///
/// let name = format!("hangsafe-doc-region-{}", std::process::id());
/// // In each process (the first one creates it):
/// let region = SharedRegion::create_or_open(&name, Stats { requests: 0, errors: 0 })?;
/// {
///     let mut stats = match region.lock() {
///         Ok(guard) => guard,
///         Err(LockError::OwnerDead(dead)) => {
///             // Counters cannot be torn in a harmful way: accept them.
///             let mut guard = dead.into_guard();
///             guard.make_consistent()?;
///             guard
///         }
///         Err(e) => panic!("{e}"),
///     };
///     stats.requests += 1;
/// }
/// // Another process opens it by name, with the same type:
/// let seen: SharedRegion<Stats> = SharedRegion::open(&name)?;
/// assert_eq!(seen.lock().unwrap().requests, 1);
/// // When the data is no longer wanted:
/// SharedRegion::unlink(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedRegion<T: AnyBitPattern> {
    map: Mapping,
    fd: Option<OwnedFd>,
    created: bool,
    _type: PhantomData<RobustMutex<T>>,
}

// SAFETY: the region owns its mapping and descriptor; both are process-wide
// resources that any thread may use and release. The mutex inside is
// `Sync` (`T: AnyBitPattern` implies `T: Send`), so sharing `&SharedRegion` between
// threads only shares `&RobustMutex<T>`.
unsafe impl<T: AnyBitPattern> Send for SharedRegion<T> {}
// SAFETY: see `Send`; `&SharedRegion<T>` gives out nothing but
// `&RobustMutex<T>` (which is `Sync`) and a borrowed descriptor.
unsafe impl<T: AnyBitPattern> Sync for SharedRegion<T> {}

impl<T: AnyBitPattern> SharedRegion<T> {
    fn new(map: Mapping, fd: Option<OwnedFd>, created: bool) -> SharedRegion<T> {
        debug_assert!(map.len as u64 >= Layout::of::<T>(0).total_len);
        SharedRegion {
            map,
            fd,
            created,
            _type: PhantomData,
        }
    }

    /// Creates the named region `name` (under `/dev/shm`) holding `init`,
    /// with the default [`RegionOptions`]. Fails with
    /// [`RegionError::Exists`] if the name exists.
    ///
    /// The region is created without a name (`O_TMPFILE`), sized,
    /// initialised, published, and only then linked to `name`. So no other
    /// process ever sees it half-initialised, and a creator that dies
    /// before the end leaves nothing behind. On a filesystem without
    /// `O_TMPFILE`, the name is created first (`O_CREAT | O_EXCL`) and
    /// openers wait for the header's magic number instead (see
    /// [`RegionError::NotReady`]).
    ///
    /// A name is a single path component of at most 255 bytes, with an
    /// optional leading `/` (`"/app.state"` and `"app.state"` are the same
    /// region), as for `shm_open`.
    ///
    /// ```
    /// use hangsafe::robust::{RegionError, SharedRegion};
    ///
    /// let name = format!("hangsafe-doc-create-{}", std::process::id());
    /// let region = SharedRegion::create(&name, 0u64)?;
    /// assert!(matches!(SharedRegion::create(&name, 0u64), Err(RegionError::Exists)));
    /// *region.lock().unwrap() = 42;
    /// SharedRegion::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str, init: T) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().create(name, init)
    }

    /// Opens the existing named region `name`, with the default
    /// [`RegionOptions`].
    ///
    /// The header must carry the magic number, this build's version, and
    /// the layout of `T` (size, alignment, tag and offsets); otherwise the
    /// typed error names the field and both values. Validation only reads
    /// the file. A region that exists but is not yet published is waited
    /// for, up to the [`ready_timeout`](RegionOptions::ready_timeout).
    ///
    /// ```
    /// use hangsafe::robust::{RegionError, SharedRegion};
    ///
    /// let name = format!("hangsafe-doc-open-{}", std::process::id());
    /// let missing = SharedRegion::<u64>::open(&name);
    /// assert!(matches!(missing, Err(RegionError::NotFound)));
    ///
    /// let _creator = SharedRegion::create(&name, [1u64, 2])?;
    /// let wrong = SharedRegion::<[u32; 3]>::open(&name);
    /// assert!(matches!(wrong, Err(RegionError::LayoutMismatch { field: "data_size", .. })));
    /// let right = SharedRegion::<[u64; 2]>::open(&name)?;
    /// assert_eq!(*right.lock().unwrap(), [1, 2]);
    /// SharedRegion::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().open(name)
    }

    /// Opens the named region `name`, or creates it holding `init` if it
    /// does not exist, with the default [`RegionOptions`].
    ///
    /// Safe against any number of processes racing to do the same: exactly
    /// one of them creates the region (and [`is_creator`](Self::is_creator)
    /// returns `true` for it), and every one of them sees it initialised
    /// with that creator's `init`. The others' `init` values are dropped.
    pub fn create_or_open(name: &str, init: T) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().create_or_open(name, init)
    }

    /// A region in anonymous shared memory, holding `init`: shared with the
    /// processes this one `fork`s afterwards (they inherit the mapping), and
    /// with nobody else.
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    ///
    /// let region = SharedRegion::anonymous(0u64)?;
    /// // ... fork children that lock `region` ...
    /// *region.lock().unwrap() += 1;
    /// assert_eq!(*region.lock().unwrap(), 1);
    /// # Ok::<(), hangsafe::robust::RegionError>(())
    /// ```
    pub fn anonymous(init: T) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().anonymous(init)
    }

    /// Creates a region holding `init` in the empty file `fd` (typically a
    /// memfd to be passed to other processes), with the default
    /// [`RegionOptions`]. See [`RegionOptions::create_from_fd`].
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    /// use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    ///
    /// // SAFETY: memfd_create returns a new descriptor (or -1, checked).
    /// let fd = unsafe { libc::memfd_create(c"hangsafe-doc".as_ptr(), libc::MFD_CLOEXEC) };
    /// assert!(fd >= 0);
    /// // SAFETY: `fd` is a new descriptor that nothing else owns.
    /// let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    /// let region = SharedRegion::create_from_fd(fd, 5u32)?;
    /// // Another process would receive the descriptor (SCM_RIGHTS) and:
    /// let received = region.fd().unwrap().try_clone_to_owned()?;
    /// let other = SharedRegion::<u32>::open_from_fd(received)?;
    /// assert_eq!(*other.lock().unwrap(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_from_fd(fd: impl Into<OwnedFd>, init: T) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().create_from_fd(fd, init)
    }

    /// Opens the region in the file `fd`, with the default
    /// [`RegionOptions`]. See [`RegionOptions::open_from_fd`].
    pub fn open_from_fd(fd: impl Into<OwnedFd>) -> Result<SharedRegion<T>, RegionError> {
        RegionOptions::new().open_from_fd(fd)
    }

    /// The default layout tag of `T` (used unless [`RegionOptions::tag`]
    /// overrides it): 64-bit FNV-1a over [`std::any::type_name::<T>()`],
    /// then `size_of::<T>()` and `align_of::<T>()` as little-endian `u64`s.
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    ///
    /// assert_ne!(
    ///     SharedRegion::<[u64; 2]>::default_tag(),
    ///     SharedRegion::<[u32; 4]>::default_tag(),
    /// );
    /// ```
    pub fn default_tag() -> u64 {
        default_tag::<T>()
    }

    /// The mutex in the region (the region also dereferences to it).
    pub fn mutex(&self) -> &RobustMutex<T> {
        // SAFETY: every constructor checked (creation: by construction;
        // opening: `validate`) that the mapping holds at least `total_len`
        // bytes with the mutex at `mutex_offset::<T>()`, aligned (page-aligned
        // base, offset a multiple of the mutex's alignment). Its raw part is
        // atomics and its data `T: AnyBitPattern`, so whatever other processes wrote
        // there is a valid value, and the data is only accessed under the
        // lock. The reference borrows `self`, which keeps the mapping alive.
        unsafe { &*self.map.mutex_ptr::<T>() }
    }

    /// Checks (`fstat`) that the file still holds the whole region:
    /// [`RegionError::Truncated`] if someone shrank it since it was opened.
    /// Call it before locking where another process of the same user might
    /// truncate the file: the lock word is then touched only if the file
    /// was whole a moment before (see "Truncation" in the module docs for
    /// what remains). Anonymous regions cannot shrink.
    pub fn check_len(&self) -> Result<(), RegionError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        let needed = self.map.len as u64;
        let len = file_len(fd.as_fd())?;
        if len < needed {
            return Err(RegionError::Truncated { len, needed });
        }
        Ok(())
    }

    /// A copy of the data, read while `guard` (this region's lock) is
    /// held: with `pread` after [`check_len`](Self::check_len), so a file
    /// truncated by someone else gives [`RegionError::Truncated`] instead of
    /// a `SIGBUS`. Boxed, because shared tables can be large.
    ///
    /// A `guard` of another mutex is an `InvalidInput` I/O error.
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    ///
    /// let name = format!("hangsafe-doc-read-{}", std::process::id());
    /// let region = SharedRegion::create(&name, [3u64; 4])?;
    /// let guard = region.lock().unwrap();
    /// assert_eq!(*region.read(&guard)?, [3; 4]);
    /// drop(guard);
    /// SharedRegion::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self, guard: &RobustMutexGuard<'_, T>) -> Result<Box<T>, RegionError> {
        self.check_guard(guard)?;
        let mut out = zeroed_box::<T>();
        self.copy_out(&mut out)?;
        Ok(out)
    }

    /// Like [`read`](Self::read), without the lock: the copy may mix two
    /// updates (torn), so use it only for data that tolerates that or that
    /// carries its own check (a checksum, a generation). File-backed
    /// regions only (the copy is a `pread`, which may race writers in
    /// other processes and threads); an anonymous region is an
    /// `InvalidInput` I/O error.
    pub fn read_unlocked(&self) -> Result<Box<T>, RegionError> {
        if self.fd.is_none() {
            return Err(invalid_input(
                "read_unlocked needs a file-backed region; lock and read",
            ));
        }
        let mut out = zeroed_box::<T>();
        self.copy_out(&mut out)?;
        Ok(out)
    }

    /// Copies the data into `out`: `pread` for a file, a memory copy for
    /// an anonymous region (whose lock the caller holds).
    fn copy_out(&self, out: &mut T) -> Result<(), RegionError> {
        let len = std::mem::size_of::<T>();
        // SAFETY: `out` is an initialised `T`, exclusively borrowed for as
        // long as `bytes` lives; writing any bytes into it leaves a valid
        // `T` (`T: AnyBitPattern`), padding included.
        let bytes = unsafe { std::slice::from_raw_parts_mut((out as *mut T).cast::<u8>(), len) };
        match &self.fd {
            Some(fd) => {
                self.check_len()?;
                read_exact_at(fd.as_fd(), bytes, self.data_offset())
                    .map_err(|e| self.truncated_or(e))
            }
            None => {
                // SAFETY: an anonymous mapping cannot shrink; the data lies
                // at `data_offset` within it (checked at construction); the
                // caller holds the lock (`read` checked the guard), so no
                // thread of this process writes the data meanwhile.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.map.ptr.as_ptr().add(self.data_offset() as usize),
                        bytes.as_mut_ptr(),
                        len,
                    )
                };
                Ok(())
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` bytes into the data, while
    /// `guard` (this region's lock) is held, like [`read`](Self::read)
    /// (`pread` after [`check_len`](Self::check_len)). A range beyond the
    /// data, or a `guard` of another mutex, is an `InvalidInput` I/O error.
    pub fn read_at(
        &self,
        guard: &RobustMutexGuard<'_, T>,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), RegionError> {
        self.check_guard(guard)?;
        check_range::<T>(offset, buf.len())?;
        match &self.fd {
            Some(fd) => {
                self.check_len()?;
                read_exact_at(fd.as_fd(), buf, self.data_offset() + offset as u64)
                    .map_err(|e| self.truncated_or(e))
            }
            None => {
                // SAFETY: in bounds (checked above) of an anonymous mapping
                // that cannot shrink; `guard` (checked to be ours) holds the
                // lock, so no other thread writes the data meanwhile.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.map
                            .ptr
                            .as_ptr()
                            .add(self.data_offset() as usize + offset),
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                }
                Ok(())
            }
        }
    }

    /// Unlocks `guard` (this region's lock) unless the file was emptied
    /// meanwhile: a file of zero bytes no longer has the page holding the
    /// lock word, so the guard is forgotten (nothing left to unlock) and
    /// [`RegionError::Truncated`] returned instead of faulting. Otherwise as
    /// [`RobustMutexGuard::unlock`]. See "Truncation" in the module docs
    /// for the window that remains.
    pub fn unlock(&self, guard: RobustMutexGuard<'_, T>) -> Result<(), RegionError> {
        self.check_guard(&guard)?;
        if let Some(fd) = &self.fd {
            let len = file_len(fd.as_fd())?;
            if len == 0 {
                std::mem::forget(guard);
                return Err(RegionError::Truncated {
                    len,
                    needed: self.map.len as u64,
                });
            }
        }
        RobustMutexGuard::unlock(guard).map_err(RegionError::Mutex)
    }

    /// Writes `bytes` at `offset` bytes into the data, while `guard` (this
    /// region's lock) is held: with `pwrite` after
    /// [`check_len`](Self::check_len), so a file truncated by someone else
    /// gives [`RegionError::Truncated`] instead of a `SIGBUS`. Each call is
    /// one `pwrite`: a sequence of calls lands in order, so a writer killed
    /// between two of them leaves the earlier ones done.
    ///
    /// A range beyond the data, or a `guard` of another mutex, is an
    /// `InvalidInput` I/O error.
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    ///
    /// let region = SharedRegion::anonymous([0u8; 4])?;
    /// let mut guard = region.lock().unwrap();
    /// region.write_at(&mut guard, 1, &[7, 8])?;
    /// assert_eq!(*guard, [0, 7, 8, 0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_at(
        &self,
        guard: &mut RobustMutexGuard<'_, T>,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), RegionError> {
        self.check_guard(guard)?;
        check_range::<T>(offset, bytes.len())?;
        match &self.fd {
            Some(fd) => {
                self.check_len()?;
                write_all_at(fd.as_fd(), bytes, self.data_offset() + offset as u64)
                    .map_err(|e| self.truncated_or(e))
            }
            None => {
                // SAFETY: in bounds (checked above) of an anonymous mapping
                // that cannot shrink; `guard` (checked to be ours) gives this
                // thread the exclusive right to write the data, which lives
                // in an `UnsafeCell`; `T: AnyBitPattern`, so any bytes leave a valid
                // `T`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        self.map
                            .ptr
                            .as_ptr()
                            .add(self.data_offset() as usize + offset),
                        bytes.len(),
                    )
                }
                Ok(())
            }
        }
    }

    /// The data's offset in the file.
    fn data_offset(&self) -> u64 {
        (mutex_offset::<T>() + RobustMutex::<T>::DATA_OFFSET) as u64
    }

    fn check_guard(&self, guard: &RobustMutexGuard<'_, T>) -> Result<(), RegionError> {
        if std::ptr::eq(guard.held(), self.mutex()) {
            Ok(())
        } else {
            Err(invalid_input("the guard is not this region's lock"))
        }
    }

    /// A failed `pread`/`pwrite`: `Truncated` if the file shrank.
    fn truncated_or(&self, e: io::Error) -> RegionError {
        match self.check_len() {
            Err(t @ RegionError::Truncated { .. }) => t,
            _ if e.kind() == io::ErrorKind::UnexpectedEof => RegionError::Truncated {
                len: 0,
                needed: self.map.len as u64,
            },
            _ => RegionError::Io(e),
        }
    }

    /// Whether this handle created the region (and wrote its `init`), as
    /// opposed to opening an existing one.
    pub fn is_creator(&self) -> bool {
        self.created
    }

    /// The descriptor of the file or memfd behind the region (`None` for an
    /// anonymous one), e.g. to pass it to another process. It is
    /// close-on-exec.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }
}

impl SharedRegion<()> {
    /// Removes the name `name` from `/dev/shm`. Processes that have the
    /// region mapped keep using it; it is freed when the last one unmaps
    /// it. A later [`create`](SharedRegion::create) of the same name makes
    /// a new, unrelated region.
    ///
    /// Regions are never unlinked automatically: a named region is meant to
    /// outlive the processes that use it.
    ///
    /// (This is an associated function of `SharedRegion<()>` only so that
    /// `SharedRegion::unlink(name)` needs no type annotation; it removes
    /// the region whatever its type.)
    ///
    /// ```
    /// use hangsafe::robust::{RegionError, SharedRegion};
    ///
    /// let name = format!("hangsafe-doc-unlink-{}", std::process::id());
    /// drop(SharedRegion::create(&name, 0u8)?);
    /// SharedRegion::unlink(&name)?;
    /// assert!(matches!(SharedRegion::unlink(&name), Err(RegionError::NotFound)));
    /// # Ok::<(), RegionError>(())
    /// ```
    pub fn unlink(name: &str) -> Result<(), RegionError> {
        let path = shm_path(name)?;
        std::fs::remove_file(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RegionError::NotFound,
            _ => RegionError::Io(e),
        })
    }
}

impl<T: AnyBitPattern> Deref for SharedRegion<T> {
    type Target = RobustMutex<T>;

    #[inline]
    fn deref(&self) -> &RobustMutex<T> {
        self.mutex()
    }
}

impl<T: AnyBitPattern> fmt::Debug for SharedRegion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("len", &self.map.len)
            .field("fd", &self.fd)
            .field("created", &self.created)
            .field("mutex", self.mutex())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_region_names_are_checked_like_shm_open() {
        assert_eq!(shm_path("a").unwrap(), Path::new("/dev/shm/a"));
        assert_eq!(shm_path("/a").unwrap(), Path::new("/dev/shm/a"));
        assert!(shm_path(&"x".repeat(255)).is_ok());
        assert!(shm_path(&format!("/{}", "x".repeat(255))).is_ok());
        for bad in ["", "/", "//a", "a/b", "a\0b", ".", "..", "/.."] {
            assert!(
                matches!(shm_path(bad), Err(RegionError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(shm_path(&"x".repeat(256)).is_err());
    }

    /// The fallback for filesystems without `O_TMPFILE`: the name is
    /// created first and initialised in place; it is otherwise the same
    /// region.
    #[test]
    #[cfg_attr(miri, ignore = "files and mmap")]
    fn robust_region_in_place_creation_fallback_makes_an_openable_region() {
        let name = format!("hangsafe-unit-{}-in-place", std::process::id());
        let path = shm_path(&name).unwrap();
        let _ = std::fs::remove_file(&path);
        let opts = RegionOptions::new();
        let created = opts.create_in_place(&path, [4u16, 5]).unwrap();
        assert!(created.is_creator());
        assert!(matches!(
            opts.create_in_place(&path, [0u16; 2]),
            Err(RegionError::Exists)
        ));
        let opened: SharedRegion<[u16; 2]> = opts.open(&name).unwrap();
        assert_eq!(*opened.lock().unwrap(), [4, 5]);
        let mode = std::fs::metadata(&path).unwrap().mode();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn robust_region_layout_places_mutex_and_data_aligned() {
        let l = Layout::of::<u8>(0);
        assert_eq!(l.mutex_offset, 128);
        assert_eq!(l.data_offset, 128 + 64);
        assert_eq!(l.total_len, 128 + 72);
        let l = Layout::of::<u128>(0);
        assert_eq!(l.data_offset % 16, 0);
        assert_eq!(l.data_align, std::mem::align_of::<u128>() as u64);
        let l = Layout::of::<()>(0);
        assert_eq!(l.data_size, 0);
        assert_eq!(l.total_len, 128 + 64);

        #[derive(Clone, Copy)]
        #[repr(C, align(256))]
        struct Wide(u8);
        // SAFETY: one integer field.
        unsafe impl AnyBitPattern for Wide {}
        let l = Layout::of::<Wide>(0);
        assert_eq!(l.mutex_offset, 256);
        assert_eq!(l.data_offset % 256, 0);
    }

    #[test]
    fn robust_region_default_tag_is_fnv1a_and_distinguishes_types() {
        assert_ne!(default_tag::<[u64; 2]>(), default_tag::<[u32; 4]>());
        assert_ne!(default_tag::<u32>(), default_tag::<i32>());
        assert_eq!(default_tag::<u32>(), default_tag::<u32>());
        // Pin the algorithm: FNV-1a of "u32" then 4 and 4 as LE u64s.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"u32"
            .iter()
            .chain(&4u64.to_le_bytes())
            .chain(&4u64.to_le_bytes())
        {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(default_tag::<u32>(), h);
    }
}
