//! `GET /health`: 200 while the instance can do its work; 503 while Redis is
//! down (cluster mode), so a load balancer takes the instance out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::core::workers::RingFigures;
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Health {
    status: &'static str,
    connections: usize,
    /// `null` while the store cannot be asked.
    rooms: Option<usize>,
    uptime_seconds: u64,
    version: &'static str,
    adapter: &'static str,
    /// In cluster mode: `up` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
    /// Seed 001's name: connections of this instance, every namespace and raw protocol.
    #[serde(rename = "connected_clients")]
    connected_clients: usize,
    /// Whether this instance is the cluster's leader (always, alone).
    leader: bool,
    /// The worker ring (`null` while the store cannot be asked).
    ring: Option<RingFigures>,
    /// The protocols this instance serves (`PROTOCOLS`).
    protocols: Vec<&'static str>,
}

pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let core = &state.core;
    let redis_up = core.health.redis_up();
    let down = core.health.down();
    let rooms = if down { None } else { core.stores.rooms.count().await.ok() };
    let health = Health {
        status: if down { "degraded" } else { "ok" },
        connections: state.stats.connections(),
        rooms,
        uptime_seconds: state.stats.uptime_seconds(),
        version: env!("CARGO_PKG_VERSION"),
        adapter: core.stores.rooms.kind(),
        redis: redis_up.map(|up| if up { "up" } else { "down" }),
        connected_clients: state.stats.all(),
        leader: core.leader.holds(),
        ring: if down { None } else { core.workers().figures().await.ok() },
        protocols: state.config.protocols.names().to_vec(),
    };
    let status = if down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(health))
}
