//! Operations over HTTP, on axum: `GET /metrics` (Prometheus text format), `/healthz` (the hub
//! answers) and `/readyz` (and the server is not stopping, and commits work). The metrics
//! listener serves all three, one request per connection; the web listener serves the health
//! checks alone (counts of users and rooms are for the operator, not the public).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Control;

/// Time for the hub to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

fn text(status: StatusCode, kind: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, kind)], body).into_response()
}

/// `/healthz` and `/readyz`.
pub(crate) fn health_routes(control: Control) -> Router {
    let ready = control.clone();
    Router::new()
        .route("/healthz", get(move || health(control, false)))
        .route("/readyz", get(move || health(ready, true)))
}

/// The metrics listener's routes: `/metrics` and the health checks; anything else is 404.
pub(crate) fn metrics_routes(control: Control) -> Router {
    let metrics = control.clone();
    Router::new()
        .route("/metrics", get(move || scrape(metrics)))
        .merge(health_routes(control))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "text/plain", "try /metrics, /healthz or /readyz\n".into()) })
}

async fn scrape(control: Control) -> Response {
    match tokio::time::timeout(TIMEOUT, crate::admin::stats(&control)).await {
        Ok(Ok(snapshot)) => text(StatusCode::OK, "text/plain; version=0.0.4", snapshot.prometheus()),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the server is not answering\n".into()),
    }
}

async fn health(control: Control, readiness: bool) -> Response {
    let alive = tokio::time::timeout(TIMEOUT, crate::hub::call(&control.hub, |_| ())).await.is_ok_and(|r| r.is_ok());
    let stopping = !control.metrics.ready.load(Relaxed);
    let failing = control.metrics.store_failing.load(Relaxed);
    let cluster_state = control.metrics.cluster_state.load(Relaxed);
    let cut_off = cluster_state == crate::cluster::State::CutOff as u8;
    let joining = cluster_state == crate::cluster::State::Joining as u8;
    if alive && (!readiness || !(stopping || failing || cut_off || joining)) {
        return text(StatusCode::OK, "text/plain", "ok\n".into());
    }
    let why = if !alive {
        "the server is not answering\n"
    } else if stopping {
        "stopping\n"
    } else if cut_off {
        "cut off from the cluster bus: users dropped, joining again\n"
    } else if joining {
        "joining the cluster: reading the network's log\n"
    } else {
        "the store cannot commit; messages are held\n"
    };
    text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why.into())
}
