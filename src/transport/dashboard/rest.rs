//! `GET /dashboard/health`: seed 001's health, `{ status, connected_clients,
//! rooms: { total, list } }` (under its own path: the contract's `/health`
//! has `rooms` as a number); behind the token with `JWT_SECRET` set. Seed
//! 001's raw WebSocket, `GET /dashboard/ws`, is routed by [`super::raw::routes`].

use axum::extract::State;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::core::event::RoomView;
use crate::state::AppState;
use crate::transport::http::guard::require_token;
use crate::transport::wire::error::HttpError;

/// The route.
pub fn routes(state: &AppState) -> Router<AppState> {
    let token = from_fn_with_state(state.clone(), require_token);
    Router::new().route("/dashboard/health", get(health).route_layer(token))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    connected_clients: usize,
    rooms: Rooms,
}

#[derive(Serialize)]
struct Rooms {
    total: usize,
    list: Vec<RoomView>,
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, HttpError> {
    let directory = state.core.directory();
    let (total, list) = directory.rooms().await.map_err(|e| state.core.reported(e, "dashboard health"))?;
    let connected_clients = state.core.metrics.sockets().all;
    Ok(Json(Health { status: "ok", connected_clients, rooms: Rooms { total, list } }))
}
