//! Mount points, from `/proc/self/mountinfo`.
//!
//! Each line of mountinfo describes one mount; its fifth space-separated
//! field is the mount point, relative to the process's root, and the field
//! after the ` - ` separator is the filesystem type (see
//! `proc_pid_mountinfo(5)`). The kernel escapes space, tab, newline and
//! backslash in that field as `\040`, `\011`, `\012` and `\134`.
//! Mount points are bytes, not necessarily UTF-8, so they are handled as
//! `OsString`s throughout.

use crate::target::Target;
use hangsafe::runner::{Builder, RunError};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Filesystem types that are skipped by default (`--all` keeps them):
/// kernel interfaces with no storage behind them, whose probes would only
/// add noise (and `autofs` points, whose probe would trigger the mount).
pub(crate) const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "cpuset",
    "debugfs",
    "devpts",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "smackfs",
    "sysfs",
    "tracefs",
    "xenfs",
];

/// Whether `fstype` is a pseudo filesystem (see [`PSEUDO_FILESYSTEMS`]).
pub(crate) fn is_pseudo(fstype: &str) -> bool {
    PSEUDO_FILESYSTEMS.contains(&fstype)
}

/// One mount point and the type of the filesystem visible there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The mount point.
    pub point: PathBuf,
    /// The filesystem type (`ext4`, `nfs4`, `fuse.sshfs`, ...); empty if
    /// the line had no ` - ` separator.
    pub fstype: String,
    /// The mount source (the field after the type: a device such as
    /// `/dev/sda1`, `server:/export`, or the filesystem's name), as
    /// node_exporter's `device` label; empty if absent.
    pub source: String,
    /// Whether the mount is read-only (`ro` in its per-mount options).
    pub readonly: bool,
}

/// Where the mount table of the calling process is read from.
pub(crate) const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Why the mount table could not be obtained.
#[derive(Debug)]
pub(crate) enum MountsError {
    /// Reading the file failed.
    Read(io::Error),
    /// Reading the file did not finish in time (the kernel can block it
    /// while a mount or unmount is stuck).
    TimedOut(Duration),
    /// The reader could not be run at all (no runner thread, or it died).
    Runner(String),
}

impl fmt::Display for MountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountsError::Read(e) => write!(f, "cannot read {MOUNTINFO}: {e}"),
            MountsError::TimedOut(d) => write!(
                f,
                "{MOUNTINFO} did not answer within {}",
                crate::duration::format(*d)
            ),
            MountsError::Runner(e) => write!(f, "cannot read {MOUNTINFO}: {e}"),
        }
    }
}

impl std::error::Error for MountsError {}

/// Reads the mounts of this process, deduplicated, in mountinfo order,
/// giving up at `deadline`.
pub(crate) fn read_mounts(deadline: Instant) -> Result<Vec<Mount>, MountsError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let text = read_mountinfo(deadline, timeout)?;
    Ok(parse_mounts(&text))
}

/// The default targets of `check` and `watch` (the same for both): every
/// mount point, minus
/// pseudo filesystems unless `all`, as `auto` targets. The mount table is
/// read by `deadline`.
pub(crate) fn default_targets(deadline: Instant, all: bool) -> Result<Vec<Target>, MountsError> {
    Ok(read_mounts(deadline)?
        .into_iter()
        .filter(|m| all || !is_pseudo(&m.fstype))
        .map(|m| Target::from_path(m.point))
        .collect())
}

/// Reads mountinfo in a runner with `deadline` (`timeout` is only for the
/// error message).
fn read_mountinfo(deadline: Instant, timeout: Duration) -> Result<Vec<u8>, MountsError> {
    let runner = Builder::new()
        .deadline(deadline)
        .spawn(|_ctx| std::fs::read(MOUNTINFO))
        .map_err(|e| MountsError::Runner(e.to_string()))?;
    match runner.wait() {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(MountsError::Read(e)),
        Err(RunError::TimedOut) => Err(MountsError::TimedOut(timeout)),
        Err(e) => Err(MountsError::Runner(e.to_string())),
    }
}

