//! The HTTP side of `serve`, on `hyper` (HTTP/1.1) over a current-thread
//! `tokio` runtime on a thread of its own: routes, and the limits that
//! keep a slow or hostile client from stalling scrapes.
//!
//! * Every connection is a task, not a thread: a client that sends its
//!   request slowly, or never reads its answer, costs a little memory and
//!   blocks nobody. The request head must arrive within [`IO_TIMEOUT`]
//!   (hyper's header read timeout), and a connection lives at most
//!   [`CONN_LIFETIME`]. At most [`MAX_CONNECTIONS`] are open at a time;
//!   more are closed at once.
//! * `/metrics` and `/` are rendered from the latest snapshot (never a
//!   probe), in well under a millisecond per target.
//! * `/probe` waits for a probe, so it runs on the runtime's blocking
//!   threads, at most [`ondemand::MAX_IN_FLIGHT`] at a time (more are
//!   refused with 503 at once); the runtime stays free for `/metrics`.
//! * Only `GET` and `HEAD` are served; a request body is ignored.
//!
//! `tiny_http` was the first choice (smaller build) and was dropped: its
//! connection pool queues a burst of new connections behind the ones
//! already read by its threads, so a handful of stalled clients delayed
//! scrapes by the full socket timeout (hazard H86 in docs/races.md).

use super::ondemand::{self, OnDemand};
use super::{page, State};
use crate::exposition;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a client may take to send a request's head.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection stays open (a client that never reads its
/// answer is cut off then).
pub(crate) const CONN_LIFETIME: Duration = Duration::from_secs(120);

/// Connections open at a time, at most.
pub(crate) const MAX_CONNECTIONS: usize = 256;

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

/// Binds `addr` and starts the server thread. Returns the address
/// actually bound (port 0 picks a free one).
pub(crate) fn start(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .thread_name("hangsafe-http")
        .max_blocking_threads(ondemand::MAX_IN_FLIGHT + 2)
        .build()?;
    // Registered with the runtime here, so an error is reported now.
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    std::thread::Builder::new()
        .name("hangsafe-http".into())
        .spawn(move || rt.block_on(accept_loop(listener, shared)))?;
    Ok(bound)
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                log::error!("hangsafe serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(req, &shared).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IO_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONN_LIFETIME, conn).await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: u16, body: String, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Routes one request.
async fn handle(req: Request<Incoming>, shared: &Arc<Shared>) -> Resp {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            405,
            "only GET and HEAD\n".into(),
            "text/plain; charset=utf-8",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    match req.uri().path() {
        "/metrics" => metrics(shared, wants_openmetrics(&req)),
        "/" => text(
            200,
            page::render(&shared.state.latest(), Instant::now()),
            "text/html; charset=utf-8",
        ),
        "/probe" => probe(&query, shared).await,
        _ => text(
            404,
            "not found; try /, /metrics or /probe?target=T\n".into(),
            "text/plain; charset=utf-8",
        ),
    }
}

/// Whether the client's `Accept` asks for OpenMetrics.
fn wants_openmetrics(req: &Request<Incoming>) -> bool {
    req.headers().get_all(ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.contains("application/openmetrics-text"))
    })
}

/// `GET /metrics`.
fn metrics(shared: &Shared, openmetrics: bool) -> Resp {
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

/// `GET /probe`: validated here, the probe waited for on a blocking
/// thread.
async fn probe(query: &str, shared: &Arc<Shared>) -> Resp {
    let r = match shared.ondemand.parse(query) {
        Ok(r) => r,
        Err(e) => return refuse(&e),
    };
    let claim = match shared.ondemand.claim() {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    let shared = Arc::clone(shared);
    let done = tokio::task::spawn_blocking(move || shared.ondemand.run(&r, &claim)).await;
    match done {
        Ok(Ok(body)) => text(200, body, exposition::TEXT_CONTENT_TYPE),
        Ok(Err(e)) => refuse(&e),
        Err(e) => text(
            500,
            format!("the probe's thread failed: {e}\n"),
            "text/plain; charset=utf-8",
        ),
    }
}

fn refuse(e: &ondemand::ProbeError) -> Resp {
    text(e.status(), format!("{e}\n"), "text/plain; charset=utf-8")
}
