//! The libuv example (`examples/libuv_set.c`), compiled against the
//! freshly built `libhangsafe.a` and libuv (Debian's `libuv1-dev`) and
//! run: hung probes stall an unrelated `uv_fs_stat` when they run in
//! libuv's own thread pool, and do not when they run in a hangsafe runner
//! set driven by a `uv_poll_t` and a `uv_timer_t`. The program checks the
//! contrast itself and exits 0 only if it was observed.
//!
//! Skipped (with the reason printed) where libuv's headers or pkg-config
//! are missing, except on CI (`CI` set), where it fails instead.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

/// `pkg-config --cflags --libs libuv`, or `None` if libuv is not
/// installed for development.
fn libuv_flags() -> Option<Vec<String>> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libuv"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let flags = String::from_utf8(out.stdout).ok()?;
    Some(flags.split_whitespace().map(str::to_owned).collect())
}

#[test]
fn libuv_pool_stalls_behind_hung_probes_and_a_hangsafe_set_does_not() {
    let Some(uv) = libuv_flags() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install libuv1-dev and pkg-config"
        );
        println!("skipped: libuv is not installed (pkg-config libuv failed; set CI to make this an error)");
        return;
    };
    let lib = library("libhangsafe.a");
    let exe = out_path("libuv_set");
    let out = Command::new("cc")
        .current_dir(manifest_dir())
        .args(CFLAGS)
        .args(["-I", "include", "examples/libuv_set.c", "-o"])
        .arg(&exe)
        .arg(&lib)
        .args(&uv)
        .args(STATIC_DEPS)
        .output()
        .expect("cannot run cc");
    show("cc libuv_set.c", &out);
    assert!(
        out.status.success(),
        "compiling examples/libuv_set.c failed"
    );

    let (out, in_time) = output_within(Command::new(&exe), Duration::from_secs(120));
    show("libuv_set", &out);
    assert!(in_time, "libuv_set did not finish within 2 minutes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("contrast observed"),
        "libuv_set did not observe the contrast ({})",
        out.status
    );
}
