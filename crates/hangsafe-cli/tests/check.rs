//! End-to-end tests of `hangsafe check`: they run the real binary against
//! targets the tests make themselves (a FIFO without a writer, a TCP
//! listener whose accept queue is full, a closed port, a unix socket, a
//! FUSE mount whose daemon never answers, ...) and look at the exit status,
//! the table or JSON, and how long the command took.
//!
//! Timing: where a test expects `up` or `down`, the `--timeout` is long
//! (a loaded machine cannot turn an answer into a timeout); where it
//! expects `timeout`, the `--timeout` is short, and only a generous upper
//! bound on the wall time is asserted.

use serde_json::Value;
use std::ffi::CString;
use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Slack on top of the timeout for process start-up, scheduling, the
/// cancelled-or-abandoned grace period and exit, on a loaded machine.
const MARGIN: Duration = Duration::from_secs(5);

/// A long timeout, for targets expected to answer.
const LONG: &str = "30s";

/// The result of one run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The stdout parsed as the `--json` array, every element checked for
    /// the documented shape.
    fn json(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr));
        let a = v.as_array().expect("a JSON array").clone();
        for o in &a {
            assert_shape(o);
        }
        a
    }

    /// The JSON object for `target`.
    fn row(&self, target: &str) -> Value {
        self.json()
            .into_iter()
            .find(|o| o["target"] == target)
            .unwrap_or_else(|| panic!("no row for {target}:\n{}", self.stdout))
    }
}

/// Exactly the keys target, kind, state, latency_ms, detail, with their
/// types; latency_ms is null exactly for a timeout.
fn assert_shape(o: &Value) {
    let obj = o.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["detail", "kind", "latency_ms", "state", "target"],
        "{o}"
    );
    assert!(o["target"].is_string(), "{o}");
    assert!(
        ["path", "block", "tur", "tcp", "unix"].contains(&o["kind"].as_str().unwrap()),
        "{o}"
    );
    assert!(o["detail"].is_string(), "{o}");
    match o["state"].as_str() {
        Some("up" | "down") => assert!(o["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{o}"),
        Some("timeout") => assert!(o["latency_ms"].is_null(), "{o}"),
        _ => panic!("bad state: {o}"),
    }
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangsafe"));
    c.args(args)
        .env_remove("NO_COLOR")
        .env_remove("HANGSAFE_CANCEL_SIGNAL");
    c
}

/// Runs `cmd` and checks that it did not outlive `bound`.
fn run_cmd(mut cmd: Command, bound: Duration) -> Run {
    let start = Instant::now();
    let out = cmd.output().expect("cannot run the hangsafe binary");
    let run = Run {
        code: out.status.code().expect("hangsafe was killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is not UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is not UTF-8"),
        took: start.elapsed(),
    };
    assert!(
        run.took < bound,
        "{cmd:?} took {:?} (bound {bound:?})\nstdout:\n{}\nstderr:\n{}",
        run.took,
        run.stdout,
        run.stderr
    );
    run
}

/// `hangsafe check ARGS`, bounded by `timeout` + [`MARGIN`].
fn check(args: &[&str], timeout: Duration) -> Run {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    run_cmd(command(&all), timeout + MARGIN)
}

/// A fresh directory for one test, removed when dropped. Under the
/// system temp dir, so unix socket paths stay short.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hangsafe-check-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        // SAFETY: `c` is a NUL-terminated path.
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {p:?}"
    );
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---- up and down -------------------------------------------------------------

