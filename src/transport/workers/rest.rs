//! Seed 002's REST routes: `POST /bootstrap` -> `{ workerId, region,
//! capacity, clientIp, signaling }` (the worker for the caller's address;
//! `503 no-workers` when none is healthy) and `GET /workers` (the pool, behind
//! the token with `JWT_SECRET` set). The caller's address is the TCP peer, or
//! `X-Forwarded-For` from `TRUSTED_PROXIES` only.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;
use crate::transport::conn::address;
use crate::transport::http::guard::require_token;
use crate::transport::wire::error::HttpError;

/// The routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let token = from_fn_with_state(state.clone(), require_token);
    Router::new().route("/bootstrap", post(bootstrap)).route("/workers", get(list).route_layer(token))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bootstrap {
    worker_id: String,
    region: String,
    capacity: u32,
    client_ip: String,
    signaling: &'static str,
}

/// `POST /bootstrap`: the worker for the caller's address.
async fn bootstrap(State(state): State<AppState>, request: Request) -> Result<Json<Bootstrap>, HttpError> {
    let ip = address::of(request.extensions(), request.headers(), &state.config.trusted_proxies)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let worker = state.core.workers().assign(ip).await?.ok_or(HttpError::NoWorkers)?;
    Ok(Json(Bootstrap {
        worker_id: worker.worker_id,
        region: worker.region,
        capacity: worker.capacity,
        client_ip: ip.to_string(),
        signaling: super::edge::PATH,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    worker_id: String,
    region: String,
    capacity: u32,
    healthy: bool,
    last_seen: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ring {
    replicas: usize,
    virtual_nodes: usize,
    healthy: usize,
}

#[derive(Serialize)]
struct Pool {
    workers: Vec<Listed>,
    ring: Ring,
}

/// `GET /workers`: the pool with each worker's health, and the ring's size.
async fn list(State(state): State<AppState>) -> Result<Json<Pool>, HttpError> {
    let pool = state.core.workers().pool().await?;
    let replicas = state.config.workers.replicas;
    let workers = pool
        .all
        .into_iter()
        .map(|w| Listed {
            healthy: pool.healthy.contains(&w.worker_id),
            worker_id: w.worker_id,
            region: w.region,
            capacity: w.capacity,
            last_seen: w.last_seen,
        })
        .collect();
    let ring = Ring { replicas, virtual_nodes: pool.healthy.len() * replicas, healthy: pool.healthy.len() };
    Ok(Json(Pool { workers, ring }))
}
