//! The worker pool in Redis: `p:w:workers`, a hash of worker id to its JSON
//! record, changed by compare-and-set so an older connection never
//! overwrites or removes its successor's record.

use std::collections::HashMap;

use async_trait::async_trait;
use fred::prelude::*;

use super::WorkerStore;
use crate::domain::ConnId;
use crate::domain::worker::WorkerRecord;
use crate::store::StoreError;
use crate::store::redis::{HashCas, key, unavailable};

/// The pool in Redis, shared by every front server.
pub struct RedisWorkers {
    client: Client,
    key: String,
    cas: HashCas,
}

impl RedisWorkers {
    /// A store over `client` (connected), keys under `prefix`.
    pub fn new(client: Client, prefix: &str) -> Self {
        Self { cas: HashCas::new(client.clone()), client, key: key(prefix, &["w", "workers"]) }
    }

    /// The worker's record as stored and decoded.
    async fn read(&self, worker_id: &str) -> Result<Option<(String, WorkerRecord)>, StoreError> {
        let raw: Option<String> = self.client.hget(&self.key, worker_id).await.map_err(unavailable)?;
        raw.map(|r| serde_json::from_str(&r).map(|w| (r, w)).map_err(corrupt)).transpose()
    }

    /// Replaces the record `read` by `next` ('' deletes) unless it changed meanwhile.
    async fn swap(&self, worker_id: &str, read: String, next: String) -> Result<bool, StoreError> {
        self.cas.swap(&self.key, worker_id, read, next).await
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Unavailable(format!("a worker record in Redis is corrupt: {e}"))
}

#[async_trait]
impl WorkerStore for RedisWorkers {
    async fn put(&self, worker: WorkerRecord) -> Result<Option<WorkerRecord>, StoreError> {
        let old = self.read(&worker.worker_id).await?.map(|(_, w)| w);
        let json = serde_json::to_string(&worker).map_err(corrupt)?;
        let _: () = self.client.hset(&self.key, (worker.worker_id.as_str(), json)).await.map_err(unavailable)?;
        Ok(old)
    }

    async fn refresh(&self, worker: &WorkerRecord) -> Result<bool, StoreError> {
        let json = serde_json::to_string(worker).map_err(corrupt)?;
        match self.read(&worker.worker_id).await? {
            Some((raw, held)) if held.conn == worker.conn => self.swap(&worker.worker_id, raw, json).await,
            Some(_) => Ok(false),
            None => Ok(self.client.hsetnx(&self.key, worker.worker_id.as_str(), json).await.map_err(unavailable)?),
        }
    }

    async fn remove(&self, worker_id: &str, conn: &ConnId) -> Result<bool, StoreError> {
        match self.read(worker_id).await? {
            Some((raw, held)) if &held.conn == conn => self.swap(worker_id, raw, String::new()).await,
            _ => Ok(false),
        }
    }

    async fn get(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        Ok(self.read(worker_id).await?.map(|(_, w)| w))
    }

    async fn all(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let raws: HashMap<String, String> = self.client.hgetall(&self.key).await.map_err(unavailable)?;
        let mut all = raws
            .values()
            .map(|r| serde_json::from_str(r).map_err(corrupt))
            .collect::<Result<Vec<WorkerRecord>, _>>()?;
        all.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(all)
    }

    async fn forget_silent(&self, silent_since: u64) -> Result<Vec<String>, StoreError> {
        let raws: HashMap<String, String> = self.client.hgetall(&self.key).await.map_err(unavailable)?;
        let mut forgotten = Vec::new();
        for (id, raw) in raws {
            let Ok(worker) = serde_json::from_str::<WorkerRecord>(&raw) else {
                // One bad record must not stop the others from being forgotten.
                tracing::warn!(worker_id = %id, "a worker record in Redis is corrupt; left in place");
                continue;
            };
            // The swap fails if the worker heartbeat (or reconnected) since the read.
            if worker.last_seen <= silent_since && self.swap(&id, raw, String::new()).await? {
                forgotten.push(id);
            }
        }
        forgotten.sort();
        Ok(forgotten)
    }
}