#[test]
fn a_regular_file_and_a_directory_are_up() {
    let dir = Scratch::new();
    let file = dir.path("file");
    std::fs::write(&file, vec![7u8; 10_000]).unwrap();
    let run = check(&["--json", "-t", LONG, s(&file), s(&dir.0)], secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json().len(), 2);
    let f = run.row(s(&file));
    assert_eq!(
        (f["kind"].as_str(), f["state"].as_str()),
        (Some("path"), Some("up"))
    );
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("file on ") && detail.contains("read 4096 B"),
        "{detail}"
    );
    let d = run.row(s(&dir.0));
    assert_eq!(d["state"], "up");
    let detail = d["detail"].as_str().unwrap();
    // ".", ".." and "file".
    assert!(
        detail.starts_with("directory on ") && detail.ends_with("read 3 entries"),
        "{detail}"
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // The table: header and one row per target, in order.
    let run = check(&["-t", LONG, s(&file), s(&dir.0)], secs(30));
    assert_eq!(run.code, 0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TARGET", "KIND", "STATE", "LATENCY", "DETAIL"]
    );
    assert!(lines[1].starts_with(s(&file)), "{}", run.stdout);
    assert_eq!(lines[1].split_whitespace().nth(2), Some("up"));
    assert!(lines[2].starts_with(s(&dir.0)), "{}", run.stdout);
    assert_eq!(lines.len(), 3);
    assert!(!run.stdout.contains('\x1b'), "no colour on a pipe");
}

#[test]
fn a_missing_path_is_down() {
    let dir = Scratch::new();
    let missing = dir.path("missing/nope");
    let run = check(&["--json", "-t", LONG, s(&missing)], secs(30));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(s(&missing));
    assert_eq!(r["state"], "down");
    assert_eq!(r["kind"], "path");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("No such file or directory"),
        "{r}"
    );
}

#[test]
fn a_closed_loopback_port_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = format!("tcp://127.0.0.1:{port}");
    let run = check(&["--json", "-t", LONG, &target], secs(30));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(&target);
    assert_eq!(
        (r["kind"].as_str(), r["state"].as_str()),
        (Some("tcp"), Some("down"))
    );
    assert!(r["detail"].as_str().unwrap().contains("refused"), "{r}");
}

#[test]
fn a_listening_tcp_port_is_up() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://127.0.0.1:{}", l.local_addr().unwrap().port());
    let run = check(&["--json", "-t", LONG, &target], secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(&target);
    assert_eq!(r["state"], "up");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .starts_with("connected to 127.0.0.1:"),
        "{r}"
    );
}

