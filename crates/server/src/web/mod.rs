//! The web listener: one HTTP/1.1 stack (hyper, routes with axum) on HTTPS with the server's
//! certificate, or plain HTTP behind a reverse proxy. It serves the web client embedded from
//! `web/dist/` (`assets.rs`), the IRCv3 WebSocket at `/ws` (`ws.rs`, through `stream.rs` into
//! the same `conn::serve` as TCP), and `/healthz` and `/readyz` (`http.rs`, whose routes the
//! metrics listener serves too). Who the client is, which names we answer to over plain HTTP
//! ([`only_allowed_hosts`]) and which origins may open `/ws` is `peer.rs`. Every response
//! carries the security headers of [`security_headers`].
//!
//! Bounds: HTTP connections open at once ([`MAX_HTTP_CONNECTIONS`], and
//! [`MAX_HTTP_PER_SOURCE`] from one address or IPv6 /64, [`Places`]), the TLS handshake
//! (`limits.handshake_timeout`), a request head's time ([`HEAD_TIMEOUT`]) and size
//! ([`MAX_HEAD`]), the time a peer may take no byte of an answer (`limits.write_timeout`,
//! `stall.rs`), the kernel's send buffer (`limits.socket_send_buffer`, as on TCP), a
//! WebSocket message's size ([`MAX_MESSAGE`]); a WebSocket connection is then admitted per
//! address like any other (`limits.rs`) and its unregistered time, RecvQ and SendQ are
//! bounded by `conn::serve` as on TCP.

mod assets;
mod peer;
mod stall;
mod stream;
mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chinwag_core::subnet_of;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use peer::{check_host, client_of, Peer};
pub(crate) use peer::{host_name, normalize_origin};

use crate::config::{IpRange, WebSettings};
use crate::listen::Acceptor;

/// Time a client has to send a request's head, from the connection's start or the end of the
/// previous response (an idle keep-alive connection is closed after it).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read, in bytes (hyper's read buffer; a longer head is answered
/// with 431).
const MAX_HEAD: usize = 16 * 1024;
/// HTTP connections open at once over all web listeners, WebSockets not counted once upgraded
/// (they are admitted per address, `limits.rs`). Beyond it, new connections wait in the
/// kernel's queue.
const MAX_HTTP_CONNECTIONS: usize = 4096;
/// HTTP connections open at once from one address (an IPv6 /64 counts as one), so that one
/// source cannot take every place above and keep the web client from everyone else. A
/// browser opens at most six per server, and a WebSocket leaves its place once upgraded;
/// trusted proxies, which everyone behind them comes through, count only in the total.
/// Beyond it, a new connection is closed at once.
const MAX_HTTP_PER_SOURCE: usize = 64;
/// The largest WebSocket message read, decompressed, in bytes: a message longer than the line
/// limit (`limits.line_length`) but within this is skipped and answered with 417, as a long
/// line is on TCP; a longer one closes the connection (1009).
const MAX_MESSAGE: usize = 64 * 1024;
/// Time a client may take to send all the fragments of one message.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Compressors and decompressors kept for reuse between messages (see [`ws_options`]).
const DEFLATE_POOL: usize = 16;
/// Messages shorter than this are sent uncompressed: deflating them saves nothing.
const COMPRESS_ABOVE: usize = 128;
/// Time an HTTP connection gets to finish its response when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What the web routes share.
pub(crate) struct Web {
    /// Admission, ids, the hub's queue and the outbound queues: what a connection needs.
    pub acceptor: Acceptor,
    pub settings: WebSettings,
    /// The WebSocket settings every connection gets (limits, compression, the deflate pool).
    pub ws_options: yawc::Options,
}

