//! The worker pool behind one trait (seed 002): every front server reads the
//! same worker set, so every one computes the same ring. Engines:
//! [`MemoryWorkers`] (one instance) and [`RedisWorkers`] (`p:w:workers` hash,
//! worker id to its JSON record). Health is decided by the reader from
//! `last_seen` (Unix ms, passed in), so no clock of Redis's is involved.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use fred::prelude::*;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::redis::{HASH_CAS, key, unavailable};

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    /// Its id (also its name on the ring).
    pub worker_id: String,
    /// Where it runs.
    pub region: String,
    /// How many clients it takes, as it declared.
    pub capacity: u32,
    /// Its last heartbeat (Unix ms).
    pub last_seen: u64,
    /// The front server holding its connection.
    pub instance: String,
    /// Its socket.io connection id there.
    pub conn: String,
}

impl WorkerRecord {
    /// Whether it heartbeat within `timeout_ms` of `now`.
    pub fn healthy(&self, now: u64, timeout_ms: u64) -> bool {
        self.last_seen.saturating_add(timeout_ms) > now
    }
}

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
    async fn remove(&self, worker_id: &str, conn: &str) -> Result<bool, StoreError>;

    /// One worker's record.
    async fn get(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError>;

    /// Every registered worker, by id.
    async fn all(&self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// Forgets the workers silent since `silent_since` (Unix ms) or earlier,
    /// unless refreshed meanwhile; returns their ids.
    async fn forget_silent(&self, silent_since: u64) -> Result<Vec<String>, StoreError>;
}

/// The pool in this process's memory.
#[derive(Default)]
pub struct MemoryWorkers(Mutex<HashMap<String, WorkerRecord>>);

#[async_trait]
impl WorkerStore for MemoryWorkers {
    async fn put(&self, worker: WorkerRecord) -> Result<Option<WorkerRecord>, StoreError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(worker.worker_id.clone(), worker))
    }

    async fn refresh(&self, worker: &WorkerRecord) -> Result<bool, StoreError> {
        let mut workers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match workers.get_mut(&worker.worker_id) {
            Some(held) if held.conn == worker.conn => {
                *held = worker.clone();
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                workers.insert(worker.worker_id.clone(), worker.clone());
                Ok(true)
            }
        }
    }

    async fn remove(&self, worker_id: &str, conn: &str) -> Result<bool, StoreError> {
        let mut workers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if workers.get(worker_id).is_some_and(|w| w.conn == conn) {
            workers.remove(worker_id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn get(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).get(worker_id).cloned())
    }

    async fn all(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let mut all: Vec<_> = self.0.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(all)
    }

    async fn forget_silent(&self, silent_since: u64) -> Result<Vec<String>, StoreError> {
        let mut forgotten = Vec::new();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|id, w| {
            let keep = w.last_seen > silent_since;
            if !keep {
                forgotten.push(id.clone());
            }
            keep
        });
        forgotten.sort();
        Ok(forgotten)
    }
}

/// The pool in Redis, shared by every front server.
pub struct RedisWorkers {
    client: Client,
    key: String,
    cas: fred::types::scripts::Script,
}

impl RedisWorkers {
    /// A store over `client` (connected), keys under `prefix`.
    pub fn new(client: Client, prefix: &str) -> Self {
        Self { client, key: key(prefix, &["w", "workers"]), cas: fred::types::scripts::Script::from_lua(HASH_CAS) }
    }

    /// The worker's record as stored and decoded.
    async fn read(&self, worker_id: &str) -> Result<Option<(String, WorkerRecord)>, StoreError> {
        let raw: Option<String> = self.client.hget(&self.key, worker_id).await.map_err(unavailable)?;
        raw.map(|r| serde_json::from_str(&r).map(|w| (r, w)).map_err(corrupt)).transpose()
    }

    /// Replaces the record `read` by `next` ('' deletes) unless it changed meanwhile.
    async fn swap(&self, worker_id: &str, read: String, next: String) -> Result<bool, StoreError> {
        let args = vec![worker_id.to_owned(), read, next];
        let done: i64 =
            self.cas.evalsha_with_reload(&self.client, vec![self.key.clone()], args).await.map_err(unavailable)?;
        Ok(done == 1)
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

    async fn remove(&self, worker_id: &str, conn: &str) -> Result<bool, StoreError> {
        match self.read(worker_id).await? {
            Some((raw, held)) if held.conn == conn => self.swap(worker_id, raw, String::new()).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisProcess;

    fn worker(id: &str, conn: &str, last_seen: u64) -> WorkerRecord {
        WorkerRecord {
            worker_id: id.into(),
            region: "us-west".into(),
            capacity: 100,
            last_seen,
            instance: "a".into(),
            conn: conn.into(),
        }
    }

    async fn pool(s: &dyn WorkerStore) {
        s.put(worker("w2", "c2", 10)).await.unwrap();
        assert_eq!(s.put(worker("w1", "c1", 10)).await.unwrap(), None);
        assert_eq!(s.put(worker("w1", "c3", 20)).await.unwrap().map(|w| w.conn), Some("c1".into()), "taken over");
        assert!(!s.refresh(&worker("w1", "c1", 30)).await.unwrap(), "the older connection refreshes nothing");
        assert!(!s.remove("w1", "c1").await.unwrap(), "an older connection removes nothing");
        assert!(s.refresh(&worker("w1", "c3", 20)).await.unwrap());
        assert_eq!(s.get("w1").await.unwrap().map(|w| w.conn), Some("c3".into()));
        assert_eq!(s.get("w9").await.unwrap(), None);
        let all = s.all().await.unwrap();
        assert_eq!(
            all.iter().map(|w| (w.worker_id.as_str(), w.last_seen)).collect::<Vec<_>>(),
            [("w1", 20), ("w2", 10)]
        );
        assert!(all[0].healthy(1019, 1000) && !all[0].healthy(1020, 1000));
        assert!(s.remove("w1", "c3").await.unwrap());
        assert_eq!(s.all().await.unwrap().len(), 1);

        // Silent workers are forgotten; one heard from since stays.
        s.put(worker("w3", "c4", 50)).await.unwrap();
        s.put(worker("w4", "c5", 51)).await.unwrap();
        assert_eq!(s.forget_silent(50).await.unwrap(), ["w2", "w3"]);
        assert_eq!(s.all().await.unwrap().iter().map(|w| w.worker_id.as_str()).collect::<Vec<_>>(), ["w4"]);
        assert!(s.forget_silent(50).await.unwrap().is_empty());
        // A forgotten worker that heartbeats again is back.
        assert!(s.refresh(&worker("w3", "c4", 60)).await.unwrap());
        assert_eq!(s.get("w3").await.unwrap().map(|w| w.last_seen), Some(60));
    }

    #[tokio::test]
    async fn memory_keeps_the_pool() {
        pool(&MemoryWorkers::default()).await;
    }

    #[tokio::test]
    async fn redis_keeps_the_pool() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        pool(&RedisWorkers::new(client, "test")).await;
    }
}
