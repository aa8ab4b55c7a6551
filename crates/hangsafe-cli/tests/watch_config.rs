//! `watch --config FILE --textfile PATH`: the config file's per-target
//! timeout and labels reach the probes and the exposition, exclusions
//! apply to the mount points, and a bad file is a usage error with its
//! line and column.

use std::process::{Command, Output, Stdio};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hangsafe-watch-config-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn watch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn per_target_timeout_and_labels_reach_the_probe_and_the_textfile() {
    let d = temp_dir("labels");
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "timeout = \"20s\"\n[[target]]\ntarget = \"{}\"\ntimeout = \"200ms\"\n\
             labels = {{ team = \"storage\" }}\n[[target]]\ntarget = \"/\"\n",
            fifo.display()
        ),
    )
    .unwrap();
    let prom = d.join("out.prom");
    let o = watch(&[
        "--count",
        "1",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--textfile",
        prom.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    // The FIFO's own 200 ms, not the file's 20 s default.
    assert!(out.contains("no answer within 200ms"), "{out}");
    let text = std::fs::read_to_string(&prom).unwrap();
    let fifo = fifo.display();
    assert!(
        text.contains(&format!(
            "hangsafe_probe_success{{target=\"{fifo}\",kind=\"path\",team=\"storage\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains("hangsafe_probe_success{target=\"/\",kind=\"path\"} 1"),
        "{text}"
    );
}

#[test]
fn mounts_from_the_file_honour_the_exclusions() {
    let d = temp_dir("mounts");
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        "timeout = \"5s\"\nmounts = true\nmount_points_exclude = \"^/.+\"\n",
    )
    .unwrap();
    let o = watch(&["--count", "1", "--json", "--config", cfg.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    let start = out.lines().next().unwrap_or("");
    assert!(start.contains("\"targets\":[\"/\"]"), "{start}");
}

#[test]
fn a_bad_file_is_a_usage_error_with_line_and_column() {
    let d = temp_dir("bad");
    let cfg = d.join("c.toml");
    std::fs::write(&cfg, "[[target]]\ntarget = \"db:5432\"\n").unwrap();
    let o = watch(&["--count", "1", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("line 2, column 10") && err.contains("tcp://db:5432"),
        "{err}"
    );
}