/// How one listener serves HTTP.
#[derive(Clone)]
pub(crate) struct Listener {
    pub router: Router,
    /// TLS (HTTPS), or plain HTTP.
    pub tls: Option<TlsAcceptor>,
    pub handshake_timeout: Duration,
    /// The kernel's send buffer per connection (`limits.socket_send_buffer`): a WebSocket that
    /// stops reading must reach its SendQ, as on TCP, before the kernel holds megabytes for it.
    pub send_buffer: usize,
    /// A connection whose peer takes no byte of an answer for this long is closed
    /// (`limits.write_timeout`, `stall.rs`).
    pub write_timeout: Duration,
    /// Proxies whose forwarding headers are believed (for the security headers' scheme).
    pub trusted_proxies: Arc<[IpRange]>,
    /// Several requests per connection; the metrics listener closes after each, as its
    /// scrapers expect.
    pub keep_alive: bool,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Places for HTTP connections, shared by the web listeners.
    pub slots: Arc<Places>,
}

/// The places for HTTP connections: [`MAX_HTTP_CONNECTIONS`] in all, of which at most
/// [`MAX_HTTP_PER_SOURCE`] per source (an IPv4 address or an IPv6 /64), trusted proxies
/// excepted.
#[derive(Debug)]
pub(crate) struct Places {
    all: Arc<Semaphore>,
    by_source: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place; dropping it gives the place back.
struct Place {
    places: Arc<Places>,
    /// `None` for a trusted proxy, counted only in the total.
    source: Option<IpAddr>,
    _all: OwnedSemaphorePermit,
}

impl Places {
    fn sources(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The counts are whole after any panic (each change is one statement).
        self.by_source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a connection from `ip`, or `None` when its source holds its share.
    fn take(self: &Arc<Self>, all: OwnedSemaphorePermit, ip: IpAddr, trusted: &[IpRange]) -> Option<Place> {
        if trusted.iter().any(|range| range.contains(ip)) {
            return Some(Place { places: Arc::clone(self), source: None, _all: all });
        }
        let source = subnet_of(ip.to_canonical());
        let mut sources = self.sources();
        let open = sources.entry(source).or_default();
        if *open >= MAX_HTTP_PER_SOURCE {
            return None;
        }
        *open += 1;
        Some(Place { places: Arc::clone(self), source: Some(source), _all: all })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(source) = self.source else { return };
        let mut sources = self.places.sources();
        if let Some(open) = sources.get_mut(&source) {
            *open -= 1;
            if *open == 0 {
                sources.remove(&source);
            }
        }
    }
}

/// The web listener's routes: any method on a path of no route is the assets' (404, or 405
/// on a file), and every request first passes [`only_allowed_hosts`].
pub(crate) fn router(web: Arc<Web>, control: crate::Control) -> Router {
    Router::new()
        .route("/ws", get(ws::upgrade))
        .with_state(Arc::clone(&web))
        .merge(crate::http::health_routes(control))
        .fallback(assets::serve)
        .layer(axum::middleware::from_fn_with_state(web, only_allowed_hosts))
}

/// Answers a request only for a name this server answers to ([`check_host`]: over plain HTTP,
/// no name someone else could point here); otherwise says why, with 421 or 400.
async fn only_allowed_hosts(
    State(web): State<Arc<Web>>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response<axum::body::Body> {
    let Some(peer) = request.extensions().get::<Peer>().copied() else { return next.run(request).await };
    let client = client_of(request.headers(), peer, &web.settings.trusted_proxies);
    match check_host(request.headers(), request.version(), &client, &web.settings.allowed_hosts) {
        Ok(()) => next.run(request).await,
        Err((status, why)) => {
            tracing::debug!(ip = %client.ip, host = ?client.host, %status, "HTTP request refused for its host");
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why).into_response()
        }
    }
}

/// The places HTTP connections share.
pub(crate) fn slots() -> Arc<Places> {
    Arc::new(Places { all: Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS)), by_source: Mutex::default() })
}

/// WebSocket settings: bounded messages, UTF-8 checked in text messages, and when allowed,
/// permessage-deflate without context takeover in either direction, imposed even on clients
/// that did not ask: each message is compressed alone (docs/security.md says why), and a
/// connection holds no deflate state between messages (it takes one from a shared pool).
pub(crate) fn ws_options(settings: &WebSettings, line_len: usize) -> yawc::Options {
    let max = MAX_MESSAGE.max(2 * line_len);
    let options = yawc::Options::default()
        .with_limits(max, max)
        .with_utf8()
        .with_fragment_timeout(FRAGMENT_TIMEOUT)
        .with_read_buffer_capacity(1024)
        .with_write_buffer_capacity(1024);
    if !settings.compression {
        return options.without_compression();
    }
    options
        .with_low_latency_compression()
        .server_no_context_takeover()
        .client_no_context_takeover()
        .with_deflate_pool(yawc::DeflatePool::new(DEFLATE_POOL))
        .with_compression_threshold(COMPRESS_ABOVE)
}

