//! The worker pool behind one trait (seed 002): every front server reads the
//! same worker set, so every one computes the same ring. Engines:
//! [`memory::MemoryWorkers`] (one instance) and [`redis::RedisWorkers`]
//! (`p:w:workers` hash, worker id to its JSON record); both pass `suite.rs`.
//! Health is decided by the reader from `last_seen` (Unix ms, passed in;
//! [`WorkerRecord::healthy`]), so no clock of Redis's is involved.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

pub mod memory;
pub mod redis;
#[cfg(test)]
mod suite;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ConnId;
use crate::domain::worker::WorkerRecord;

/// The worker pool: the operations `/workers`, `/bootstrap` and `/edge` need.
#[async_trait]
pub trait WorkerStore: Send + Sync + 'static {
    /// Records a worker (a new connection takes the id over); returns the
    /// record it replaced.
    async fn put(&self, worker: WorkerRecord) -> Result<Option<WorkerRecord>, StoreError>;

    /// Refreshes the worker's record if its connection still holds the id,
    /// or puts it back if it was forgotten meanwhile; false if another
    /// connection holds the id.
    async fn refresh(&self, worker: &WorkerRecord) -> Result<bool, StoreError>;

    /// Removes the worker if `conn` still holds it; whether it did.
    async fn remove(&self, worker_id: &str, conn: &ConnId) -> Result<bool, StoreError>;

    /// One worker's record.
    async fn get(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError>;

    /// Every registered worker, by id.
    async fn all(&self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// Forgets the workers silent since `silent_since` (Unix ms) or earlier,
    /// unless refreshed meanwhile; returns their ids.
    async fn forget_silent(&self, silent_since: u64) -> Result<Vec<String>, StoreError>;
}
