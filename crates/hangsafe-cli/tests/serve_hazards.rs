//! Hazards of `serve`, `watch --textfile` and the config file (docs/races.md):
//! hostile query strings, slow clients, HTML and label injection through
//! target names, textfile path races, config reload races.

mod serve_support;

use serve_support::{enc, get, sample, scrape_until, signal, start, temp_dir, tool};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(20);

fn mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

// ---- H83: HTML injection through a target's name ------------------------------

#[test]
fn h83_a_target_name_with_markup_is_escaped_on_the_status_page() {
    let d = temp_dir("h83");
    let evil = d.join("<img src=x onerror=alert(1)>");
    std::fs::create_dir(&evil).unwrap();
    let spec = evil.to_string_lossy().into_owned();
    let s = start(&["--interval", "200ms", &spec], None, &[]);
    let page = get(s.addr, "/").body;
    assert!(!page.contains("<img"), "raw markup on the page:\n{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
}

// ---- H84: hostile /probe query strings ----------------------------------------

#[test]
fn h84_hostile_probe_queries_are_loud_400s_and_durations_saturate() {
    let d = temp_dir("h84");
    let spec = d.to_string_lossy().into_owned();
    let s = start(&["--interval", "1h", &spec], None, &[]);
    let t = enc(&spec);
    let long = format!("target={t}&x={}", "a".repeat(5000));
    let cases: Vec<(String, u16, &str)> = vec![
        ("".into(), 400, "missing query parameter \"target\""),
        ("target=%zz".into(), 400, "malformed percent-escape"),
        ("target=%ff".into(), 400, "not UTF-8"),
        (format!("target={t}&target={t}"), 400, "more than once"),
        (
            format!("target={t}&bogus=1"),
            400,
            "unknown query parameter",
        ),
        (format!("target={t}&timeout=-1s"), 400, "timeout"),
        (format!("target={t}&timeout=NaN"), 400, "timeout"),
        (format!("target={t}&timeout=0s"), 400, "zero"),
        ("target=db:5432".into(), 400, "tcp://db:5432"),
        ("target=http://x".into(), 400, "unknown scheme"),
        ("target=%2Fetc%2Fshadow".into(), 403, "not served"),
        (long, 400, "longer than"),
        // Saturated to the longest allowed timeout, not refused.
        (
            format!("target={t}&timeout=99999999999999999999d"),
            200,
            "probe_success 1",
        ),
        (format!("target={t}&timeout=9000h"), 200, "probe_success 1"),
    ];
    for (q, status, says) in &cases {
        let a = get(s.addr, &format!("/probe?{q}"));
        assert_eq!(a.status, *status, "/probe?{q}: {}", a.body);
        assert!(
            a.body.contains(says),
            "/probe?{q}: {:?} lacks {says:?}",
            a.body
        );
    }
    assert_eq!(get(s.addr, "/metrics").status, 200);
}

// ---- H85: /probe requests must not starve scrapes -----------------------------

#[test]
fn h85_waiting_probe_requests_leave_scrapes_fast_and_excess_is_refused() {
    let d = temp_dir("h85");
    let fifos: Vec<String> = (0..16)
        .map(|i| {
            let p = d.join(format!("fifo{i}"));
            mkfifo(&p);
            p.to_string_lossy().into_owned()
        })
        .collect();
    let s = start(&["--interval", "1h", "--probe-any", "/"], None, &[]);
    let addr = s.addr;
    let waiting: Vec<_> = fifos
        .iter()
        .map(|f| {
            let q = format!("/probe?target={}&timeout=3s", enc(f));
            std::thread::spawn(move || get(addr, &q))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..10 {
        let a = get(s.addr, "/metrics");
        assert!(
            a.took < Duration::from_millis(100),
            "scrape {i} took {:?} while /probe waits",
            a.took
        );
    }
    let answers: Vec<_> = waiting.into_iter().map(|h| h.join().unwrap()).collect();
    let refused = answers.iter().filter(|a| a.status == 503).count();
    let probed = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(refused + probed, 16, "{answers:?}");
    assert!(
        refused >= 8,
        "{refused} refused: more waiting requests than allowed"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status == 503)
            .all(|a| a.took < Duration::from_secs(1)),
        "a refusal waited"
    );
}

// ---- H86: slow clients ---------------------------------------------------------

#[test]
fn h86_a_client_that_stalls_mid_request_is_cut_off_and_scrapes_go_on() {
    let s = start(&["--interval", "1h", "/"], None, &[]);
    let stalled: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            c.write_all(b"GET /metr").unwrap();
            c
        })
        .collect();
    for _ in 0..5 {
        let a = get(s.addr, "/metrics");
        assert!(
            a.took < Duration::from_millis(100),
            "scrape took {:?}",
            a.took
        );
    }
    // The server drops each stalled connection after its I/O timeout.
    let t = Instant::now();
    for mut c in stalled {
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf);
        assert!(
            n.is_ok()
                || n.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "stalled connection still open after {:?}: {n:?}",
            t.elapsed()
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "took {:?}",
        t.elapsed()
    );
}

// ---- H87: textfile path races ----------------------------------------------------

