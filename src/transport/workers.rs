//! Worker routing (seed 002): workers register on `/workers` with the shared
//! `WORKER_KEY` and heartbeat; clients ask `POST /bootstrap` for their worker
//! (a consistent-hash ring over the healthy workers, keyed by the client's
//! address) and then signal it through `/edge` until their WebRTC connection
//! is up and they talk directly.
//!
//! - `/workers` handshake auth `{ key, workerId, region, capacity }`; events
//!   `heartbeat`, and `signal { to, type, data }` to a client (which gets
//!   `signal { from, type, data }`, `from` the worker id).
//! - `/edge` (clients): `welcome { clientId }` on connect; `signal { to, type,
//!   data }` to a worker (which gets `signal { from, type, data }`, `from` the
//!   client id).
//! - `POST /bootstrap` -> `{ workerId, region, capacity, clientIp }`, `503`
//!   `no-workers` when none is healthy; `GET /workers` lists the pool.
//!
//! A worker silent for `WORKER_HEALTH_TIMEOUT` is unhealthy and off the ring
//! until it heartbeats again. The pool is in the worker store (Redis with
//! `REDIS_URL`), so every front server computes the same ring, and a signal
//! goes to the worker's connection as its record names it, or to the client's
//! connection (its id), on whichever instance holds it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Request, State as HttpState};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use tracing::{info, warn};

use super::deliver::deliver_to;
use super::error::{ConnectRefused, HttpError, SignalError};
use super::payload::PayloadError;
use super::serial::{Handler, Serial};
use crate::domain::ConnId;
use crate::domain::now_ms;
use crate::domain::ring::Ring;
use crate::domain::signal::SignalKind;
use crate::domain::worker::WorkerRecord;
use crate::state::AppState;

/// Where workers connect.
pub const WORKERS: &str = "/workers";
/// Where clients connect to signal their worker.
pub const EDGE: &str = "/edge";
const MAX_ID: usize = 128;

