//! What the `serve` integration tests share: starting the real binary on
//! a free port (read from its "listening on" line), a minimal HTTP/1.1
//! client over a raw socket (timed), a never-answering FUSE mount made in
//! the child's own mount namespace, and the external-tool rule (skip
//! with a reason locally, fail when `CI` is set).

#![allow(dead_code, unreachable_pub)]

use std::ffi::CString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `hangsafe serve`.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it wrote to stderr after the "listening" line (collected by
    /// a thread).
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a never-answering FUSE mount is made in the child (its own
/// mount namespace): the mount point.
#[derive(Clone, Debug)]
pub struct Fuse {
    pub point: PathBuf,
}

/// A fresh temporary directory for test `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("hangsafe-serve-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `hangsafe serve --listen 127.0.0.1:0 ARGS`, with a hung FUSE
/// mount at `fuse.point` (inside its own mount namespace) if given, and
/// waits for its "listening on" line.
pub fn start(args: &[&str], fuse: Option<&Fuse>, env: &[(&str, &str)]) -> Serve {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangsafe"));
    c.args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(f) = fuse {
        let point = CString::new(f.point.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the hook only makes raw system calls (no allocation: its
        // strings are made before the fork), as a pre_exec hook must.
        unsafe {
            c.pre_exec(move || hung_fuse_mount(&point));
        }
    }
    let mut child = c.spawn().expect("start hangsafe serve");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    let addr = loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("serve exited before listening; stderr:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line
            .trim()
            .strip_prefix("hangsafe serve: listening on http://")
        {
            break rest.trim_end_matches('/').parse().unwrap();
        }
    };
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let sink = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = String::new();
        while err.read_line(&mut buf).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&buf);
            buf.clear();
        }
    });
    Serve {
        child,
        addr,
        stderr,
    }
}

/// In the child, before exec: a private mount namespace and, at `point`,
/// a FUSE mount whose daemon never answers (the child itself holds the
/// /dev/fuse fd, as fd 100, and never reads it).
fn hung_fuse_mount(point: &CString) -> std::io::Result<()> {
    // SAFETY: raw system calls with valid NUL-terminated strings that
    // outlive the calls; nothing else runs in the forked child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(fd, 100) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fd);
        let opts = c"fd=100,rootmode=40000,user_id=0,group_id=0";
        if libc::mount(
            c"hangsafe-test".as_ptr(),
            point.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a hung FUSE mount can be made here (root, /dev/fuse, a mount
/// namespace); the reason if not.
pub fn fuse_usable() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("no /dev/fuse".into());
    }
    let d = temp_dir("fuse-probe");
    let point = CString::new(d.as_os_str().as_encoded_bytes()).unwrap();
    let mut c = Command::new("true");
    // SAFETY: as in `start`.
    unsafe {
        c.pre_exec(move || hung_fuse_mount(&point));
    }
    let r = c.status();
    let _ = std::fs::remove_dir(&d);
    match r {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("the probe child failed: {s}")),
        Err(e) => Err(format!("cannot mount FUSE in a mount namespace: {e}")),
    }
}

/// `s` percent-encoded for a query string (everything but unreserved
/// characters and `/`).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub took: Duration,
}

/// `GET path` (with extra header lines), timed from connect to the end of
/// the body; fails after `limit`.
pub fn get_with(addr: SocketAddr, path: &str, headers: &str, limit: Duration) -> Answer {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, limit).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let took = t.elapsed();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        head: head.to_owned(),
        body,
        took,
    }
}

/// `GET path`, 10 s at most.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    get_with(addr, path, "", Duration::from_secs(10))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the sample `name{labels}` (labels as written, in order)
/// in an exposition, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Whether target `target` of kind `kind` has a decided state (not
/// pending) in the exposition `text`.
pub fn decided(text: &str, target: &str, kind: &str) -> bool {
    sample(
        text,
        &format!("hangsafe_probe_state{{target=\"{target}\",kind=\"{kind}\",state=\"pending\"}}"),
    ) == Some(0.0)
}

/// Waits up to `limit` for `cond` on successive `/metrics` scrapes;
/// returns the last scrape.
pub fn scrape_until(s: &Serve, limit: Duration, cond: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let a = get(s.addr, "/metrics");
        if cond(&a.body) || t.elapsed() > limit {
            return a.body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `prog` is on PATH.
pub fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// The external-tool rule: `true` if `prog` can be used; `false` (with a
/// printed reason) if it is absent here; a failure when `CI` is set.
pub fn tool(prog: &str, package: &str) -> bool {
    if on_path(prog) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install {prog} (Debian package {package})"
    );
    println!(
        "skipped: {prog} is not on PATH (Debian package {package}; set CI to make this an error)"
    );
    false
}

/// The number of threads of process `pid`.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Sends `sig` to the child.
pub fn signal(s: &Serve, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(s.child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0);
}
