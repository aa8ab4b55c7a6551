//! The `tur:` probe: SCSI TEST UNIT READY through the SG_IO ioctl, and the
//! decoding of its status and sense data.

use super::{cancel_fail, fail, Outcome, Phases};
use hangsafe::cancel;
use std::ffi::{c_ulong, c_void};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// `struct sg_io_hdr` of `<scsi/sg.h>`.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut c_void,
    cmdp: *mut u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

const SG_IO: c_ulong = 0x2285;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_INFO_OK_MASK: u32 = 0x1;

/// SCSI TEST UNIT READY through SG_IO, with the SCSI timeout set to
/// `timeout`.
pub(super) fn tur(p: &Path, ctx: &Phases<'_, '_>, timeout: Duration) -> Outcome {
    ctx.enter_phase("open");
    let fd = cancel::openat(None, p, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|e| cancel_fail("open", e))?;
    let mut cdb = [0u8; 6]; // TEST UNIT READY: opcode 0x00, all zeros
    let mut sense = [0u8; 32];
    let mut hdr = SgIoHdr::no_data(&mut cdb, &mut sense, timeout);
    ctx.enter_phase("SG_IO");
    // SAFETY: `hdr` is a valid sg_io_hdr whose pointers (`cdb`, `sense`)
    // point to live buffers of the lengths given; all outlive the call.
    let r = unsafe {
        cancel::ioctl(
            fd.as_raw_fd(),
            SG_IO,
            (&mut hdr as *mut SgIoHdr).cast::<c_void>(),
        )
    };
    match r {
        Ok(_) => {}
        Err(cancel::Error::Os(e @ (libc::ENOTTY | libc::EINVAL | libc::ENOSYS))) => {
            return Err(fail(
                "SG_IO",
                format!(
                    "not a SCSI device (SG_IO: {})",
                    std::io::Error::from_raw_os_error(e)
                ),
            ))
        }
        Err(e) => return Err(cancel_fail("SG_IO", e)),
    }
    if hdr.info & SG_INFO_OK_MASK == 0 {
        return Ok(format!("TEST UNIT READY: GOOD ({} ms)", hdr.duration));
    }
    Err(fail("SG_IO", failure(&hdr, &sense)))
}

impl SgIoHdr {
    /// The header of a command `cdb` without data transfer, with room for
    /// `sense` data and the SCSI timeout `timeout` (at least 1 ms). The
    /// header points into both buffers: they must outlive its use.
    fn no_data(cdb: &mut [u8; 6], sense: &mut [u8; 32], timeout: Duration) -> SgIoHdr {
        SgIoHdr {
            interface_id: libc::c_int::from(b'S'),
            dxfer_direction: SG_DXFER_NONE,
            cmd_len: cdb.len() as u8,
            mx_sb_len: sense.len() as u8,
            iovec_count: 0,
            dxfer_len: 0,
            dxferp: std::ptr::null_mut(),
            cmdp: cdb.as_mut_ptr(),
            sbp: sense.as_mut_ptr(),
            timeout: u32::try_from(timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
            flags: 0,
            pack_id: 0,
            usr_ptr: std::ptr::null_mut(),
            status: 0,
            masked_status: 0,
            msg_status: 0,
            sb_len_wr: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            duration: 0,
            info: 0,
        }
    }
}

/// What a failed TEST UNIT READY says: its statuses and, if there is
/// sense data, its sense key and ASC/ASCQ.
fn failure(hdr: &SgIoHdr, sense: &[u8]) -> String {
    let mut what = format!(
        "TEST UNIT READY failed: status 0x{:02x}, host 0x{:02x} ({}), driver 0x{:02x}",
        hdr.status,
        hdr.host_status,
        host_status_name(hdr.host_status),
        hdr.driver_status
    );
    let sb = &sense[..usize::from(hdr.sb_len_wr).min(sense.len())];
    if let Some((key, asc, ascq)) = sense_key(sb) {
        what.push_str(&format!(
            ", sense key {} (0x{key:x}), asc/ascq 0x{asc:02x}/0x{ascq:02x}",
            sense_key_name(key)
        ));
    }
    what
}

/// Sense key, ASC and ASCQ from fixed (0x70/0x71) or descriptor
/// (0x72/0x73) sense data.
fn sense_key(sb: &[u8]) -> Option<(u8, u8, u8)> {
    match sb.first()? & 0x7f {
        0x70 | 0x71 if sb.len() >= 3 => Some((
            sb[2] & 0x0f,
            sb.get(12).copied().unwrap_or(0),
            sb.get(13).copied().unwrap_or(0),
        )),
        0x72 | 0x73 if sb.len() >= 2 => Some((
            sb[1] & 0x0f,
            sb.get(2).copied().unwrap_or(0),
            sb.get(3).copied().unwrap_or(0),
        )),
        _ => None,
    }
}

fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0xb => "ABORTED COMMAND",
        _ => "other",
    }
}

fn host_status_name(h: u16) -> &'static str {
    match h {
        0x00 => "DID_OK",
        0x01 => "DID_NO_CONNECT",
        0x02 => "DID_BUS_BUSY",
        0x03 => "DID_TIME_OUT",
        0x04 => "DID_BAD_TARGET",
        0x05 => "DID_ABORT",
        0x06 => "DID_PARITY",
        0x07 => "DID_ERROR",
        0x08 => "DID_RESET",
        0x0e => "DID_TRANSPORT_DISRUPTED",
        0x0f => "DID_TRANSPORT_FAILFAST",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_data_is_decoded() {
        let fixed = [0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x02];
        assert_eq!(sense_key(&fixed), Some((2, 4, 2)));
        assert_eq!(sense_key(&[0x72, 0x06, 0x29, 0x00]), Some((6, 0x29, 0)));
        assert_eq!(sense_key(&[]), None);
        assert_eq!(sense_key(&[0x00, 1, 2]), None);
    }
    #[test]
    fn sg_io_hdr_has_the_kernel_layout() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<SgIoHdr>(), 88);
    }
}
