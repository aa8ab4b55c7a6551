//! The `block:` probe: an O_DIRECT read of sector 0.

use super::aligned::AlignedBuf;
use super::{cancel_fail, fail, last_os_fail, Fail, Outcome, Phases, BLOCK_PHASES};
use hangsafe::cancel;
use std::ffi::{c_ulong, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// An O_DIRECT read of sector 0, of the device's logical block size.
pub(super) fn block(p: &Path, ctx: &Phases<'_, '_>) -> Outcome {
    ctx.enter_phase("open");
    let (fd, direct) = open_block(p)?;
    ctx.enter_phase(BLOCK_PHASES[0]);
    let size = logical_block_size(&fd)?;
    let mut buf = AlignedBuf::new(size, size.max(4096));
    ctx.enter_phase(BLOCK_PHASES[1]);
    let n = cancel::pread(&fd, buf.as_mut(), 0).map_err(|e| cancel_fail("read sector 0", e))?;
    if n == 0 {
        return Err(fail("read sector 0", "end of device (empty medium?)"));
    }
    Ok(format!(
        "read {n} B of sector 0 (logical block {size} B), {}",
        if direct { "directio" } else { "no directio" }
    ))
}

/// Opens the block device `p`, with O_DIRECT unless it is refused
/// (EINVAL); says whether O_DIRECT was used. Anything but a block device
/// is refused.
fn open_block(p: &Path) -> Result<(OwnedFd, bool), Fail> {
    let (fd, direct) = match cancel::openat(None, p, libc::O_RDONLY | libc::O_DIRECT, 0) {
        Ok(fd) => (fd, true),
        Err(cancel::Error::Os(libc::EINVAL)) => (
            cancel::openat(None, p, libc::O_RDONLY, 0).map_err(|e| cancel_fail("open", e))?,
            false,
        ),
        Err(e) => return Err(cancel_fail("open", e)),
    };
    // SAFETY: all-zero bytes are a valid `struct stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` writable for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_os_fail("fstat"));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
        return Err(fail("open", "not a block device"));
    }
    Ok((fd, direct))
}

/// The device's logical block size (BLKSSZGET); 512 if it is not a power
/// of two.
fn logical_block_size(fd: &OwnedFd) -> Result<usize, Fail> {
    let mut lbs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int into `lbs`, which outlives the call.
    unsafe {
        cancel::ioctl(
            fd.as_raw_fd(),
            libc::BLKSSZGET as c_ulong,
            (&mut lbs as *mut libc::c_int).cast::<c_void>(),
        )
    }
    .map_err(|e| cancel_fail("BLKSSZGET", e))?;
    Ok(usize::try_from(lbs)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(512))
}
