//! A real Prometheus server (Debian's `prometheus`) scrapes `hangsafe
//! serve` every second for a few seconds while targets hang; its HTTP
//! query API then shows that every scrape succeeded (`up` was 1 each
//! time: `sum_over_time(up) == count_over_time(up)`) and that
//! `hangsafe_probe_success` has the expected value per target. Skipped
//! without `prometheus`, except on CI.

mod serve_support;

use serve_support::{enc, fuse_usable, get, sample, scrape_until, start, temp_dir, tool, Fuse};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many scrapes (one a second) Prometheus makes before the checks.
const SCRAPES: f64 = 6.0;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The result vector of an instant query, as (labels, value).
fn query(prom: std::net::SocketAddr, q: &str) -> Vec<(serde_json::Value, f64)> {
    let a = get(prom, &format!("/api/v1/query?query={}", enc(q)));
    assert_eq!(a.status, 200, "{q}: {}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|r| {
            let val = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].clone(), val)
        })
        .collect()
}

#[test]
fn prometheus_scrapes_every_second_while_targets_hang() {
    if !tool("prometheus", "prometheus") {
        return;
    }
    let d = temp_dir("prom");
    let dir = d.join("dir");
    std::fs::create_dir(&dir).unwrap();
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = format!("tcp://127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    let fuse = fuse_usable().ok().map(|()| Fuse {
        point: temp_dir("prom-fuse"),
    });
    let (dir, fifo) = (
        dir.to_string_lossy().into_owned(),
        fifo.to_string_lossy().into_owned(),
    );
    let fuse_spec = fuse
        .as_ref()
        .map(|f| f.point.to_string_lossy().into_owned());
    let mut args = vec![
        "--interval",
        "500ms",
        "--timeout",
        "300ms",
        &dir,
        &fifo,
        &tcp,
    ];
    if let Some(f) = &fuse_spec {
        args.push(f);
    }
    let s = start(&args, fuse.as_ref(), &[]);
    let fifo_ok = format!("hangsafe_probe_success{{target=\"{fifo}\",kind=\"path\"}}");
    scrape_until(&s, Duration::from_secs(20), |m| {
        sample(m, &fifo_ok).is_some()
            && serve_support::decided(m, &fifo, "path")
            && serve_support::decided(m, &dir, "path")
            && serve_support::decided(m, &tcp, "tcp")
    });

    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let prom_addr = l.local_addr().unwrap();
    drop(l);
    let cfg = d.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
             scrape_configs:\n  - job_name: hangsafe\n    static_configs:\n      - targets: ['{}']\n",
            s.addr
        ),
    )
    .unwrap();
    let prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let t = Instant::now();
    while get_ready(prom_addr).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "prometheus not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Prometheus starts its scrape loop a few seconds after it is ready:
    // wait for SCRAPES scrapes (at most a minute).
    let count_q = "count_over_time(up{job=\"hangsafe\"}[5m])";
    let t = Instant::now();
    let count = loop {
        let n = query(prom_addr, count_q).first().map_or(0.0, |r| r.1);
        if n >= SCRAPES || t.elapsed() > Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // One expression, so both sides are taken at the same instant.
    let failed = query(
        prom_addr,
        "count_over_time(up{job=\"hangsafe\"}[5m]) - sum_over_time(up{job=\"hangsafe\"}[5m])",
    )[0]
    .1;
    println!("prometheus: {count} scrapes, {failed} of them with up != 1");
    assert!(count >= SCRAPES, "only {count} scrapes in a minute");
    assert_eq!(failed, 0.0, "a scrape failed");
    let duration = query(
        prom_addr,
        "max_over_time(scrape_duration_seconds{job=\"hangsafe\"}[5m])",
    );
    println!("prometheus: longest scrape {}s", duration[0].1);
    assert!(duration[0].1 < 0.1, "{duration:?}");

    let by_target: Vec<(String, f64)> = query(prom_addr, "hangsafe_probe_success")
        .into_iter()
        .map(|(m, v)| (m["target"].as_str().unwrap().to_owned(), v))
        .collect();
    let of = |t: &str| by_target.iter().find(|(n, _)| n == t).map(|(_, v)| *v);
    assert_eq!(of(&dir), Some(1.0), "{by_target:?}");
    assert_eq!(of(&fifo), Some(0.0), "{by_target:?}");
    assert_eq!(of(&tcp), Some(0.0), "{by_target:?}");
    if let Some(f) = &fuse_spec {
        assert_eq!(of(f), Some(0.0), "{by_target:?}");
        let hung = query(prom_addr, "hangsafe_probe_hung_seconds > 0");
        assert!(
            hung.iter().any(|(m, _)| m["target"] == f.as_str()),
            "{hung:?}"
        );
    }
    drop(prom);
}

fn get_ready(addr: std::net::SocketAddr) -> Option<()> {
    let c = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    drop(c);
    (get(addr, "/-/ready").status == 200).then_some(())
}
