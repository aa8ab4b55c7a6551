//! What the project ships around the binary: the systemd unit
//! (`contrib/hangsafe.service`), checked with `systemd-analyze verify` and
//! its offline security score, and the `.deb`'s assets
//! (`[package.metadata.deb]`), which must all exist. `systemd-analyze` is
//! mandatory where `CI` is set (the systemd package); elsewhere a missing
//! one is a skip with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit() -> String {
    std::fs::read_to_string(root().join("contrib/hangsafe.service")).expect("the unit")
}

/// `systemd-analyze`, or `None` (with the reason printed) where absent
/// outside CI.
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is required under CI (apt install systemd)"
        );
        eprintln!("skipped: no systemd-analyze (apt install systemd)");
        return None;
    }
    Some("systemd-analyze")
}

/// The unit with its ExecStart pointing at the binary under test (verify
/// checks that the program exists), in a fresh directory.
fn unit_for_test() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hangsafe-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hangsafe.service");
    let text = unit().replace("/usr/bin/hangsafe", env!("CARGO_BIN_EXE_hangsafe"));
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn the_unit_says_what_the_service_needs() {
    let u = unit();
    let has = |line: &str| u.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "ExecStart=/usr/bin/hangsafe serve --config /etc/hangsafe/hangsafe.toml",
        "ProtectSystem=strict",
        // Not yes or tmpfs: mounts under /home must stay visible.
        "ProtectHome=read-only",
        // Not PrivateTmp= (or DynamicUser=, which implies it): mounts
        // under /tmp must stay visible.
        "PrivateTmp=no",
        "PrivateDevices=no",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(has(line), "missing: {line}");
    }
    assert!(
        u.lines().any(|l| l.starts_with("WatchdogSec=")),
        "WatchdogSec"
    );
    assert!(
        !u.contains("\nDynamicUser="),
        "DynamicUser implies PrivateTmp"
    );
    // Every setting is explained: a comment precedes each group.
    assert!(u.matches("\n# ").count() >= 15);
}

#[test]
fn the_unit_verifies_and_scores_ok() {
    let Some(sa) = systemd_analyze() else {
        return;
    };
    let (dir, path) = unit_for_test();
    // --man=no: the man pages named in Documentation= are installed by the
    // .deb, not here.
    let out = Command::new(sa)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(
        !stderr.contains("hangsafe.service"),
        "verify complained:\n{stderr}"
    );
    // The offline security score (systemd 252 and later); older versions
    // lack --offline and are skipped.
    let out = Command::new(sa)
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find_map(|l| {
        l.split("Overall exposure level for hangsafe.service: ")
            .nth(1)
    }) {
        Some(rest) => {
            let score: f64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            eprintln!("systemd-analyze security: exposure {score}");
            assert!(score <= 3.0, "exposure {score}:\n{text}");
        }
        None => eprintln!(
            "skipped the score: systemd-analyze security --offline not supported here\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_deb_asset_exists() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deb = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("[package.metadata.deb]");
    let assets = deb
        .split("assets = [")
        .nth(1)
        .unwrap()
        .split("\n]")
        .next()
        .unwrap();
    let sources: Vec<&str> = assets
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[\"")?.split('"').next())
        .collect();
    assert!(sources.len() >= 7, "{sources:?}");
    for src in sources {
        // Built by cargo (the binary) or by `hangsafe man` before cargo deb.
        if src.starts_with("target/") || src.contains("/target/") {
            continue;
        }
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
        assert!(p.exists(), "asset {src} missing ({p:?})");
    }
    assert!(deb.contains("conf-files = [\"/etc/hangsafe/hangsafe.toml\"]"));
    assert!(deb.contains("\"lib/systemd/system/hangsafe.service\""));
    assert!(deb.contains("\"usr/share/man/man1/\""));
}