#[test]
fn a_unix_socket_is_up_with_a_listener_and_down_without() {
    let dir = Scratch::new();
    let live = dir.path("live.sock");
    let dead = dir.path("dead.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap()); // the file stays
    let (live_t, dead_t) = (format!("unix:{}", s(&live)), format!("unix:{}", s(&dead)));
    let run = check(&["--json", "-t", LONG, &live_t, &dead_t], secs(30));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let up = run.row(&live_t);
    assert_eq!(
        (up["kind"].as_str(), up["state"].as_str()),
        (Some("unix"), Some("up"))
    );
    let down = run.row(&dead_t);
    assert_eq!(down["state"], "down");
    assert!(
        down["detail"].as_str().unwrap().contains("refused"),
        "{down}"
    );
}

// ---- hangs -------------------------------------------------------------------

#[test]
fn a_fifo_without_a_writer_times_out_and_its_probe_is_cancelled() {
    let dir = Scratch::new();
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let run = check(&["--json", "-t", "1s", s(&fifo)], secs(1));
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(s(&fifo));
    assert_eq!(
        (r["kind"].as_str(), r["state"].as_str()),
        (Some("path"), Some("timeout"))
    );
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("no answer within 1s; in open for "),
        "{detail}"
    );
    // The blocked open is a cancellation point: the thread came back.
    assert!(
        detail.ends_with("cancelled, thread back in the pool"),
        "{detail}"
    );
    assert!(run.took >= Duration::from_millis(900), "{:?}", run.took);
    assert!(
        run.stderr.contains("uninterruptible sleep (D state)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("process waits"), "{}", run.stderr);
}

#[test]
fn a_fifo_with_a_writer_is_up() {
    let dir = Scratch::new();
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    // A writer that opens without blocking needs a reader: keep one (RDWR).
    let _keep = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let run = check(&["--json", "-t", LONG, s(&fifo)], secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(s(&fifo));
    assert!(r["detail"].as_str().unwrap().starts_with("fifo on "), "{r}");
}

/// A TCP listener (backlog 0) whose accept queue the test fills with
/// connections it never accepts: the kernel then drops new SYNs, and a
/// connect hangs in SYN_SENT. Returns the listener, the filler sockets
/// (kept open) and the port, or why the kernel does not behave so.
fn full_backlog_listener() -> Result<(OwnedFd, Vec<OwnedFd>, u16), String> {
    // SAFETY: plain socket calls with valid arguments; results checked.
    let lfd = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: all-zero bytes are a valid sockaddr_in.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_in of `len` bytes, written back by
    // getsockname.
    unsafe {
        let p = (&mut addr as *mut libc::sockaddr_in).cast::<libc::sockaddr>();
        assert_eq!(libc::bind(lfd.as_raw_fd(), p, len), 0);
        assert_eq!(libc::listen(lfd.as_raw_fd(), 0), 0);
        assert_eq!(libc::getsockname(lfd.as_raw_fd(), p, &mut len), 0);
    }
    let port = u16::from_be(addr.sin_port);
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
            Ok(stream) => fillers.push(OwnedFd::from(stream)),
            // This connect hangs: the queue is full. Confirm once more.
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return match std::net::TcpStream::connect_timeout(
                    &target,
                    Duration::from_millis(500),
                ) {
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok((lfd, fillers, port)),
                    Ok(_) => Err("a connect completed after one had hung".into()),
                    Err(e) => Err(format!("a connect failed instead of hanging: {e}")),
                };
            }
            Err(e) => return Err(format!("a connect failed instead of hanging: {e}")),
        }
    }
    Err("64 connects to a backlog-0 listener all completed (SYNs are not dropped here)".into())
}

#[test]
fn a_tcp_listener_with_a_full_backlog_times_out() {
    let (_listener, _fillers, port) = match full_backlog_listener() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("skipped: cannot make a hanging TCP listener on this kernel: {why}");
            return;
        }
    };
    let target = format!("tcp://127.0.0.1:{port}");
    let run = check(&["--json", "-t", "1s", &target], secs(1));
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(&target);
    assert_eq!(
        (r["kind"].as_str(), r["state"].as_str()),
        (Some("tcp"), Some("timeout"))
    );
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("in connect for"), "{detail}");
    // The wait for the connect is a cancellable poll.
    assert!(
        detail.ends_with("cancelled, thread back in the pool"),
        "{detail}"
    );
}

#[test]
fn concurrency_one_with_several_hung_targets_still_returns_on_time() {
    let dir = Scratch::new();
    let fifos: Vec<PathBuf> = (0..4).map(|i| dir.path(&format!("fifo{i}"))).collect();
    for f in &fifos {
        mkfifo(f);
    }
    let mut args = vec!["--json", "-t", "1s", "--concurrency", "1"];
    args.extend(fifos.iter().map(|f| s(f)));
    let run = check(&args, secs(1));
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let rows = run.json();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r["state"] == "timeout"),
        "{}",
        run.stdout
    );
    assert!(
        rows[0]["detail"].as_str().unwrap().contains("in open"),
        "{}",
        run.stdout
    );
    for r in &rows[1..] {
        assert!(
            r["detail"].as_str().unwrap().starts_with("never started"),
            "{r}"
        );
    }
    assert!(run.stderr.contains("3 never started"), "{}", run.stderr);
}

