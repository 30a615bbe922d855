//! Worker routing (seed 002): workers register and heartbeat; a client is
//! assigned its worker by a consistent-hash ring over the healthy workers,
//! keyed by its address; clients and workers then signal each other through
//! the server until their WebRTC connection is up. The pool is in the worker
//! store (Redis in a cluster), so every front server computes the same ring.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::info;

use super::event::Event;
use super::{Core, CoreError};
use crate::domain::ConnId;
use crate::domain::now_ms;
use crate::domain::ring::Ring;
use crate::domain::signal::SignalKind;
use crate::domain::worker::WorkerRecord;

/// The ring over the healthy workers, rebuilt only when that set changes.
#[derive(Default)]
pub struct RingCache {
    ring: Mutex<Arc<Ring>>,
    /// Bootstrap answers given by this instance.
    bootstraps: AtomicU64,
}

impl RingCache {
    fn ring(&self, healthy: &[String], replicas: usize) -> Arc<Ring> {
        let mut cached = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if cached.workers() != healthy {
            *cached = Arc::new(Ring::new(healthy, replicas));
        }
        cached.clone()
    }
}

/// Every worker, and which are healthy now.
pub struct Pool {
    /// Every registered worker, by id.
    pub all: Vec<WorkerRecord>,
    /// The ids of the healthy ones.
    pub healthy: Vec<String>,
}

/// The ring's size now, for `/health` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RingFigures {
    /// Registered workers.
    pub workers: usize,
    /// Healthy workers (on the ring).
    pub healthy: usize,
    /// Points on the ring.
    pub virtual_nodes: usize,
}

/// The worker operations (a view over [`Core`]).
pub struct Workers<'a>(pub(super) &'a Arc<Core>);

impl Workers<'_> {
    /// The pool and which workers are healthy now.
    pub async fn pool(&self) -> Result<Pool, CoreError> {
        let core = self.0;
        let all = core.stores.workers.all().await.map_err(|e| core.reported(e, "workers"))?;
        let timeout = core.config.workers.health_timeout.as_millis() as u64;
        let now = now_ms();
        let healthy = all.iter().filter(|w| w.healthy(now, timeout)).map(|w| w.worker_id.clone()).collect();
        Ok(Pool { all, healthy })
    }

    /// The ring's size now.
    pub async fn figures(&self) -> Result<RingFigures, CoreError> {
        let pool = self.pool().await?;
        let virtual_nodes = pool.healthy.len() * self.0.config.workers.replicas;
        Ok(RingFigures { workers: pool.all.len(), healthy: pool.healthy.len(), virtual_nodes })
    }

    /// Bootstrap answers this instance gave.
    pub fn bootstraps(&self) -> u64 {
        self.0.ring.bootstraps.load(Ordering::Relaxed)
    }

    /// The worker for a client at `ip`; `None` with no healthy worker.
    pub async fn assign(&self, ip: IpAddr) -> Result<Option<WorkerRecord>, CoreError> {
        let core = self.0;
        let Pool { all, healthy } = self.pool().await?;
        let ring = core.ring.ring(&healthy, core.config.workers.replicas);
        let Some(id) = ring.get(&ip.to_string()) else { return Ok(None) };
        let worker = all.into_iter().find(|w| w.worker_id == id);
        if worker.is_some() {
            core.ring.bootstraps.fetch_add(1, Ordering::Relaxed);
        }
        Ok(worker)
    }

    /// Registers a worker on its connection; the record of an older
    /// connection of the same id, to turn out.
    pub async fn register(&self, worker: WorkerRecord) -> Result<Option<WorkerRecord>, CoreError> {
        let core = self.0;
        let old = core.stores.workers.put(worker.clone()).await.map_err(|e| core.reported(e, "worker connect"))?;
        info!(conn_id = %worker.conn, worker_id = %worker.worker_id, region = %worker.region,
            capacity = worker.capacity, "worker registered");
        Ok(old.filter(|old| old.conn != worker.conn))
    }

    /// Turns out a worker's older connection, wherever it is.
    pub async fn replaced(&self, old: &WorkerRecord) {
        info!(worker_id = %old.worker_id, old_conn_id = %old.conn, "worker connected again: the older connection is closed");
        self.0.courier.close(&old.conn).await;
    }

    /// A worker's heartbeat: its record refreshed, unless a newer connection holds its id.
    pub async fn heartbeat(&self, worker: &WorkerRecord) -> Result<(), CoreError> {
        let core = self.0;
        let held = core.stores.workers.refresh(worker).await.map_err(|e| core.reported(e, "worker heartbeat"))?;
        if held { Ok(()) } else { Err(CoreError::Replaced) }
    }

    /// The worker's connection closed: it leaves the pool (unless a newer connection holds its id).
    pub async fn leave(&self, worker_id: &str, conn: &ConnId) {
        let core = self.0;
        if let Err(e) = core.stores.workers.remove(worker_id, conn).await {
            drop(core.reported(e, "worker disconnect"));
        }
    }

    /// A worker's signal to a client (its connection id).
    pub async fn to_client(
        &self,
        worker_id: &str,
        client: &ConnId,
        kind: SignalKind,
        data: Value,
    ) -> Result<(), CoreError> {
        let signal = Event::WorkerSignal { from: worker_id.to_owned(), kind, data };
        Ok(self.0.courier.send(client, &signal).await?)
    }

    /// A client's signal to a healthy worker.
    pub async fn to_worker(
        &self,
        client: &ConnId,
        worker_id: &str,
        kind: SignalKind,
        data: Value,
    ) -> Result<(), CoreError> {
        let core = self.0;
        let worker = core.stores.workers.get(worker_id).await.map_err(|e| core.reported(e, "signal"))?;
        let timeout = core.config.workers.health_timeout.as_millis() as u64;
        let worker = worker.filter(|w| w.healthy(now_ms(), timeout)).ok_or(CoreError::TargetGone)?;
        let signal = Event::WorkerSignal { from: client.as_str().to_owned(), kind, data };
        Ok(core.courier.send(&worker.conn, &signal).await?)
    }
}
