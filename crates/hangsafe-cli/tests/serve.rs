//! `hangsafe serve`, the real binary: scrapes answer at once while targets
//! hang (a FIFO with no writer, a closed TCP port, and where /dev/fuse is
//! usable a FUSE mount that never answers, made in the server's own mount
//! namespace), the exposition passes `promtool check metrics`, `/probe`
//! starts no second thread for a hung target, and SIGTERM ends it at once.

mod serve_support;

use serve_support::{
    fuse_usable, get, sample, scrape_until, signal, start, temp_dir, threads, tool, Fuse,
};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a scrape may take (the bound).
const SCRAPE_LIMIT: Duration = Duration::from_millis(100);

/// A generous bound for states to settle on a loaded machine.
const SETTLE: Duration = Duration::from_secs(20);

/// The FUSE mount for this test, or `None` with the reason printed.
fn fuse(name: &str) -> Option<Fuse> {
    match fuse_usable() {
        Ok(()) => Some(Fuse {
            point: temp_dir(name),
        }),
        Err(why) => {
            println!("note: no hung FUSE mount in this run: {why}");
            None
        }
    }
}

/// A directory with a file and a FIFO (no writer).
fn fixtures(name: &str) -> (String, String, String) {
    let d = temp_dir(name);
    let file = d.join("file");
    std::fs::write(&file, b"hello").unwrap();
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    (
        d.to_string_lossy().into_owned(),
        file.to_string_lossy().into_owned(),
        fifo.to_string_lossy().into_owned(),
    )
}

/// A TCP port nobody listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("tcp://127.0.0.1:{port}")
}

fn success(target: &str, kind: &str) -> String {
    format!("hangsafe_probe_success{{target=\"{target}\",kind=\"{kind}\"}}")
}