#[test]
fn many_hung_targets_do_not_add_up() {
    let dir = Scratch::new();
    let fifos: Vec<PathBuf> = (0..40).map(|i| dir.path(&format!("fifo{i}"))).collect();
    for f in &fifos {
        mkfifo(f);
    }
    let file = dir.path("file");
    std::fs::write(&file, b"x").unwrap();
    let mut args = vec!["--json", "-t", "1s", "-j", "64", s(&file)];
    args.extend(fifos.iter().map(|f| s(f)));
    let run = check(&args, secs(1));
    assert_eq!(run.code, 2);
    let rows = run.json();
    assert_eq!(rows.len(), 41);
    assert_eq!(rows.iter().filter(|r| r["state"] == "timeout").count(), 40);
}

/// A FUSE mount whose daemon never answers: the hangsafe child itself
/// mounts it, in a private mount namespace of its own (made between fork
/// and exec), on a descriptor of `/dev/fuse` that the test holds and never
/// reads. Nothing outside the child sees the mount, and it disappears with
/// the child; closing the descriptor afterwards ends the connection.
///
/// The probe hangs in `stat`, a plain call that cannot be interrupted (the
/// kernel waits for the daemon's reply killably): its thread is abandoned,
/// and the command still returns on time; exiting kills the waiting thread.
///
/// Needs root and a usable `/dev/fuse`; otherwise the test says why it
/// skipped.
#[test]
fn a_fuse_mount_that_never_answers_times_out() {
    use std::os::unix::process::CommandExt as _;

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting FUSE needs root");
        return;
    }
    let dir = Scratch::new();
    let mnt = dir.path("hung");
    std::fs::create_dir(&mnt).unwrap();
    let c_mnt = CString::new(mnt.as_os_str().as_bytes()).unwrap();
    // A /dev/fuse descriptor serves one mount only: one per run.
    let open_fuse = || -> std::io::Result<(OwnedFd, CString)> {
        let fd = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/fuse")?,
        );
        let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", fd.as_raw_fd());
        Ok((fd, CString::new(opts).unwrap()))
    };

    // Can this machine mount FUSE in a private namespace at all? Try in a
    // throw-away child, so that a failure is a skip, not a test failure.
    let tried = open_fuse().and_then(|(fd, opts)| {
        let mut c = Command::new("/bin/true");
        let m = c_mnt.clone();
        // SAFETY: the closure only makes async-signal-safe syscalls on
        // strings prepared before the fork.
        unsafe { c.pre_exec(move || private_fuse_mount(&m, &opts)) };
        let st = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        drop(fd);
        st
    });
    match tried {
        Ok(st) if st.success() => {}
        Ok(_) => {
            eprintln!("skipped: cannot mount FUSE in a private mount namespace here");
            return;
        }
        Err(e) => {
            eprintln!("skipped: /dev/fuse is not usable here: {e}");
            return;
        }
    }

    let (fuse, opts) = open_fuse().unwrap();
    let mut cmd = command(&["check", "--json", "-t", "2s", s(&mnt), s(&dir.0)]);
    let m = c_mnt.clone();
    // SAFETY: as above.
    unsafe { cmd.pre_exec(move || private_fuse_mount(&m, &opts)) };
    let run = run_cmd(cmd, secs(2) + MARGIN);
    drop(fuse); // ends the connection (the mount went with the child)

    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let r = run.row(s(&mnt));
    assert_eq!(r["state"], "timeout", "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("in stat for"), "{detail}");
    assert!(
        detail.ends_with("abandoned: its thread is stuck in the kernel"),
        "{detail}"
    );
    assert_eq!(run.row(s(&dir.0))["state"], "up");
    assert!(run.stderr.contains("(1 here)"), "{}", run.stderr);
}

/// In a forked child: a private mount namespace, and the FUSE mount.
fn private_fuse_mount(mnt: &CString, opts: &CString) -> std::io::Result<()> {
    // SAFETY: plain syscalls on valid NUL-terminated strings; they affect
    // only the calling (child) process.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let private = libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if private != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let rc = libc::mount(
            c"hangsafe-test".as_ptr(),
            mnt.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        );
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---- defaults, options, usage --------------------------------------------------

