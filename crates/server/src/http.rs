//! The metrics and health listener: a minimal HTTP/1.1 server for `GET /metrics` (Prometheus
//! text format), `/healthz` (the hub answers) and `/readyz` (and the server is not stopping, and commits work).
//! One request per connection; the request head is bounded in size and time.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Control;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time to send the request head, and for the hub to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(listener: TcpListener, control: Control, shutdown: CancellationToken, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let control = control.clone();
        tracker.spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT * 2, serve(stream, control)).await;
        });
    }
}

async fn serve(mut stream: TcpStream, control: Control) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "too large\n").await;
        }
        let n =
            tokio::time::timeout(TIMEOUT, stream.read(&mut buf)).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n").await;
    }
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/metrics" => match tokio::time::timeout(TIMEOUT, crate::admin::stats(&control)).await {
            Ok(Ok(snapshot)) => {
                respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &snapshot.prometheus()).await
            }
            _ => respond(&mut stream, "503 Service Unavailable", "text/plain", "the server is not answering\n").await,
        },
        "/healthz" | "/readyz" => {
            let alive =
                tokio::time::timeout(TIMEOUT, crate::hub::call(&control.hub, |_| ())).await.is_ok_and(|r| r.is_ok());
            let stopping = !control.metrics.ready.load(Relaxed);
            let failing = control.metrics.store_failing.load(Relaxed);
            if alive && (path == "/healthz" || !(stopping || failing)) {
                respond(&mut stream, "200 OK", "text/plain", "ok\n").await
            } else {
                let why = if !alive {
                    "the server is not answering\n"
                } else if stopping {
                    "stopping\n"
                } else {
                    "the store cannot commit; messages are held\n"
                };
                respond(&mut stream, "503 Service Unavailable", "text/plain", why).await
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics, /healthz or /readyz\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