/// Extracts the mounts (mount point from field 5 and filesystem type from
/// the field after the `-` separator, both unescaped) from the text of a
/// mountinfo file. A mount point listed more than once (stacked mounts)
/// appears once, at its first position, with the type of its last (top,
/// visible) mount. Lines with fewer than five fields are skipped.
pub(crate) fn parse_mounts(text: &[u8]) -> Vec<Mount> {
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(field) = fields.get(4).filter(|f| !f.is_empty()) else {
            continue;
        };
        let point = PathBuf::from(OsString::from_vec(unescape(field)));
        let sep = fields.iter().skip(6).position(|f| *f == b"-");
        let after = |n: usize| {
            sep.and_then(|i| fields.get(6 + i + n))
                .map(|f| String::from_utf8_lossy(&unescape(f)).into_owned())
                .unwrap_or_default()
        };
        let m = Mount {
            point: point.clone(),
            fstype: after(1),
            source: after(2),
            readonly: fields
                .get(5)
                .is_some_and(|o| o.split(|&b| b == b',').any(|o| o == b"ro")),
        };
        match index.get(&point) {
            Some(&i) => mounts[i] = m,
            None => {
                index.insert(point, mounts.len());
                mounts.push(m);
            }
        }
    }
    mounts
}

/// Decodes the kernel's octal escapes (`\` followed by exactly three octal
/// digits denoting a byte, e.g. `\040` for a space). A backslash not
/// followed by such a sequence is kept as it is.
pub(crate) fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            if let Some(byte) = field.get(i + 1..i + 4).and_then(octal_byte) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// The byte denoted by three octal digits, if they are octal and at most
/// `\377`.
fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits
        .iter()
        .try_fold(0u16, |acc, &d| match d {
            b'0'..=b'7' => Some(acc * 8 + u16::from(d - b'0')),
            _ => None,
        })
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
40 22 0:35 / /mnt/my\\040disk rw,relatime shared:20 - ext4 /dev/sdb1 rw
41 22 0:36 / /mnt/tab\\011and\\012newline rw shared:21 - tmpfs tmpfs rw
42 22 0:37 / /mnt/back\\134slash rw shared:22 - tmpfs tmpfs rw
43 23 0:38 / /proc rw shared:23 - proc proc rw
";

    /// The mount points alone.
    fn points(text: &[u8]) -> Vec<PathBuf> {
        parse_mounts(text).into_iter().map(|m| m.point).collect()
    }

    fn strings(points: &[PathBuf]) -> Vec<&str> {
        points.iter().map(|p| p.to_str().unwrap()).collect()
    }

    #[test]
    fn takes_the_fifth_field_decoded_and_deduplicated() {
        let points = points(SAMPLE.as_bytes());
        assert_eq!(
            strings(&points),
            [
                "/",
                "/proc",
                "/sys",
                "/mnt/my disk",
                "/mnt/tab\tand\nnewline",
                "/mnt/back\\slash",
            ]
        );
    }

    #[test]
    fn decodes_the_four_kernel_escapes() {
        assert_eq!(unescape(br"a\040b"), b"a b");
        assert_eq!(unescape(br"a\011b"), b"a\tb");
        assert_eq!(unescape(br"a\012b"), b"a\nb");
        assert_eq!(unescape(br"a\134b"), b"a\\b");
        assert_eq!(unescape(br"\040\040"), b"  ");
        assert_eq!(unescape(br"\134040"), b"\\040");
    }

    #[test]
    fn keeps_backslashes_that_are_not_escapes() {
        assert_eq!(unescape(br"a\b"), br"a\b");
        assert_eq!(unescape(br"a\04"), br"a\04");
        assert_eq!(unescape(br"a\"), br"a\");
        assert_eq!(unescape(br"a\089"), br"a\089");
        assert_eq!(unescape(br"a\400"), br"a\400");
        assert_eq!(unescape(b""), b"");
    }

    #[test]
    fn keeps_non_utf8_bytes() {
        let points = points(b"1 0 0:1 / /mnt/\xff\\377 rw - tmpfs t rw\n");
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].as_os_str().as_bytes(), b"/mnt/\xff\xff");
    }

    #[test]
    fn skips_short_and_empty_lines() {
        let text = b"\n1 2 3 4\ngarbage\n5 0 0:1 / /ok rw - tmpfs t rw\n\n";
        assert_eq!(strings(&points(text)), ["/ok"]);
        assert!(points(b"").is_empty());
    }

    #[test]
    fn tolerates_a_missing_final_newline() {
        let text = b"1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / /boot rw - ext4 x rw";
        assert_eq!(strings(&points(text)), ["/", "/boot"]);
    }

    #[test]
    fn reads_the_filesystem_type_after_the_separator() {
        let mounts = parse_mounts(SAMPLE.as_bytes());
        let types: Vec<(&str, &str)> = mounts
            .iter()
            .map(|m| (m.point.to_str().unwrap(), m.fstype.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("/", "ext4"),
                ("/proc", "proc"),
                ("/sys", "sysfs"),
                ("/mnt/my disk", "ext4"),
                ("/mnt/tab\tand\nnewline", "tmpfs"),
                ("/mnt/back\\slash", "tmpfs"),
            ]
        );
        // Optional fields before the separator vary in number.
        let m = parse_mounts(
            b"1 0 0:1 / /a rw shared:1 master:2 - fuse.sshfs x rw\n2 0 0:2 / /b rw - nfs4 h:/ rw\n",
        );
        assert_eq!(m[0].fstype, "fuse.sshfs");
        assert_eq!(m[1].fstype, "nfs4");
        // No separator: unknown type, kept.
        assert_eq!(parse_mounts(b"1 0 0:1 / /c rw\n")[0].fstype, "");
    }

    #[test]
    fn the_visible_type_of_a_stacked_mount_point_is_the_last() {
        let text = b"1 0 0:1 / /m rw - ext4 a rw\n2 1 0:2 / /m rw - autofs b rw\n";
        let m = parse_mounts(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].fstype, "autofs");
        let text = b"1 0 0:1 / /m rw - autofs a rw\n2 1 0:2 / /m rw - nfs b rw\n";
        assert_eq!(parse_mounts(text)[0].fstype, "nfs");
    }

    #[test]
    fn pseudo_filesystems_are_recognised() {
        for t in [
            "proc",
            "sysfs",
            "cgroup",
            "cgroup2",
            "devpts",
            "mqueue",
            "debugfs",
            "tracefs",
            "securityfs",
            "pstore",
            "bpf",
            "configfs",
            "fusectl",
            "hugetlbfs",
            "autofs",
            "binfmt_misc",
            "nsfs",
            "efivarfs",
            "selinuxfs",
            "rpc_pipefs",
        ] {
            assert!(is_pseudo(t), "{t}");
        }
        for t in [
            "ext4",
            "xfs",
            "nfs",
            "nfs4",
            "tmpfs",
            "fuse",
            "fuse.sshfs",
            "overlay",
            "cifs",
            "",
        ] {
            assert!(!is_pseudo(t), "{t}");
        }
    }

    #[test]
    fn default_targets_skip_pseudo_filesystems_unless_all() {
        let far = Instant::now() + Duration::from_secs(30);
        let some = default_targets(far, false).unwrap();
        let all = default_targets(far, true).unwrap();
        assert!(all.len() >= some.len());
        let proc_point = Target::from_path(PathBuf::from("/proc"));
        assert!(!some.contains(&proc_point), "{some:?}");
        if parse_mounts(&std::fs::read(MOUNTINFO).unwrap())
            .iter()
            .any(|m| m.point == Path::new("/proc") && m.fstype == "proc")
        {
            assert!(all.contains(&proc_point), "{all:?}");
        }
    }

    #[test]
    fn reads_this_process_mount_table() {
        let mounts = read_mounts(Instant::now() + Duration::from_secs(30)).unwrap();
        assert!(!mounts.is_empty());
        assert!(mounts.iter().all(|m| m.point.is_absolute()), "{mounts:?}");
    }
}
