//! PeerJS's HTTP side under `PEERJS_PATH`, as peerjs-server answers it:
//! `GET {path}/` the server's info, `GET {path}/{key}/id` a fresh id (text),
//! `GET {path}/{key}/peers` the ids connected cluster-wide (with
//! `PEERJS_ALLOW_DISCOVERY=true`; else `401`), and the socket at
//! `{path}/peerjs`. Like peerjs-server, the REST routes do not check the key.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{PeerSocket, ask, wire};
use crate::domain::peerjs::PeerId;
use crate::state::AppState;
use crate::transport::conn::raw;
use crate::transport::wire::error::HttpError;

/// The REST routes, under `PEERJS_PATH`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let path = &state.config.peerjs.path;
    Router::new()
        .route(path, get(info))
        .route(&format!("{path}/"), get(info))
        .route(&format!("{path}/{{key}}/id"), get(id))
        .route(&format!("{path}/{{key}}/peers"), get(peers))
}

/// The socket's route, `{PEERJS_PATH}/peerjs`.
pub fn socket_routes(state: &AppState) -> Router<AppState> {
    Router::new().route(&format!("{}/peerjs", state.config.peerjs.path), get(socket))
}

async fn info() -> impl IntoResponse {
    Json(wire::INFO)
}

/// `{path}/peerjs`: the WebSocket.
async fn socket(State(state): State<AppState>, request: Request) -> Response {
    let asked = ask(&state, request.uri().query());
    raw::upgrade::<PeerSocket>(&state, request, asked)
}

/// A random UUID no connected peer holds (text, as peerjs-server sends it).
async fn id(State(state): State<AppState>) -> Result<Response, HttpError> {
    loop {
        let candidate = uuid::Uuid::new_v4().to_string();
        let id = PeerId::parse(&candidate).expect("a UUID is a valid id");
        if state.core.stores.peers.holder(&id).await?.is_none() {
            return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], candidate).into_response());
        }
    }
}

/// The ids connected, with discovery on.
async fn peers(State(state): State<AppState>) -> Result<Json<Vec<PeerId>>, HttpError> {
    if !state.config.peerjs.allow_discovery {
        return Err(HttpError::DiscoveryDisabled);
    }
    Ok(Json(state.core.stores.peers.ids().await?))
}
