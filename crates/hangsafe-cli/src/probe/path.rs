//! The `path:` probe (statfs, stat, then a read by file type) and `auto`,
//! which sends block devices to the block probe.

use super::aligned::AlignedBuf;
use super::{c_path, cancel_fail, last_os_fail, Fail, Outcome, Phases};
use hangsafe::cancel;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `stat` decides: a block device gets the block probe, anything else the
/// path probe.
pub(super) fn auto(p: &Path, ctx: &Phases<'_, '_>) -> (&'static str, Outcome) {
    match stat(p, ctx) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFBLK => {
            ("block", super::block::block(p, ctx))
        }
        Ok(st) => ("path", path(p, ctx, Some(st))),
        Err(f) => ("path", Err(f)),
    }
}

/// `stat(2)`, following symbolic links (plain libc: not interruptible).
fn stat(p: &Path, ctx: &Phases<'_, '_>) -> Result<libc::stat, Fail> {
    ctx.enter_phase("stat");
    let c = c_path("stat", p)?;
    // SAFETY: all-zero bytes are a valid `struct stat` (integers only).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` writable; both outlive the call.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
        return Err(last_os_fail("stat"));
    }
    Ok(st)
}

/// statfs, stat, then by file type: read the first block of a regular file
/// (O_DIRECT if possible) or of a directory's entries, open a FIFO, or stop
/// at stat for anything else. `st` is a stat already taken (auto).
pub(super) fn path(p: &Path, ctx: &Phases<'_, '_>, st: Option<libc::stat>) -> Outcome {
    ctx.enter_phase("statfs");
    let c = c_path("statfs", p)?;
    // SAFETY: all-zero bytes are a valid `struct statfs` (integers only).
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `sfs` writable; both outlive the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut sfs) } != 0 {
        return Err(last_os_fail("statfs"));
    }
    ctx.record_statfs(&sfs);
    let fs = fs_name(sfs.f_type as i64);
    let st = match st {
        Some(st) => st,
        None => stat(p, ctx)?,
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => read_file(p, ctx).map(|what| format!("file on {fs}, {what}")),
        libc::S_IFDIR => read_dir(p, ctx).map(|what| format!("directory on {fs}, {what}")),
        libc::S_IFIFO => {
            // Blocks until a writer opens the FIFO; cancellable.
            ctx.enter_phase("open");
            let fd =
                cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?;
            ctx.enter_phase("close");
            let _ = cancel::close(fd);
            Ok(format!("fifo on {fs}, opened (a writer is present)"))
        }
        other => Ok(format!("{} on {fs}, stat only", type_name(other))),
    }
}

/// The name of a file type (`S_IFMT` bits).
fn type_name(fmt: libc::mode_t) -> &'static str {
    match fmt {
        libc::S_IFBLK => "block device",
        libc::S_IFCHR => "character device",
        libc::S_IFSOCK => "socket",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Reads the first block of a regular file, with O_DIRECT unless the
/// filesystem refuses it (EINVAL at open or read).
fn read_file(p: &Path, ctx: &Phases<'_, '_>) -> Result<String, Fail> {
    const BLOCK: usize = 4096;
    let mut buf = AlignedBuf::new(BLOCK, BLOCK);
    ctx.enter_phase("open");
    match cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECT, 0) {
        Ok(fd) => {
            ctx.enter_phase("read");
            match cancel::pread(&fd, buf.as_mut(), 0) {
                Ok(n) => return Ok(format!("read {n} B, directio")),
                Err(cancel::Error::Os(libc::EINVAL)) => {}
                Err(e) => return Err(cancel_fail("read", e)),
            }
        }
        Err(cancel::Error::Os(libc::EINVAL)) => {}
        Err(e) => return Err(cancel_fail("open", e)),
    }
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?;
    ctx.enter_phase("read");
    let n = cancel::pread(&fd, buf.as_mut(), 0).map_err(|e| cancel_fail("read", e))?;
    Ok(format!("read {n} B, no directio"))
}

/// Opens a directory and reads its first block of entries (getdents64).
fn read_dir(p: &Path, ctx: &Phases<'_, '_>) -> Result<String, Fail> {
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| cancel_fail("open", e))?;
    ctx.enter_phase("getdents");
    let mut buf = vec![0u8; 4096];
    // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`, which
    // lives until after the call; `fd` is an open directory.
    let n = unsafe {
        cancel::syscall(
            libc::SYS_getdents64,
            [
                fd.as_raw_fd() as libc::c_long,
                buf.as_mut_ptr() as libc::c_long,
                buf.len() as libc::c_long,
                0,
                0,
                0,
            ],
        )
    }
    .map_err(|e| cancel_fail("getdents", e))?;
    let n = usize::try_from(n).unwrap_or(0).min(buf.len());
    Ok(format!("read {} entries", count_dirents(&buf[..n])))
}

/// The number of whole `struct linux_dirent64` records in `buf`.
fn count_dirents(buf: &[u8]) -> usize {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    let n = buf.len();
    let mut entries = 0;
    let mut at = 0;
    while at + 19 <= n {
        let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
        if reclen == 0 {
            break;
        }
        entries += 1;
        at += reclen;
    }
    entries
}

/// The name of a filesystem, from `statfs`'s `f_type` magic.
fn fs_name(magic: i64) -> String {
    let name = match magic as u32 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x794C_7630 => "overlay",
        0x9FA0 => "proc",
        0x6265_6572 => "sysfs",
        0x6367_7270 => "cgroup2",
        0x0027_E0EB => "cgroup",
        0x1CD1 => "devpts",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x00C3_6400 => "ceph",
        0x4D44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x5346_544E => "ntfs",
        0x9660 => "iso9660",
        0x7371_7368 => "squashfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x8584_58F6 => "ramfs",
        0x9584_58F6 => "hugetlbfs",
        0x7472_6163 => "tracefs",
        0x6462_6720 => "debugfs",
        0x0187 => "autofs",
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x0BAD_1DEA => "9p",
        0x0102_1997 => "9p",
        0x1373 => "devfs",
        0x6E73_6673 => "nsfs",
        0x1980_0202 => "mqueue",
        _ => return format!("fs 0x{:x}", magic as u64),
    };
    name.to_owned()
}
