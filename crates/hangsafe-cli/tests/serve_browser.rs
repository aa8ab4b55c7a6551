//! The status page of `hangsafe serve` in a real browser: headless
//! Chromium (Debian's `chromium`) loads `GET /` while a probe hangs, its
//! rendered DOM is checked (states, colours, the hung probe's phase, a
//! target name with markup shown as text), and a screenshot is saved
//! under the target directory (its path is printed). Skipped without
//! Chromium, except on CI.

mod serve_support;

use serve_support::{fuse_usable, get, sample, scrape_until, start, temp_dir, tool, Fuse};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take to render one page.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Runs chromium headless with `extra` flags on `url`, killed after
/// [`BROWSER_LIMIT`].
fn chromium(extra: &[&str], url: &str) -> Output {
    let profile = temp_dir("chromium-profile");
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,500",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start chromium");
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    o
}

#[test]
fn status_page_renders_in_headless_chromium_with_a_screenshot() {
    if !tool("chromium", "chromium") {
        return;
    }
    let d = temp_dir("browser");
    let evil = d.join("<b id=injected>bold");
    std::fs::create_dir(&evil).unwrap();
    let evil = evil.to_string_lossy().into_owned();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = format!("tcp://127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    let fuse = match fuse_usable() {
        Ok(()) => Some(Fuse {
            point: temp_dir("browser-fuse"),
        }),
        Err(why) => {
            println!("note: no hung FUSE mount in this run: {why}");
            None
        }
    };
    let fuse_spec = fuse
        .as_ref()
        .map(|f| f.point.to_string_lossy().into_owned());
    let mut args = vec!["--interval", "300ms", "--timeout", "300ms", &evil, &tcp];
    if let Some(f) = &fuse_spec {
        args.push(f);
    }
    let s = start(&args, fuse.as_ref(), &[]);
    let tcp_ok = format!("hangsafe_probe_success{{target=\"{tcp}\",kind=\"tcp\"}}");
    scrape_until(&s, Duration::from_secs(20), |m| {
        sample(m, &tcp_ok).is_some()
            && serve_support::decided(m, &tcp, "tcp")
            && serve_support::decided(m, &evil, "path")
            && fuse_spec
                .as_ref()
                .is_none_or(|f| m.contains(&format!("hangsafe_probe_phase_info{{target=\"{f}\"")))
    });
    assert_eq!(get(s.addr, "/").status, 200);
    let url = format!("http://{}/", s.addr);

    let o = chromium(&["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        dom.contains("<table id=\"targets\">"),
        "no table in the DOM ({:?}); stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    // The markup in the name is text, not an element.
    assert!(dom.contains("&lt;b id=injected&gt;bold"), "{dom}");
    assert!(!dom.contains("<b id=\"injected\">"), "{dom}");
    assert!(dom.contains("data-state=\"up\""), "{dom}");
    assert!(dom.contains("data-state=\"down\""), "{dom}");
    assert!(dom.contains("background:#c62828"), "{dom}");
    if fuse_spec.is_some() {
        assert!(dom.contains("data-state=\"timeout\""), "{dom}");
        assert!(dom.contains("class=\"hung\""), "{dom}");
        assert!(dom.contains(" in stat"), "{dom}");
    }

    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-status-page.png");
    let _ = std::fs::remove_file(&shot);
    let o = chromium(&[&format!("--screenshot={}", shot.display())], &url);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 1000,
        "no screenshot ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    println!("status page screenshot: {}", shot.display());
}
