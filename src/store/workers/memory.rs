//! The worker pool in this process's memory (one instance).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::WorkerStore;
use crate::domain::ConnId;
use crate::domain::worker::WorkerRecord;
use crate::store::StoreError;

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

    async fn remove(&self, worker_id: &str, conn: &ConnId) -> Result<bool, StoreError> {
        let mut workers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if workers.get(worker_id).is_some_and(|w| &w.conn == conn) {
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