fn id_ok(raw: &str) -> bool {
    (1..=MAX_ID).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The ring over the healthy workers, rebuilt only when that set changes.
#[derive(Default)]
pub struct RingCache {
    ring: Mutex<Arc<Ring>>,
    /// Bootstrap answers given by this instance.
    pub bootstraps: AtomicU64,
}

impl RingCache {
    /// The ring over `healthy` (worker ids, sorted) with `replicas` virtual nodes each.
    pub fn ring(&self, healthy: &[String], replicas: usize) -> Arc<Ring> {
        let mut cached = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if cached.workers() != healthy {
            *cached = Arc::new(Ring::new(healthy, replicas));
        }
        cached.clone()
    }
}

/// The pool and which workers are healthy now.
async fn pool(state: &AppState) -> Result<(Vec<WorkerRecord>, Vec<String>), HttpError> {
    let all = state.workers.all().await.map_err(|e| state.reported(e, "workers"))?;
    let timeout = state.config.workers.health_timeout.as_millis() as u64;
    let now = now_ms();
    let healthy = all.iter().filter(|w| w.healthy(now, timeout)).map(|w| w.worker_id.clone()).collect();
    Ok((all, healthy))
}

/// `{ workers, healthy, virtualNodes }` of the ring now, for `/health` and `/metrics`.
pub async fn ring_figures(state: &AppState) -> Result<Value, HttpError> {
    let (all, healthy) = pool(state).await?;
    Ok(json!({
        "workers": all.len(),
        "healthy": healthy.len(),
        "virtualNodes": healthy.len() * state.config.workers.replicas,
    }))
}

/// `POST /bootstrap`: the worker for the caller's address.
pub async fn bootstrap(HttpState(state): HttpState<AppState>, request: Request) -> Result<Json<Value>, HttpError> {
    let ip = super::address::of(request.extensions(), request.headers(), &state.config.trusted_proxies)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let (all, healthy) = pool(&state).await?;
    let ring = state.ring.ring(&healthy, state.config.workers.replicas);
    let id = ring.get(&ip.to_string()).ok_or(HttpError::NoWorkers)?;
    let worker = all.iter().find(|w| w.worker_id == id).ok_or(HttpError::NoWorkers)?;
    state.ring.bootstraps.fetch_add(1, Ordering::Relaxed);
    Ok(Json(json!({
        "workerId": worker.worker_id,
        "region": worker.region,
        "capacity": worker.capacity,
        "clientIp": ip.to_string(),
        "signaling": EDGE,
    })))
}

/// `GET /workers`: the pool with each worker's health, and the ring's size.
pub async fn list(HttpState(state): HttpState<AppState>) -> Result<Json<Value>, HttpError> {
    let (all, healthy) = pool(&state).await?;
    let replicas = state.config.workers.replicas;
    let workers: Vec<Value> = all
        .iter()
        .map(|w| {
            json!({
                "workerId": w.worker_id,
                "region": w.region,
                "capacity": w.capacity,
                "healthy": healthy.contains(&w.worker_id),
                "lastSeen": w.last_seen,
            })
        })
        .collect();
    Ok(Json(json!({
        "workers": workers,
        "ring": { "replicas": replicas, "virtualNodes": healthy.len() * replicas, "healthy": healthy.len() },
    })))
}

/// A worker's connection.
pub struct WorkerConn<A: Adapter> {
    record: Mutex<WorkerRecord>,
    state: AppState,
    events: Arc<Serial<A>>,
    _slot: crate::state::AddressSlot,
}

/// A slot of `MAX_CONNECTIONS_PER_IP` for `socket`'s address, or the refusal.
fn address_slot<A: Adapter>(
    socket: &SocketRef<A>,
    state: &AppState,
) -> Result<crate::state::AddressSlot, ConnectRefused> {
    let parts = socket.req_parts();
    let ip = super::address::of(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
    state.limits.slot(ip, state.config.max_connections_per_ip).ok_or_else(|| {
        warn!(?ip, ns = socket.ns(), "connection refused: too many from this address");
        ConnectRefused::TooManyConnections
    })
}

/// Connect middleware of `/workers`: the key, then the worker's description.
pub async fn admit_worker<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), ConnectRefused> {
    let auth = auth.ok();
    let text = |name: &str| auth.as_ref().and_then(|a| a.get(name)).and_then(Value::as_str);
    let slot = address_slot(&socket, &state)?;
    let Some(expected) = &state.config.workers.key else {
        return Err(ConnectRefused::Worker("WORKER_KEY is not set on this server: no worker is admitted".into()));
    };
    let given = text("key").unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.0.as_bytes()) {
        warn!(conn_id = %socket.id, "worker refused: wrong or missing key");
        return Err(ConnectRefused::Worker("wrong or missing worker key".into()));
    }
    let worker_id = text("workerId").filter(|id| id_ok(id)).ok_or_else(|| {
        ConnectRefused::Worker(format!("workerId must be 1 to {MAX_ID} letters, digits, '-', '_', '.' or ':'"))
    })?;
    let region = text("region").unwrap_or("default");
    if region.len() > 64 || region.chars().any(char::is_control) {
        return Err(ConnectRefused::Worker("region must be at most 64 characters".into()));
    }
    let capacity = auth.as_ref().and_then(|a| a.get("capacity")).and_then(Value::as_u64).unwrap_or(100);
    let capacity = u32::try_from(capacity)
        .ok()
        .filter(|c| (1..=1_000_000).contains(c))
        .ok_or_else(|| ConnectRefused::Worker("capacity must be a whole number from 1 to 1000000".into()))?;
    let record = WorkerRecord {
        worker_id: worker_id.to_owned(),
        region: region.to_owned(),
        capacity,
        last_seen: now_ms(),
        instance: state.instance.to_string(),
        conn: ConnId::new(socket.id.as_str()),
    };
    let old = state.workers.put(record.clone()).await.map_err(|e| {
        drop(state.reported(e, "worker connect"));
        ConnectRefused::Unavailable
    })?;
    if let Some(old) = old.filter(|old| old.conn != record.conn) {
        // The same worker on a new connection: the older one goes, wherever it is.
        socket.extensions.insert(Replaced(old));
    }
    info!(conn_id = %socket.id, worker_id, region, capacity, "worker registered");
    let reach = state.reach();
    let conn =
        Arc::new(WorkerConn { record: Mutex::new(record), events: Arc::new(Serial::new(&state)), _slot: slot, state });
    super::serial::attach(&socket, conn, reach);
    Ok(())
}

/// A worker's older connection, to turn out once the new one is connected.
#[derive(Clone)]
struct Replaced(WorkerRecord);