impl Listener {
    /// Accepts connections until the server stops; each is served in a task of its own.
    pub async fn run(self, listener: TcpListener) {
        loop {
            let slot = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                slot = Arc::clone(&self.slots.all).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let Some((stream, addr)) = crate::listen::accept(&listener, &self.shutdown).await else { return };
            let Some(slot) = self.slots.take(slot, addr.ip(), &self.trusted_proxies) else {
                tracing::debug!(ip = %addr.ip(), "HTTP connection refused: too many open from its address");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(self.send_buffer);
            let stream = stall::Stalling::new(stream, self.write_timeout);
            let this = self.clone();
            self.tracker.spawn(async move {
                let peer = Peer { addr: SocketAddr::new(addr.ip().to_canonical(), addr.port()), tls: this.tls.is_some() };
                match &this.tls {
                    None => this.serve(TokioIo::new(stream), peer).await,
                    Some(acceptor) => {
                        let handshake = tokio::select! {
                            _ = this.shutdown.cancelled() => return,
                            handshake = tokio::time::timeout(this.handshake_timeout, acceptor.accept(stream)) => handshake,
                        };
                        match handshake {
                            Ok(Ok(stream)) => this.serve(TokioIo::new(stream), peer).await,
                            Ok(Err(e)) => tracing::debug!(ip = %peer.addr.ip(), error = %e, "HTTPS handshake failed"),
                            Err(_) => tracing::debug!(ip = %peer.addr.ip(), "HTTPS handshake timed out"),
                        }
                    }
                }
                drop(slot);
            });
        }
    }

    /// Serves one connection's requests (and hands a WebSocket over once upgraded).
    async fn serve<I>(&self, io: I, peer: Peer)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let trusted = Arc::clone(&self.trusted_proxies);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            let headers = security_headers(request.headers(), peer, &trusted);
            let router = router.clone();
            async move {
                let mut response: Response<axum::body::Body> = router.oneshot(request).await?;
                for (name, value) in headers {
                    response.headers_mut().entry(name).or_insert(value);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .keep_alive(self.keep_alive)
            .serve_connection(io, service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            _ = self.shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(STOP_GRACE, connection).await;
            }
        }
    }
}

/// The headers every response carries, whatever route answered:
///
/// - `Content-Security-Policy`: scripts, styles, images, fonts only from this server, nothing
///   inline, no plugins, no framing, no `<base>`; connections only to this server (its own
///   origin, and its WebSocket on the same host, written out for browsers whose `'self'` does
///   not cover `wss:`).
/// - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
///   (for browsers older than `frame-ancestors`).
/// - `Strict-Transport-Security` when the client reached us over HTTPS (here, or at a trusted
///   proxy), never over plain HTTP, where it means nothing and would be a lie.
pub(crate) fn security_headers(
    request: &HeaderMap,
    peer: Peer,
    trusted: &[IpRange],
) -> Vec<(header::HeaderName, HeaderValue)> {
    let client = client_of(request, peer, trusted);
    let socket = match &client.host {
        Some(host) => format!(" {}://{host}", if client.secure { "wss" } else { "ws" }),
        None => String::new(),
    };
    let mut headers = vec![
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
        (header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
    ];
    // The host holds only host characters (`peer::is_host`), so the first cannot fail.
    if let Some(csp) = csp(&socket).or_else(|| csp("")) {
        headers.push((header::CONTENT_SECURITY_POLICY, csp));
    }
    if client.secure {
        headers.push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000")));
    }
    headers
}

/// The Content-Security-Policy, with `socket` (` wss://host`, or nothing) added to `connect-src`.
fn csp(socket: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'{socket}; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'; object-src 'none'"
    ))
    .ok()
}
