//! The web listener's HTTP side (`serve --web ADDR`): the page, and the upgrade of `/ws` to a
//! WebSocket, which is then handed to the owner task to be admitted like any connection.
//!
//! ```text
//!  accept (≤ max_connections HTTP connections) ─► TLS handshake (if the server has TLS)
//!    ─► HTTP/1.1 (hyper; headers within HEADER_TIMEOUT, at most MAX_HTTP_BUFFER; whole connection
//!       within HTTP_LIFETIME) ─► axum: GET / , /app.js , ...   the embedded page (crate::web::assets)
//!                                     GET /ws                  Origin check, upgrade (message limits)
//!                                                                ─► Upgraded ─► owner: admit, serve_web
//! ```
//!
//! Plain HTTP requests are served here and never reach the router; a WebSocket counts as a connection
//! (admission, login timeout, rate limits) from its upgrade on. The task stops when the owner stops
//! taking upgrades (shutdown), and its connections with it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::connection::HANDSHAKE_TIMEOUT;
use super::web::Upgraded;
use crate::web::{MAX_COMMAND_BYTES, MAX_HISTORY_EVENT, OriginPolicy, assets};

/// Time a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an HTTP connection is kept (keep-alive included; a WebSocket leaves it at its upgrade).
pub const HTTP_LIFETIME: Duration = Duration::from_secs(60);
/// Largest buffer for a request's headers.
pub const MAX_HTTP_BUFFER: usize = 64 * 1024;
/// Largest amount of outgoing WebSocket data buffered: two of the largest events.
const MAX_WRITE_BUFFER: usize = 2 * (MAX_HISTORY_EVENT + 64 * 1024);

/// What the handlers share.
#[derive(Clone)]
struct WebState {
    upgrades: mpsc::Sender<Upgraded>,
    origins: OriginPolicy,
}

/// Starts serving `web` (if the server has a web listener) with the server's TLS, origin policy and
/// connection limit: its upgraded WebSockets come out of the receiver; the task stops when the
/// receiver is dropped (or is aborted). Used by the single server's and a cluster instance's loops.
pub(super) fn start(
    web: Option<TcpListener>,
    config: &super::ServerConfig,
) -> (Option<mpsc::Receiver<Upgraded>>, Option<tokio::task::JoinHandle<()>>) {
    let Some(listener) = web else { return (None, None) };
    let (tx, rx) = mpsc::channel(super::UPGRADE_CAPACITY);
    let tls = config.tls.as_ref().map(|t| t.acceptor.clone());
    let origins = OriginPolicy::new(tls.is_some(), &config.web_origins);
    let serve = serve_http(listener, tls, origins, tx, config.max_connections);
    (Some(rx), Some(tokio::spawn(serve)))
}

/// Serves the page and upgrades WebSockets until `upgrades` is closed.
pub(super) async fn serve_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    origins: OriginPolicy,
    upgrades: mpsc::Sender<Upgraded>,
    max_connections: usize,
) {
    let app = Router::new()
        .route("/ws", get(websocket))
        .fallback(page)
        .with_state(WebState { upgrades: upgrades.clone(), origins });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = upgrades.closed() => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed (web)");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if connections.len() >= max_connections {
                    debug!(%peer, "too many HTTP connections: closed");
                    continue;
                }
                connections.spawn(serve_one(stream, peer, tls.clone(), app.clone()));
            }
        }
    }
}

/// One HTTP connection: TLS if the server has it, then HTTP/1.1 with upgrades.
async fn serve_one(stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, app: Router) {
    match tls {
        Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(stream)) => serve_http1(stream, peer, app).await,
            Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed (web)"),
            Err(_) => debug!(%peer, "TLS handshake timed out (web)"),
        },
        None => serve_http1(stream, peer, app).await,
    }
}

async fn serve_http1<S>(stream: S, peer: SocketAddr, app: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        tower_service::Service::call(&mut app.clone(), request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HTTP_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    match tokio::time::timeout(HTTP_LIFETIME, connection).await {
        Ok(Err(e)) => debug!(%peer, error = %e, "HTTP connection failed"),
        Err(_) => debug!(%peer, "HTTP connection closed after its lifetime"),
        Ok(Ok(())) => {}
    }
}

/// `GET /ws`: the Origin check, then the upgrade; the socket goes to the owner task.
async fn websocket(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A header that is not text is as good as a wrong one.
    let text = |name| headers.get(name).map(|v: &HeaderValue| v.to_str().unwrap_or("\u{fffd}"));
    if let Err(why) = state.origins.check(text(ORIGIN), text(HOST)) {
        debug!(%peer, %why, "WebSocket refused");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    upgrade
        .max_message_size(MAX_COMMAND_BYTES)
        .max_frame_size(MAX_COMMAND_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            if state.upgrades.send_timeout(Upgraded { socket, peer }, HANDSHAKE_TIMEOUT).await.is_err() {
                debug!(%peer, "the server did not take the WebSocket in time: closed");
            }
        })
}

/// Everything else: a file of the page, or 404.
async fn page(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return with_headers(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "GET only\n");
    }
    match assets::find(uri.path()) {
        Some(asset) => with_headers(StatusCode::OK, asset.content_type, asset.body),
        None => with_headers(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    }
}

fn with_headers(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in assets::HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}
