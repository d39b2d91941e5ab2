//! The web client's files, embedded at build time from `web/dist/` (see `build.rs`): served
//! with their content type, and an ETag so that a browser revalidates rather than downloads
//! again. Every file is revalidated (`no-cache`): a new server version serves new files under
//! the same names, and a stale script talking to a newer server is worse than one round trip.
//!
//! Only `GET` and `HEAD` (the same head, no body) of a file: any other method gets 405 with
//! `Allow`, a path that is no file 404 whatever the method. Paths are compared as sent, to a
//! fixed table, so nothing (`..`, `%2e%2e`) ever reaches a file system; `Range` is ignored (a
//! whole 200 answers it, as RFC 9110 allows), and `If-None-Match` compares tags weakly.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    /// Its URL path, from `/`.
    pub path: &'static str,
    pub body: &'static [u8],
    /// A quoted hash of the contents.
    pub etag: &'static str,
}

/// Every file of `web/dist/` at build time, sorted by path.
pub(crate) static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The content type for a file name, by its extension.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.binary_search_by(|a| a.path.cmp(path)).ok().map(|i| &ASSETS[i])
}

/// A request for a path that is not another route: the embedded file, 405 for another method
/// than `GET` and `HEAD`, or 404.
pub(crate) async fn serve(method: Method, uri: Uri, request_headers: HeaderMap) -> Response {
    let Some(asset) = find(uri.path()) else {
        let body = if ASSETS.is_empty() {
            "This chinwag was built without its web client (web/dist was empty); build the client and then chinwag.\n"
        } else {
            "Not found\n"
        };
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        let allow = [(header::ALLOW, "GET, HEAD"), (header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        return (StatusCode::METHOD_NOT_ALLOWED, allow, "Method not allowed\n").into_response();
    }
    // Weak comparison (RFC 9110 §13.1.2): a cache may send our tag back as `W/"…"`.
    let fresh = request_headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|tags| {
        tags.split(',').map(|t| t.trim()).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == asset.etag)
    });
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Response::new(Body::from(asset.body)) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_has_the_index() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path), "binary search needs sorted paths");
        assert!(find("/").is_some_and(|a| a.path == "/index.html"));
        assert_eq!(content_type("/app.js"), "text/javascript; charset=utf-8");
        assert!(find("/../Cargo.toml").is_none());
    }
}