fn watch_textfile(path: &std::path::Path, target: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .args(["watch", "--count", "1", "--textfile"])
        .arg(path)
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn h87_a_symlink_planted_at_the_textfile_or_its_temp_name_is_not_followed() {
    let d = temp_dir("h87");
    let victim = d.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let path = d.join("hangsafe.prom");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    // The names a naive writer would use for its temporary file.
    for tmp in [
        ".hangsafe.prom.tmp",
        "hangsafe.prom.tmp",
        "hangsafe.prom.new",
    ] {
        std::os::unix::fs::symlink(&victim, d.join(tmp)).unwrap();
    }
    let o = watch_textfile(&path, "/");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let md = std::fs::symlink_metadata(&path).unwrap();
    assert!(md.file_type().is_file(), "{md:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("hangsafe_probe_success{target=\"/\",kind=\"path\"} 1"),
        "{text}"
    );
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp") && n.contains('.') && n.matches('.').count() > 3)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn h87_a_textfile_in_a_world_writable_non_sticky_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = temp_dir("h87-open");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = watch_textfile(&d.join("x.prom"), "/");
    assert_eq!(
        o.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("writable by every user"));
    let o = watch_textfile(&temp_dir("h87-name").join("x.txt"), "/");
    assert_eq!(o.status.code(), Some(64));
}

// ---- H88: config reload races ----------------------------------------------------

#[test]
fn h88_a_bad_config_on_sighup_keeps_the_running_one() {
    let d = temp_dir("h88");
    let a = d.join("a");
    let b = d.join("b");
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let cfg = d.join("hangsafe.toml");
    let (a, b) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    );
    std::fs::write(
        &cfg,
        format!("interval = \"200ms\"\n[[target]]\ntarget = \"{a}\"\n"),
    )
    .unwrap();
    let s = start(&["--config", cfg.to_str().unwrap()], None, &[]);
    let ok_a = format!("hangsafe_probe_success{{target=\"{a}\",kind=\"path\"}}");
    let ok_b = format!("hangsafe_probe_success{{target=\"{b}\",kind=\"path\"}}");
    scrape_until(&s, SETTLE, |m| sample(m, &ok_a) == Some(1.0));

    // A half-written file (as an editor saving in place leaves it).
    std::fs::write(&cfg, "interval = \"200ms\"\n[[target]]\ntarget = ").unwrap();
    signal(&s, libc::SIGHUP);
    let t = Instant::now();
    while !s
        .stderr
        .lock()
        .unwrap()
        .contains("keeping the running configuration")
    {
        assert!(t.elapsed() < SETTLE, "{}", s.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = s.stderr.lock().unwrap().clone();
    assert!(err.contains("line 3, column"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    let m = get(s.addr, "/metrics").body;
    assert_eq!(sample(&m, &ok_a), Some(1.0), "{m}");

    std::fs::write(
        &cfg,
        format!("interval = \"200ms\"\n[[target]]\ntarget = \"{b}\"\n"),
    )
    .unwrap();
    signal(&s, libc::SIGHUP);
    let m = scrape_until(&s, SETTLE, |m| sample(m, &ok_b) == Some(1.0));
    assert_eq!(sample(&m, &ok_b), Some(1.0), "{m}");
    assert_eq!(sample(&m, &ok_a), None, "{m}");
}

#[test]
fn h88_a_bad_config_at_start_is_a_usage_error_with_line_and_column() {
    let d = temp_dir("h88-start");
    let cfg = d.join("bad.toml");
    std::fs::write(
        &cfg,
        "interval = \"5s\"\n[[target]]\ntarget = \"/\"\ntimout = \"1s\"\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hangsafe"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("line 4, column 1") && err.contains("timout"),
        "{err}"
    );
}

// ---- H89: label injection through a target's name ----------------------------------

#[test]
fn h89_quotes_backslashes_and_newlines_in_a_target_name_stay_inside_the_label() {
    let d = temp_dir("h89");
    let evil = d.join("a\"b\\c\nhangsafe_probe_success{target=\"x\"} 1");
    std::fs::create_dir(&evil).unwrap();
    let spec = evil.to_string_lossy().into_owned();
    let s = start(&["--interval", "200ms", &spec], None, &[]);
    let m = scrape_until(&s, SETTLE, |m| m.contains("a\\\"b\\\\c\\nhangsafe"));
    assert!(!m.contains("{target=\"x\"} 1"), "{m}");
    assert!(
        m.lines().all(|l| l.starts_with('#')
            || l.starts_with("hangsafe_")
            || l.starts_with("node_")
            || l.is_empty()),
        "{m}"
    );
    if tool("promtool", "prometheus") {
        let mut p = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
        let o = p.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

// ---- H90: two targets on one filesystem ------------------------------------------------

#[test]
fn h90_two_targets_on_one_filesystem_give_one_set_of_filesystem_series() {
    let d = temp_dir("h90");
    let f = d.join("file");
    std::fs::write(&f, "x").unwrap();
    let (d, f) = (
        d.to_string_lossy().into_owned(),
        f.to_string_lossy().into_owned(),
    );
    let s = start(&["--interval", "200ms", &d, &f], None, &[]);
    let m = scrape_until(&s, SETTLE, |m| {
        m.contains("hangsafe_filesystem_size_bytes{") && !m.contains("state=\"pending\"} 1")
    });
    let sizes = m
        .lines()
        .filter(|l| l.starts_with("hangsafe_filesystem_size_bytes{"))
        .count();
    assert_eq!(sizes, 1, "{m}");
}