/// The fstype of each mount point, from mountinfo (the last mount wins).
fn mounts() -> Vec<(String, String)> {
    let mut text = String::new();
    std::fs::File::open("/proc/self/mountinfo")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-").unwrap();
        let (point, fstype) = (f[4].replace("\\040", " "), f[sep + 1].to_owned());
        match out.iter_mut().find(|(p, _)| *p == point) {
            Some(e) => e.1 = fstype,
            None => out.push((point, fstype)),
        }
    }
    out
}

#[test]
fn no_argument_probes_the_real_mount_points_on_time() {
    let run = check(&["--json", "-t", "2s"], secs(2));
    assert!(
        [0, 1, 2].contains(&run.code),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    if run.code != 0 {
        eprintln!("note: not every mount point is up here:\n{}", run.stdout);
    }
    let rows = run.json();
    let targets: Vec<&str> = rows.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert!(targets.contains(&"/"), "{targets:?}");
    for (point, fstype) in mounts() {
        let pseudo = [
            "proc",
            "sysfs",
            "cgroup",
            "cgroup2",
            "devpts",
            "mqueue",
            "tracefs",
            "debugfs",
            "securityfs",
            "bpf",
            "autofs",
        ]
        .contains(&fstype.as_str());
        if pseudo {
            assert!(
                !targets.contains(&point.as_str()),
                "{point} ({fstype}) not skipped"
            );
        }
    }

    // --all includes them.
    let run = check(&["--json", "--all", "-t", "2s"], secs(2));
    let all: Vec<String> = run
        .json()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_owned())
        .collect();
    assert!(all.len() >= rows.len());
    if mounts().iter().any(|(p, t)| p == "/proc" && t == "proc") {
        assert!(all.iter().any(|t| t == "/proc"), "{all:?}");
    }

    // And the table form.
    let run = check(&["-t", "2s"], secs(2));
    assert!(run.stdout.starts_with("TARGET "), "{}", run.stdout);
}

#[test]
fn colour_follows_the_option() {
    let dir = Scratch::new();
    let run = check(&["--color", "always", "-t", LONG, s(&dir.0)], secs(30));
    assert!(run.stdout.contains("\x1b[32mup\x1b[0m"), "{}", run.stdout);
    // Not a terminal: auto does not colour; NO_COLOR does not override
    // an explicit choice.
    let run = check(&["--color", "auto", "-t", LONG, s(&dir.0)], secs(30));
    assert!(!run.stdout.contains('\x1b'), "{}", run.stdout);
    let mut c = command(&["check", "--color", "always", "-t", LONG, s(&dir.0)]);
    c.env("NO_COLOR", "1");
    let run = run_cmd(c, secs(30) + MARGIN);
    assert!(run.stdout.contains('\x1b'), "{}", run.stdout);
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["check", "tcp://nohost"][..],
        &["check", "tcp://h:0"],
        &["check", ""],
        &["check", "unix:"],
        &["check", "--timeout", "0"],
        &["check", "--timeout", "soon"],
        &["check", "--concurrency", "0"],
        &["check", "--color", "sometimes"],
        &["check", "--bogus"],
    ] {
        let run = run_cmd(command(args), MARGIN);
        assert_eq!(run.code, 64, "{args:?}\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn help_documents_kinds_exit_codes_and_abandoned_threads() {
    let run = run_cmd(command(&["check", "--help"]), MARGIN);
    assert_eq!(run.code, 0);
    // Lines are wrapped: compare with blanks collapsed.
    let text = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--timeout",
        "--json",
        "--concurrency",
        "--all",
        "--color",
        "NO_COLOR",
        "tcp://HOST:PORT",
        "unix:PATH",
        "tur:DEV",
        "block:DEV",
        "directio",
        "never started",
        "D state",
        "exit of the hangsafe process waits",
        "Exit status",
        "64",
        "66",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{}", run.stdout);
    }
}
