//! `cargo bench -p hangsafe-capi --bench c_set [-- PATHS [SECONDS [REPS [TICKS_US]]]]`:
//! the C checker-loop benchmark, `benches/c/set_bench.c`, built with `-O2`
//! against the release `libhangsafe.a` and run once.
//!
//! It compares, in one process and with the same C probe function, a
//! checker loop on one runner set (`hs_set_*`: one `poll()` on the set's
//! fd, respawning from the drain callback) with one `get_runner()` per path
//! checked by `check_runner()` on every tick (multipathd's design), at
//! several ticks: probes per second and CPU time per probe (`getrusage`),
//! the medians and their ratios, and the CPU model. Not a test: timings
//! are printed, never asserted.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;

fn main() {
    // `cargo bench` passes `--bench`; anything else is for set_bench.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let lib = support::library("libhangsafe.a");
    let exe = support::out_path("set_bench");
    let out = Command::new("cc")
        .current_dir(support::manifest_dir())
        .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-std=c11"])
        .args([
            "-D_GNU_SOURCE",
            "-I",
            "include",
            "benches/c/set_bench.c",
            "-o",
        ])
        .arg(&exe)
        .arg(&lib)
        .args(support::STATIC_DEPS)
        .output()
        .expect("cannot run cc");
    support::show("cc", &out);
    assert!(
        out.status.success(),
        "compiling benches/c/set_bench.c failed"
    );
    let status = Command::new(&exe)
        .args(&args)
        .status()
        .expect("cannot run set_bench");
    assert!(status.success(), "set_bench failed ({status})");
}
