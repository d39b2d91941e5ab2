//! `/ws`: the IRCv3 WebSocket transport. The handshake is checked (Origin, the client's real
//! address and its admission, the subprotocol), upgraded by yawc with permessage-deflate when
//! the client offers it, and the connection then runs through `conn::serve` like any TCP
//! connection: the same reader, outbound queue, limits and core.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chinwag_core::{ConnId, ConnInfo};

use super::peer::{check_origin, client_of, Peer};
use super::stream::{Mode, WsStream};
use super::Web;
use crate::conn;
use crate::listen::{host_of, say_and_close};
use crate::metrics::Transport;

fn refuse(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

pub(crate) async fn upgrade(State(web): State<Arc<Web>>, mut request: Request) -> Response {
    let Some(peer) = request.extensions().get::<Peer>().copied() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no peer address\n".into());
    };
    // A handshake is a GET (RFC 6455 §4.1); a HEAD gets the GET's answer without a body.
    let is_upgrade = request.method() == Method::GET
        && request
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this is the IRC WebSocket: connect with a WebSocket client\n".into(),
        );
    }
    let client = client_of(request.headers(), peer, &web.settings.trusted_proxies);
    if let Err(why) = check_origin(request.headers(), &client, &web.settings.origins) {
        tracing::info!(ip = %client.ip, origin = ?request.headers().get(header::ORIGIN), "WebSocket refused: foreign origin");
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let offered = request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL);
    let chosen = Mode::choose(offered.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')));
    // The handshake is checked before admission, so that a broken one costs its address none
    // of its connections per minute.
    let (response, upgrading) = match yawc::WebSocket::upgrade_with_options(&mut request, web.ws_options.clone()) {
        Ok(pair) => pair,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not a WebSocket handshake: {e}\n")),
    };
    let admitted = web.acceptor.admission.admit(client.ip, Instant::now());
    // A refused client is told why in an ERROR line, like on TCP, while refusals in flight
    // allow it; beyond that, in the HTTP answer only.
    let refusal_slot = match &admitted {
        Ok(_) => None,
        Err(refusal) => match Arc::clone(&web.acceptor.refusals).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", refusal.text())),
        },
    };
    let mut response = response.map(Body::new);
    if let Some(mode) = chosen {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(mode.name()));
    }
    let mode = chosen.unwrap_or(Mode::Text);
    let acceptor = web.acceptor.clone();
    let timeout = acceptor.limits.tls_handshake_timeout;
    let line_len = acceptor.limits.line_len;
    let shutdown = acceptor.shutdown.clone();
    let tracker = acceptor.tracker.clone();
    tracker.spawn(async move {
        // The upgrade completes once our 101 is written.
        let ws = tokio::select! {
            _ = shutdown.cancelled() => return,
            ws = tokio::time::timeout(timeout, upgrading) => match ws {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => return tracing::debug!(ip = %client.ip, error = %e, "WebSocket upgrade failed"),
                Err(_) => return tracing::debug!(ip = %client.ip, "WebSocket upgrade timed out"),
            },
        };
        let stream = WsStream::new(ws, mode, line_len);
        let ip = client.ip;
        match admitted {
            Ok(permit) => {
                let stream = acceptor.metrics.wrap(stream, Transport::WebSocket);
                let conn = ConnId(acceptor.ids.fetch_add(1, Ordering::Relaxed));
                let info = ConnInfo { ip, host: host_of(ip), tls: client.secure, quic: false, certfp: None };
                let setup = conn::Setup::new(conn, info, acceptor.events.clone(), &acceptor.queues);
                tracing::debug!(%conn, %ip, secure = client.secure, ?mode, "WebSocket connection");
                conn::serve(stream, setup, None).await;
                drop(permit);
            }
            Err(refusal) => {
                tracing::debug!(%ip, reason = refusal.text(), "WebSocket connection refused");
                let line = format!("ERROR :Closing Link: {} ({})\r\n", host_of(ip), refusal.text());
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    () = say_and_close(stream, line.as_bytes()) => {}
                }
                drop(refusal_slot);
            }
        }
    });
    response
}
