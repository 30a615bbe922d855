//! Which browser origins may talk to the server.
//!
//! CORS (tower-http) covers REST and the socket.io polling transport; it must
//! wrap the socket.io layer, which answers `OPTIONS` with 400 on its own.
//! CORS does not apply to websockets, so [`guard_websocket_origin`] refuses
//! every websocket upgrade, of any protocol, whose `Origin` is neither in
//! `CLIENT_URL` nor this server's own ([`Policy::allows`]): same scheme, host
//! and port, the scheme being `X-Forwarded-Proto` when a trusted proxy sent
//! it (a TLS-terminating proxy), else `http`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::config::{AllowedOrigins, Config};
use crate::domain::net::Cidr;
use crate::transport::conn::address;
use crate::transport::wire::error::HttpError;

/// Who may open websockets: `CLIENT_URL`, and the server's own pages.
pub struct Policy {
    /// `CLIENT_URL`.
    pub allowed: AllowedOrigins,
    /// `TRUSTED_PROXIES`, whose `X-Forwarded-Proto` is believed.
    trusted: Vec<Cidr>,
}

impl Policy {
    /// The policy of `config`.
    pub fn new(config: &Config) -> Self {
        Self { allowed: config.allowed_origins.clone(), trusted: config.trusted_proxies.clone() }
    }

    /// Whether a websocket upgrade with these headers may proceed: CORS does
    /// not apply to websockets, so an `Origin` must be in `CLIENT_URL` or be
    /// the server's own (the page it serves at `/`). Clients that send no
    /// `Origin` (Node, native apps) are not browsers and pass.
    pub fn allows(&self, extensions: &Extensions, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN) {
            None => true,
            Some(origin) => {
                let scheme = address::scheme(extensions, headers, &self.trusted);
                self.allowed.allows(origin) || same_origin(origin, scheme, headers.get(header::HOST))
            }
        }
    }
}

/// Whether `origin` is the page this server itself serves: the same scheme
/// (`scheme`, the request's), host and port as `Host`.
fn same_origin(origin: &HeaderValue, scheme: &str, host: Option<&HeaderValue>) -> bool {
    let origin = origin.to_str().ok().and_then(|o| o.split_once("://"));
    match (origin, host.and_then(|h| h.to_str().ok())) {
        (Some((origin_scheme, origin_host)), Some(host)) => {
            origin_scheme.eq_ignore_ascii_case(scheme) && origin_host.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

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
pub async fn guard_websocket_origin(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if asks_for_websocket(headers) && !policy.allows(request.extensions(), headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "websocket upgrade from a disallowed origin refused");
        return HttpError::OriginNotAllowed.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17, problem 12: a page of another scheme is another origin.
    #[test]
    fn a_page_served_by_this_server_is_its_own_origin_with_the_same_scheme() {
        let host = HeaderValue::from_static("127.0.0.1:4000");
        let own = |origin: &'static str, scheme| same_origin(&HeaderValue::from_static(origin), scheme, Some(&host));
        assert!(own("http://127.0.0.1:4000", "http"));
        assert!(own("https://127.0.0.1:4000", "https"));
        assert!(!own("https://127.0.0.1:4000", "http"), "an https page on a plain server");
        assert!(!own("http://127.0.0.1:4000", "https"), "a plain page behind a TLS proxy");
        assert!(!own("http://127.0.0.1:4001", "http"));
        assert!(!own("http://evil.test", "http"));
        assert!(!same_origin(&HeaderValue::from_static("http://127.0.0.1:4000"), "http", None));
    }

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
