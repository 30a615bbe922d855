//! HTTP shared by every feature: the accept loop that counts and times
//! every connection ([`accept`]), the router's frame (`/health`, `/metrics`,
//! the static files of `WEB_DIR`, JSON for every miss: unknown route 404,
//! wrong method 405, and the per-address request limit), CORS and the
//! websocket origin check ([`origin`]), the token check for REST
//! ([`guard`]), the embedded socket.io client bundle ([`static_files`]), the
//! per-address count of engine.io sessions from their handshake
//! ([`sessions`]), and the request-head copy that keeps idle sessions small
//! ([`head`]). Each
//! feature's REST routes are in its own folder; `server/` merges them.
//!
//! Must not import a feature folder (`transport/<feature>`).

pub mod accept;
pub mod guard;
pub mod head;
mod health;
mod metrics;
pub mod origin;
pub mod sessions;
pub mod static_files;

use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tower_http::services::ServeDir;

use crate::state::AppState;
use crate::transport::wire::error::HttpError;

/// The router: `features`' REST routes with the shared ones, all within the
/// per-address REST limit, and the raw WebSocket endpoints (`sockets`)
/// outside it: an upgrade is a connection, bounded by
/// `MAX_CONNECTIONS_PER_IP` as a socket.io handshake is (many clients behind
/// one NAT open at once). The socket.io layer and CORS are added by the server.
pub fn router(state: AppState, features: Router<AppState>, sockets: Router<AppState>) -> axum::Router {
    let token = || from_fn_with_state(state.clone(), guard::require_token);
    let limit = || from_fn_with_state(state.clone(), guard::limit_per_address);
    let files = ServeDir::new(&state.config.web_dir).fallback(no_route.into_service());
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics).route_layer(token()))
        .merge(features)
        .route_layer(limit())
        .merge(sockets)
        .fallback_service(tower::ServiceBuilder::new().layer(limit()).service(files))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn no_route(uri: axum::http::Uri) -> HttpError {
    HttpError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed() -> HttpError {
    HttpError::MethodNotAllowed
}
