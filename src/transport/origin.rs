//! Which browser origins may talk to the server.
//!
//! CORS (tower-http) covers REST and the socket.io polling transport; it must
//! wrap the socket.io layer, which answers `OPTIONS` with 400 on its own.
//! CORS does not apply to websockets, so [`guard_websocket_origin`] refuses an
//! upgrade whose `Origin` is not in `CLIENT_URL` and is not the server's own
//! origin (the page it serves at `/`). Clients that send no `Origin` (Node,
//! native apps) are not browsers and pass.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::error::HttpError;
use crate::config::AllowedOrigins;

/// The CORS layer for `CLIENT_URL`, with credentials allowed.
pub fn cors(origins: &AllowedOrigins) -> CorsLayer {
    let allow_origin = match origins {
        AllowedOrigins::Any => AllowOrigin::mirror_request(),
        AllowedOrigins::List(list) => AllowOrigin::list(list.clone()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600))
}

/// Whether `origin` is the page this server itself serves (same host and
/// port as the request's `Host`), which is always allowed, whatever
/// `CLIENT_URL` says: the demo page at `/` must reach its own server.
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
    match (origin_host, host.and_then(|h| h.to_str().ok())) {
        (Some(origin_host), Some(host)) => origin_host.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// Middleware: a websocket upgrade from a disallowed `Origin` gets 403.
pub async fn guard_websocket_origin(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let upgrade = headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if let Some(origin) = headers.get(header::ORIGIN).filter(|_| upgrade)
        && !origins.allows(origin)
        && !same_origin(origin, headers.get(header::HOST))
    {
        tracing::warn!(?origin, "websocket upgrade from a disallowed origin refused");
        return HttpError::OriginNotAllowed.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_served_by_this_server_is_its_own_origin() {
        let host = HeaderValue::from_static("127.0.0.1:4000");
        assert!(same_origin(&HeaderValue::from_static("http://127.0.0.1:4000"), Some(&host)));
        assert!(same_origin(&HeaderValue::from_static("https://127.0.0.1:4000"), Some(&host)));
        assert!(!same_origin(&HeaderValue::from_static("http://127.0.0.1:4001"), Some(&host)));
        assert!(!same_origin(&HeaderValue::from_static("http://evil.test"), Some(&host)));
        assert!(!same_origin(&HeaderValue::from_static("http://127.0.0.1:4000"), None));
    }
}
