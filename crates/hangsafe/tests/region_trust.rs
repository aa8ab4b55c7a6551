//! Regions that belong to someone else: `SharedRegion` refuses a file not
//! owned by the effective user or writable by group/others, unless the
//! caller opts in (`RegionOptions::trust`). See docs/races.md (H17,
//! H18, H20).

use hangsafe::robust::{RegionError, RegionOptions, RegionTrust, SharedRegion, UntrustedReason};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const NOBODY: u32 = 65534;

struct Name(String);

impl Name {
    fn new(test: &str) -> Name {
        Name(format!("hangsafe-trust-{test}-{}", std::process::id()))
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/{}", self.0))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &std::path::Path, uid: u32, gid: u32) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path valid for the call.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, gid) }, 0);
}

#[test]
fn h17_region_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("h17: not root, cannot chown to uid {NOBODY}: skipped");
        return;
    }
    let name = Name::new("h17");
    drop(SharedRegion::create(&name.0, 7u64).unwrap());
    chown(&name.path(), NOBODY, NOBODY);
    let r = SharedRegion::<u64>::open(&name.0);
    assert!(r.is_err(), "a region owned by uid {NOBODY} was opened");
    let e = r.unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    assert!(
        matches!(
            e,
            RegionError::Untrusted {
                reason: UntrustedReason::OtherOwner,
                owner: NOBODY,
                euid: 0,
                ..
            }
        ),
        "{e:?}"
    );
    let r = SharedRegion::<u64>::create_or_open(&name.0, 0);
    assert!(
        r.is_err(),
        "create_or_open used a region owned by uid {NOBODY}"
    );
    // Deliberate opt-in: that user, or anyone.
    for trust in [RegionTrust::OwnerOrUid(NOBODY), RegionTrust::Anyone] {
        let r: SharedRegion<u64> = RegionOptions::new().trust(trust).open(&name.0).unwrap();
        assert_eq!(*r.lock().unwrap(), 7);
    }
    // Another uid named: still refused.
    let r = RegionOptions::new()
        .trust(RegionTrust::OwnerOrUid(NOBODY - 1))
        .open::<u64>(&name.0);
    assert!(matches!(r, Err(RegionError::Untrusted { .. })), "{r:?}");
}

#[test]
fn h17_group_policy_accepts_the_group_and_nobody_else() {
    if !is_root() {
        eprintln!("h17: not root, cannot chown to uid {NOBODY}: skipped");
        return;
    }
    let name = Name::new("h17-group");
    drop(SharedRegion::create(&name.0, 7u64).unwrap());
    std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o660)).unwrap();
    chown(&name.path(), NOBODY, NOBODY);
    let opts = RegionOptions::new().trust(RegionTrust::Group(NOBODY));
    assert_eq!(*opts.open::<u64>(&name.0).unwrap().lock().unwrap(), 7);
    let r = RegionOptions::new()
        .trust(RegionTrust::Group(NOBODY - 1))
        .open::<u64>(&name.0);
    assert!(
        matches!(
            r,
            Err(RegionError::Untrusted {
                reason: UntrustedReason::OtherOwner,
                ..
            })
        ),
        "{r:?}"
    );
    std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = opts.open::<u64>(&name.0);
    assert!(
        matches!(
            r,
            Err(RegionError::Untrusted {
                reason: UntrustedReason::OtherWritable,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn h18_region_writable_by_others_is_refused() {
    let name = Name::new("h18");
    drop(SharedRegion::create(&name.0, 7u64).unwrap());
    std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = SharedRegion::<u64>::open(&name.0);
    assert!(r.is_err(), "a region writable by others was opened");
    let e = r.unwrap_err();
    assert!(e.to_string().contains("writable by others"), "{e}");
    assert!(matches!(
        e,
        RegionError::Untrusted {
            reason: UntrustedReason::OtherWritable,
            ..
        }
    ));
    std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o620)).unwrap();
    let r = SharedRegion::<u64>::open(&name.0);
    assert!(
        matches!(
            r,
            Err(RegionError::Untrusted {
                reason: UntrustedReason::GroupWritable,
                ..
            })
        ),
        "{r:?}"
    );
    // A mode the policy refuses is refused at creation too.
    let other = Name::new("h18-create");
    // SAFETY: umask has no preconditions (this test binary's only use).
    let old = unsafe { libc::umask(0) };
    let r = RegionOptions::new().mode(0o666).create(&other.0, 0u64);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    assert!(matches!(r, Err(RegionError::Untrusted { .. })), "{r:?}");
    assert!(!other.path().exists(), "a refused region was left behind");
}

/// A symlink or a FIFO planted under the name is never followed or
/// blocked on.
#[test]
fn h18_symlinks_and_fifos_under_the_name_are_refused() {
    let name = Name::new("h18-link");
    let target = Name::new("h18-target");
    drop(SharedRegion::create(&target.0, 1u64).unwrap());
    std::os::unix::fs::symlink(target.path(), name.path()).unwrap();
    assert!(SharedRegion::<u64>::open(&name.0).is_err());
    std::fs::remove_file(name.path()).unwrap();
    let c = CString::new(name.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path valid for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = SharedRegion::<u64>::open(&name.0);
    assert!(r.is_err(), "{r:?}");
}

/// H20: a file truncated after opening is an error from `read`/`write_at`,
/// never a SIGBUS; the lock word's page stays as long as the file is not
/// empty.
#[test]
fn h20_truncated_region_read_and_write_are_errors_not_sigbus() {
    let name = Name::new("h20");
    let region = SharedRegion::create(&name.0, [5u64; 2048]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    f.set_len(4096).unwrap();
    assert!(matches!(
        region.check_len(),
        Err(RegionError::Truncated { len: 4096, .. })
    ));
    let mut g = region.lock().unwrap();
    let r = region.read(&g);
    assert!(
        matches!(r, Err(RegionError::Truncated { len: 4096, .. })),
        "{:?}",
        r.map(|_| ())
    );
    let r = region.write_at(&mut g, 8000, &[1; 8]);
    assert!(matches!(r, Err(RegionError::Truncated { .. })), "{r:?}");
    drop(g);
    // Opening it now: too small, read with pread.
    let r = SharedRegion::<[u64; 2048]>::open(&name.0);
    assert!(
        matches!(r, Err(RegionError::TooSmall { len: 4096, .. })),
        "{r:?}"
    );
    // Regrown: readable again (zeros where it was cut).
    f.set_len(region.fd().map(|_| 128 + 64 + 8 * 2048).unwrap())
        .unwrap();
    let g = region.lock().unwrap();
    let data = region.read(&g).unwrap();
    assert_eq!(data[0], 5);
    assert_eq!(data[2047], 0);
    // A guard of another mutex is refused.
    let other = SharedRegion::anonymous([0u64; 2048]).unwrap();
    let og = other.lock().unwrap();
    assert!(region.read(&og).is_err());
}