/// Connect handler of `/workers`: turns out the worker's older connection.
pub async fn worker_connected<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, State(state): State<AppState>) {
    let Some(Replaced(old)) = socket.extensions.get::<Replaced>() else { return };
    info!(worker_id = %old.worker_id, old_conn_id = %old.conn, "worker connected again: the older connection is closed");
    super::deliver::turn_out(&io, WORKERS, state.reach(), old.conn.as_str()).await;
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `signal { to, type, data }`, validated: the target and the outgoing event.
fn signal(payload: Option<Value>, from: &str) -> Result<(String, Value), SignalError> {
    let Some(Value::Object(mut map)) = payload else { return Err(PayloadError::NotAnObject.into()) };
    let to = match map.get("to") {
        Some(Value::String(to)) if id_ok(to) => to.clone(),
        Some(_) => return Err(PayloadError::Invalid("to", "must be a worker or client id".into()).into()),
        None => return Err(PayloadError::Missing("to").into()),
    };
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .and_then(SignalKind::parse)
        .ok_or_else(|| PayloadError::Invalid("type", "must be offer, answer or ice-candidate".into()))?;
    let data = map.remove("data").filter(|d| !d.is_null()).ok_or(PayloadError::Missing("data"))?;
    Ok((to, json!({ "from": from, "type": kind, "data": data })))
}

impl<A: Adapter> Handler<A> for WorkerConn<A> {
    type Answer = Value;

    fn serial(&self) -> &Arc<Serial<A>> {
        &self.events
    }

    async fn handle(
        &self,
        _socket: &SocketRef<A>,
        io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> Result<Value, SignalError> {
        let worker_id = self.record.lock().unwrap_or_else(|p| p.into_inner()).worker_id.clone();
        match name {
            "heartbeat" => {
                let record = {
                    let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
                    record.last_seen = now_ms();
                    record.clone()
                };
                let held = self.state.workers.refresh(&record).await;
                if !held.map_err(|e| self.state.reported(e, "worker heartbeat"))? {
                    // Another connection took this worker id over.
                    return Err(crate::domain::RoomError::NotInRoom.into());
                }
                Ok(json!({ "ok": true }))
            }
            "signal" => {
                // A client's id is its `/edge` connection id.
                let (to, out) = signal(payload, &worker_id)?;
                deliver_to(io, &[EDGE], self.state.reach(), &ConnId::new(&to), "signal", &out).await?;
                Ok(json!({ "ok": true }))
            }
            _ => Err(SignalError::UnknownEvent(name.chars().take(64).collect())),
        }
    }

    async fn disconnect(&self, socket: &SocketRef<A>, _io: &SocketIo<A>, reason: DisconnectReason) {
        let id = self.record.lock().unwrap_or_else(|p| p.into_inner()).worker_id.clone();
        if let Err(e) = self.state.workers.remove(&id, &ConnId::new(socket.id.as_str())).await {
            drop(self.state.reported(e, "worker disconnect"));
        }
        info!(conn_id = %socket.id, worker_id = %id, ?reason, "worker left");
    }
}

/// A client's `/edge` connection.
pub struct EdgeConn<A: Adapter> {
    events: Arc<Serial<A>>,
    state: AppState,
    _slot: crate::state::AddressSlot,
}

/// Connect middleware of `/edge`: the client's id is its connection id.
pub async fn admit_client<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
) -> Result<(), ConnectRefused> {
    let slot = address_slot(&socket, &state)?;
    let reach = state.reach();
    super::serial::attach(
        &socket,
        Arc::new(EdgeConn { events: Arc::new(Serial::new(&state)), _slot: slot, state }),
        reach,
    );
    Ok(())
}

/// Connect handler of `/edge`: tells the client its id.
pub async fn welcome_client<A: Adapter>(socket: SocketRef<A>) {
    let _ = socket.emit("welcome", &json!({ "clientId": socket.id.as_str() }));
}

impl<A: Adapter> Handler<A> for EdgeConn<A> {
    type Answer = Value;

    fn serial(&self) -> &Arc<Serial<A>> {
        &self.events
    }

    async fn handle(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> Result<Value, SignalError> {
        match name {
            "signal" => {
                let (to, out) = signal(payload, socket.id.as_str())?;
                let state = &self.state;
                let worker = state.workers.get(&to).await.map_err(|e| state.reported(e, "signal"))?;
                let timeout = state.config.workers.health_timeout.as_millis() as u64;
                let worker = worker.filter(|w| w.healthy(now_ms(), timeout)).ok_or(SignalError::TargetGone)?;
                deliver_to(io, &[WORKERS], state.reach(), &worker.conn, "signal", &out).await?;
                Ok(json!({ "ok": true }))
            }
            _ => Err(SignalError::UnknownEvent(name.chars().take(64).collect())),
        }
    }

    async fn disconnect(&self, _socket: &SocketRef<A>, _io: &SocketIo<A>, _reason: DisconnectReason) {}
}
