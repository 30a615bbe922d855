//! Worker routing (seed 002): workers register on `/workers` with the shared
//! `WORKER_KEY` and heartbeat; clients ask `POST /bootstrap` for their worker
//! ([`rest`]) and then signal it through `/edge` ([`edge`]) until their WebRTC
//! connection is up; the core keeps the pool and the ring
//! ([`crate::core::workers`]). The reference is `docs/protocol/workers.md`.
//!
//! `/workers` handshake auth `{ key, workerId, region, capacity }`; events
//! `heartbeat`, and `signal { to, type, data }` to a client (which gets
//! `signal { from, type, data }`, `from` the worker id). A worker id
//! connecting again turns its older connection out.
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

pub mod edge;
pub mod rest;
pub mod wire;

use std::sync::{Arc, Mutex};

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::wire::{Answer, WorkerEvent};
use crate::core::Core;
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::domain::worker::{self, WorkerRecord};
use crate::domain::{ConnId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::{Credential, Handshake, admit};
use crate::transport::conn::sio::{self, Abandoned, Conn, Handle, Namespace, public_id};
use crate::transport::wire::error::{Refused, SignalError};

/// Where workers connect.
pub const PATH: &str = "/workers";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(admission));
}

/// A worker's connection: its id and its record (refreshed by heartbeats).
pub struct WorkerConn {
    /// The record's `worker_id`, which never changes: read without the lock.
    id: String,
    record: Mutex<WorkerRecord>,
}

/// Connect middleware: the key, then the worker's description, then it joins the pool.
async fn admission(
    Handle(socket): Handle,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let auth = auth.ok();
    let admitted = admit(&state, &Handshake { parts: socket.req_parts(), auth: auth.as_ref() }, Credential::WorkerKey)?;
    let record = describe(auth.as_ref(), &state, public_id(socket.ns(), socket.id.as_str()))?;
    let replaced = state.core.workers().register(record.clone()).await?;
    if let Some(old) = replaced {
        sio::hand_off(&socket, old);
    }
    let conn = WorkerConn { id: record.worker_id.clone(), record: Mutex::new(record) };
    sio::attach(&socket, &state, admitted, conn);
    Ok(())
}

/// The worker's record from its handshake: `workerId`, `region`, `capacity`.
fn describe(auth: Option<&Value>, state: &AppState, conn: ConnId) -> Result<WorkerRecord, Refused> {
    let text = |name: &str| auth.and_then(|a| a.get(name)).and_then(Value::as_str);
    let worker_id = text("workerId").filter(|id| worker::valid_id(id)).ok_or_else(|| {
        Refused::Invalid(
            "workerId",
            format!("must be 1 to {} letters, digits, '-', '_', '.' or ':'", worker::MAX_WORKER_ID),
        )
    })?;
    let region = text("region").unwrap_or("default");
    if region.len() > 64 || region.chars().any(char::is_control) {
        return Err(Refused::Invalid("region", "must be at most 64 characters".into()));
    }
    let capacity = auth.and_then(|a| a.get("capacity")).and_then(Value::as_u64).unwrap_or(100);
    let capacity = u32::try_from(capacity)
        .ok()
        .filter(|c| (1..=1_000_000).contains(c))
        .ok_or_else(|| Refused::Invalid("capacity", "must be a whole number from 1 to 1000000".into()))?;
    Ok(WorkerRecord {
        worker_id: worker_id.to_owned(),
        region: region.to_owned(),
        capacity,
        last_seen: now_ms(),
        instance: state.core.instance.to_string(),
        conn,
    })
}

/// Connect handler: turns out the worker's older connection.
async fn connected(socket: SocketRef, State(state): State<AppState>) {
    if let Some(old) = sio::take_hand_off::<WorkerRecord>(&socket) {
        state.core.workers().replaced(&old).await;
    }
}

impl Namespace for WorkerConn {
    const PATH: &'static str = PATH;
    type Event = WorkerEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &WorkerEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        let workers = conn.core.workers();
        match event {
            WorkerEvent::Heartbeat => {
                let record = {
                    let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
                    record.last_seen = now_ms();
                    record.clone()
                };
                workers.heartbeat(&record).await?;
            }
            WorkerEvent::Signal => {
                // A client's id is its `/edge` connection id.
                let req = wire::signal_request(data)?;
                workers.to_client(&self.id, &ConnId::new(&req.to), req.kind, req.data).await?;
            }
            WorkerEvent::Unknown(name) => return Err(SignalError::UnknownEvent(name.clone())),
        }
        Ok(Answer { ok: true })
    }

    async fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) {
        conn.core.workers().leave(&self.id, conn.id()).await;
        info!(conn_id = %conn.id(), worker_id = %self.id, ?reason, "worker left");
    }

    fn abandoned(&self, id: &ConnId, core: &Arc<Core>) -> Option<Abandoned> {
        let (core, worker, conn) = (core.clone(), self.id.clone(), id.clone());
        Some(Box::pin(async move { core.workers().leave(&worker, &conn).await }))
    }

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }
}