#[test]
fn scrapes_answer_at_once_while_targets_hang_and_promtool_agrees() {
    let (dir, file, fifo) = fixtures("scrapes");
    let tcp = closed_port();
    let fuse = fuse("scrapes-fuse");
    let fuse_spec = fuse
        .as_ref()
        .map(|f| f.point.to_string_lossy().into_owned());
    let mut args = vec![
        "--interval",
        "300ms",
        "--timeout",
        "500ms",
        "--node-compat",
        &dir,
        &file,
        &fifo,
        &tcp,
    ];
    if let Some(f) = &fuse_spec {
        args.push(f);
    }
    let s = start(&args, fuse.as_ref(), &[]);

    // 20 scrapes, the first right after the listening line, while the
    // FIFO's and the FUSE mount's probes hang.
    let mut worst = Duration::ZERO;
    let mut took = Vec::new();
    for i in 0..20 {
        let a = get(s.addr, "/metrics");
        assert_eq!(a.status, 200, "scrape {i}: {}", a.head);
        took.push(a.took);
        worst = worst.max(a.took);
        assert!(
            a.took < SCRAPE_LIMIT,
            "scrape {i} took {:?} (all: {took:?})",
            a.took
        );
        if i == 0 {
            assert!(
                a.body.contains("state=\"pending\"} 1"),
                "first scrape:\n{}",
                a.body
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("20 scrapes: worst {worst:?}, all {took:?}");

    let body = scrape_until(&s, SETTLE, |b| {
        sample(b, &success(&fifo, "path")).is_some()
            && b.contains(&format!(
                "target=\"{fifo}\",kind=\"path\",state=\"timeout\"}} 1"
            ))
            && sample(b, &success(&tcp, "tcp")) == Some(0.0)
            && fuse_spec.as_ref().is_none_or(|f| {
                b.contains(&format!(
                    "hangsafe_probe_phase_info{{target=\"{f}\",kind=\"path\",phase=\"stat\"}} 1"
                ))
            })
    });
    assert_eq!(sample(&body, &success(&dir, "path")), Some(1.0), "{body}");
    assert_eq!(sample(&body, &success(&file, "path")), Some(1.0), "{body}");
    assert_eq!(sample(&body, &success(&fifo, "path")), Some(0.0), "{body}");
    assert_eq!(sample(&body, &success(&tcp, "tcp")), Some(0.0), "{body}");
    assert!(
        body.contains("hangsafe_filesystem_size_bytes{device="),
        "{body}"
    );
    if let Some(f) = &fuse_spec {
        let phase =
            format!("hangsafe_probe_phase_info{{target=\"{f}\",kind=\"path\",phase=\"stat\"}}");
        assert_eq!(sample(&body, &phase), Some(1.0), "{body}");
    }
    assert!(
        body.contains("node_filesystem_avail_bytes{device="),
        "{body}"
    );
    if let Some(f) = &fuse_spec {
        let hung = format!("hangsafe_probe_hung_seconds{{target=\"{f}\",kind=\"path\"}}");
        let body = scrape_until(&s, SETTLE, |b| sample(b, &hung).is_some_and(|v| v > 0.0));
        assert!(sample(&body, &hung).is_some_and(|v| v > 0.0), "{body}");
        assert_eq!(sample(&body, &success(f, "path")), Some(0.0), "{body}");
        let err = format!(
            "hangsafe_filesystem_device_error{{device=\"hangsafe-test\",fstype=\"fuse\",mountpoint=\"{f}\"}}"
        );
        assert_eq!(sample(&body, &err), Some(1.0), "{body}");
        // Still fast with the mount hung for a while.
        let a = get(s.addr, "/metrics");
        assert!(a.took < SCRAPE_LIMIT, "{:?}", a.took);
    }

    if tool("promtool", "prometheus") {
        let mut p = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let o = p.wait_with_output().unwrap();
        let findings = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && findings.trim().is_empty(),
            "promtool: {findings}\n{body}"
        );
    }
}

#[test]
fn openmetrics_is_served_to_who_asks() {
    let s = start(&["/"], None, &[]);
    let a = serve_support::get_with(
        s.addr,
        "/metrics",
        "Accept: application/openmetrics-text; version=1.0.0\r\n",
        Duration::from_secs(10),
    );
    assert!(
        a.head.contains("application/openmetrics-text"),
        "{}",
        a.head
    );
    assert!(a.body.ends_with("# EOF\n"), "{}", a.body);
    let a = get(s.addr, "/metrics");
    assert!(a.head.contains("text/plain; version=0.0.4"), "{}", a.head);
    assert!(!a.body.contains("# EOF"), "{}", a.body);
}

#[test]
fn probe_twice_for_a_hung_target_starts_one_probe_and_threads_stay_bounded() {
    let Some(f) = fuse("probe-fuse") else {
        println!("skipped: needs a hung FUSE mount");
        return;
    };
    let spec = f.point.to_string_lossy().into_owned();
    // A long interval: the loop probes the mount once; /probe has its own
    // pool, keyed by target.
    let s = start(
        &["--interval", "1h", "--timeout", "300ms", &spec],
        Some(&f),
        &[],
    );
    // 2 s: a second request that started a probe would take that long.
    let q = format!("/probe?target={}&timeout=2s", serve_support::enc(&spec));
    let a = get(s.addr, &q);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(sample(&a.body, "probe_success"), Some(0.0), "{}", a.body);
    // An unprefixed path is stat'ed first (block device or not): that is
    // where the FUSE mount hangs it.
    assert!(
        a.body
            .contains("hangsafe_probe_phase_info{phase=\"stat\"} 1"),
        "{}",
        a.body
    );
    let t = Instant::now();
    let b = get(s.addr, &q);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "second /probe took {:?}",
        t.elapsed()
    );
    assert_eq!(sample(&b.body, "probe_success"), Some(0.0), "{}", b.body);
    assert!(b.body.contains("phase=\"stat\""), "{}", b.body);
    let m = get(s.addr, "/metrics").body;
    assert_eq!(
        sample(&m, "hangsafe_ondemand_probes_started_total"),
        Some(1.0),
        "{m}"
    );

    let before = threads(s.child.id());
    for i in 0..200 {
        let a = get(s.addr, &q);
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
    }
    let after = threads(s.child.id());
    println!("threads before 200 /probe: {before}, after: {after}");
    // Unbounded, it would be 200 more; the pools' helper threads (timers,
    // an idle blocking thread) may come and go.
    assert!(after <= before + 8, "threads grew from {before} to {after}");
    let m = get(s.addr, "/metrics").body;
    assert_eq!(
        sample(&m, "hangsafe_ondemand_probes_started_total"),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn sigterm_ends_it_within_a_second_even_with_hung_probes() {
    let (_, _, fifo) = fixtures("sigterm");
    let f = fuse("sigterm-fuse");
    let spec = f.as_ref().map(|f| f.point.to_string_lossy().into_owned());
    let mut args = vec!["--interval", "200ms", "--timeout", "5s", fifo.as_str()];
    if let Some(p) = &spec {
        args.push(p);
    }
    let mut s = start(&args, f.as_ref(), &[]);
    // Probes in flight (the FIFO's) and, with FUSE, one that hangs.
    std::thread::sleep(Duration::from_millis(700));
    if let Some(p) = &spec {
        let q = format!("/probe?target={}&timeout=200ms", serve_support::enc(p));
        assert_eq!(get(s.addr, &q).status, 200);
    }
    let t = Instant::now();
    signal(&s, libc::SIGTERM);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running after 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t.elapsed();
    println!("SIGTERM to exit: {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn status_page_lists_targets_with_states() {
    let (dir, _, _) = fixtures("page");
    let tcp = closed_port();
    let s = start(&["--interval", "200ms", &dir, &tcp], None, &[]);
    let _ = scrape_until(&s, SETTLE, |b| {
        serve_support::decided(b, &tcp, "tcp") && serve_support::decided(b, &dir, "path")
    });
    let a = get(s.addr, "/");
    assert_eq!(a.status, 200);
    assert!(a.head.contains("text/html"), "{}", a.head);
    assert!(
        a.body.contains(&format!("<td class=\"target\">{dir}</td>")),
        "{}",
        a.body
    );
    assert!(a.body.contains("data-state=\"down\""), "{}", a.body);
    assert_eq!(get(s.addr, "/nope").status, 404);
}

#[test]
fn systemd_gets_ready_then_watchdog_pings_then_stopping() {
    use std::os::unix::net::UnixDatagram;
    let d = temp_dir("notify");
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut s = start(
        &["--interval", "1h", "/"],
        None,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut got: Vec<String> = Vec::new();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while t.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready = got.iter().position(|m| m.lines().any(|l| l == "READY=1"));
    let pings = got
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert_eq!(ready, Some(0), "{got:?}");
    // 400 ms watchdog: pinged every 100 ms; generous lower bound.
    assert!(pings >= 5, "{pings} pings in 3 s: {got:?}");
    assert!(
        got.iter().any(|m| m.contains("STATUS=1 of 1 targets up")),
        "{got:?}"
    );
    signal(&s, libc::SIGTERM);
    let _ = s.child.wait();
    let mut rest = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
}

/// The watchdog pings come from the loop, so they stop while the loop is
/// wedged: here a SIGHUP whose config file now sits on a hung FUSE mount
/// (through a symbolic link) holds the loop for the file read's deadline
/// (5 s). Scrapes still answer meanwhile, and the pings resume after.
#[test]
fn h91_watchdog_pings_stop_while_the_loop_is_wedged_and_resume() {
    use std::os::unix::net::UnixDatagram;
    let Some(f) = fuse("wedge-fuse") else {
        println!("skipped: needs a hung FUSE mount");
        return;
    };
    let d = temp_dir("wedge");
    let real = d.join("real.toml");
    std::fs::write(&real, "[[target]]\ntarget = \"/\"\n").unwrap();
    let cfg = d.join("hangsafe.toml");
    std::os::unix::fs::symlink(&real, &cfg).unwrap();
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let s = start(
        &["--interval", "1h", "--config", cfg.to_str().unwrap()],
        Some(&f),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut buf = [0u8; 4096];
    // Pings, and when each came.
    let mut pings: Vec<Instant> = Vec::new();
    let mut listen = |pings: &mut Vec<Instant>, d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d {
            if let Ok(n) = sock.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "WATCHDOG=1")
                {
                    pings.push(Instant::now());
                }
            }
        }
    };
    listen(&mut pings, Duration::from_secs(1));
    assert!(pings.len() >= 3, "{} pings before the wedge", pings.len());
    // The config now points into the hung mount.
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink(f.point.join("hangsafe.toml"), &cfg).unwrap();
    let hup = Instant::now();
    signal(&s, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let scrape = get(s.addr, "/metrics");
    assert!(
        scrape.took < SCRAPE_LIMIT,
        "scrape during the wedge took {:?}",
        scrape.took
    );
    listen(&mut pings, Duration::from_secs(8));
    let during = pings
        .iter()
        .filter(|t| **t > hup + Duration::from_millis(300) && **t < hup + Duration::from_secs(4))
        .count();
    let after = pings
        .iter()
        .filter(|t| **t > hup + Duration::from_secs(6))
        .count();
    println!("pings while wedged: {during}, in the 2 s after: {after}");
    assert_eq!(during, 0, "the loop pinged while wedged");
    assert!(after >= 3, "the pings did not resume");
    let err = s.stderr.lock().unwrap().clone();
    assert!(err.contains("keeping the running configuration"), "{err}");
}
