//! The HTTP side of `serve`, on `tiny_http`: routes, worker threads, and
//! the limits that keep a slow or hostile client from stalling scrapes.
//!
//! * `tiny_http` reads each connection's requests on a thread of its own
//!   and queues them; [`WORKERS`] threads take them from the queue and
//!   answer from the latest snapshot, so a scrape never waits for a probe.
//! * The listening socket gets `SO_RCVTIMEO` and `SO_SNDTIMEO`
//!   ([`IO_TIMEOUT`]), which accepted sockets inherit: a client that
//!   sends its request slowly, or never reads its answer, ties up one
//!   thread for that long at most.
//! * `/probe` requests wait for a probe, so they are answered on a thread
//!   of their own, at most [`ondemand::MAX_IN_FLIGHT`] at a time (more are
//!   refused with 503 at once); the workers stay free for `/metrics`.
//! * Only `GET` and `HEAD` are served; any request body is ignored.

use super::ondemand::{self, OnDemand};
use super::{page, State};
use crate::exposition;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};

/// Threads answering requests from the queue.
pub(crate) const WORKERS: usize = 4;

/// How long a read or write on a client's socket may block.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The loop's latest state.
    pub state: Arc<State>,
    /// The on-demand prober.
    pub ondemand: OnDemand,
    /// Also emit node_exporter's filesystem names.
    pub node_compat: bool,
}

/// Binds `addr` (with the socket timeouts) and starts the workers.
/// Returns the address actually bound (port 0 picks a free one).
pub(crate) fn start(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    set_timeouts(&listener)?;
    let bound = listener.local_addr()?;
    let server = Arc::new(Server::from_listener(listener, None).map_err(io::Error::other)?);
    for i in 0..WORKERS {
        let server = Arc::clone(&server);
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("hangsafe-http-{i}"))
            .spawn(move || worker(&server, &shared))?;
    }
    Ok(bound)
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO` of [`IO_TIMEOUT`] on `l` (inherited by
/// the sockets it accepts).
fn set_timeouts(l: &TcpListener) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: IO_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a valid timeval that outlives the call, and its
        // size is passed; the fd is the listener's, open.
        let rc = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn worker(server: &Server, shared: &Arc<Shared>) {
    loop {
        match server.recv() {
            Ok(req) => handle(req, shared),
            Err(e) => {
                log::error!("hangsafe serve: http: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this module.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn text(status: u16, body: String, content_type: &str) -> Response<io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
}

fn respond(req: Request, resp: Response<io::Cursor<Vec<u8>>>) {
    // A client gone or too slow: nothing to do.
    let _ = req.respond(resp);
}

/// Routes one request.
fn handle(req: Request, shared: &Arc<Shared>) {
    if !matches!(req.method(), Method::Get | Method::Head) {
        let r = text(
            405,
            "only GET and HEAD\n".into(),
            "text/plain; charset=utf-8",
        )
        .with_header(header("Allow", "GET, HEAD"));
        return respond(req, r);
    }
    let url = req.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    match path {
        "/metrics" => {
            let om = wants_openmetrics(&req);
            respond(req, metrics(shared, om));
        }
        "/" => {
            let body = page::render(&shared.state.latest(), Instant::now());
            respond(req, text(200, body, "text/html; charset=utf-8"));
        }
        "/probe" => probe(req, query, shared),
        _ => respond(
            req,
            text(
                404,
                "not found; try /, /metrics or /probe?target=T\n".into(),
                "text/plain; charset=utf-8",
            ),
        ),
    }
}

/// Whether the client's `Accept` asks for OpenMetrics.
fn wants_openmetrics(req: &Request) -> bool {
    req.headers().iter().any(|h| {
        h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
    })
}

/// `GET /metrics`.
fn metrics(shared: &Shared, openmetrics: bool) -> Response<io::Cursor<Vec<u8>>> {
    let snap = shared.state.latest();
    let opts = exposition::Options {
        node_compat: shared.node_compat,
        ondemand: Some((shared.ondemand.started(), shared.ondemand.metrics())),
    };
    let now = Instant::now();
    if openmetrics {
        text(
            200,
            exposition::openmetrics(&snap, now, opts),
            exposition::OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        text(
            200,
            exposition::text(&snap, now, opts),
            exposition::TEXT_CONTENT_TYPE,
        )
    }
}

/// `GET /probe`: validated here, run on a thread of its own.
fn probe(req: Request, query: &str, shared: &Arc<Shared>) {
    let parsed = shared.ondemand.parse(query);
    let r = match parsed {
        Ok(r) => r,
        Err(e) => return refuse(req, &e),
    };
    let claim = match shared.ondemand.claim() {
        Ok(c) => c,
        Err(e) => return refuse(req, &e),
    };
    let shared2 = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("hangsafe-http-probe".into())
        .spawn(move || match shared2.ondemand.run(&r, &claim) {
            Ok(body) => respond(req, text(200, body, exposition::TEXT_CONTENT_TYPE)),
            Err(e) => refuse(req, &e),
        });
    if let Err(e) = spawned {
        log::error!("hangsafe serve: cannot start a /probe thread: {e}");
    }
}

fn refuse(req: Request, e: &ondemand::ProbeError) {
    let r = text(e.status(), format!("{e}\n"), "text/plain; charset=utf-8");
    respond(req, r);
}
