//! Which browser origins may talk to the server.
//!
//! CORS (tower-http) covers REST and the socket.io polling transport; it must
//! wrap the socket.io layer, which answers `OPTIONS` with 400 on its own.
//! CORS does not apply to websockets, so [`guard_websocket_origin`] refuses
//! every websocket upgrade, of any protocol, whose `Origin` admission does
//! not allow ([`origin_allowed`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::config::AllowedOrigins;
use crate::transport::conn::admission::origin_allowed;
use crate::transport::wire::error::HttpError;

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

/// Whether the request asks for a websocket: `websocket` among the tokens of
/// any `Upgrade` line (`Upgrade: websocket, foo` is one too).
fn asks_for_websocket(headers: &HeaderMap) -> bool {
    let tokens = headers.get_all(header::UPGRADE).into_iter().filter_map(|v| v.to_str().ok());
    tokens
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().split('/').next().is_some_and(|p| p.eq_ignore_ascii_case("websocket")))
}

/// Middleware: a websocket upgrade from a disallowed `Origin` gets 403.
pub async fn guard_websocket_origin(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if asks_for_websocket(headers) && !origin_allowed(&origins, headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "websocket upgrade from a disallowed origin refused");
        return HttpError::OriginNotAllowed.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::UPGRADE, v.parse().unwrap());
        }
        headers
    }

    /// Issue 17, problem 12: the origin check cannot be skipped by listing
    /// another protocol beside `websocket`.
    #[test]
    fn websocket_among_the_upgrade_tokens_is_a_websocket_upgrade() {
        assert!(asks_for_websocket(&upgrade(&["websocket"])));
        assert!(asks_for_websocket(&upgrade(&["WebSocket"])));
        assert!(asks_for_websocket(&upgrade(&["websocket, foo"])));
        assert!(asks_for_websocket(&upgrade(&["foo, websocket/13"])));
        assert!(asks_for_websocket(&upgrade(&["h2c", "websocket"])));
        assert!(!asks_for_websocket(&upgrade(&["h2c"])) && !asks_for_websocket(&upgrade(&[])));
    }
}
