//! PeerJS ids and queues in this process (one instance).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Claim, Expired, Holder, PeerStore};
use crate::domain::ConnId;
use crate::domain::peerjs::{PeerId, Waiting};
use crate::store::StoreError;

/// The ids and their queues, under one lock each.
#[derive(Default)]
pub struct MemoryPeers {
    ids: Mutex<HashMap<PeerId, Holder>>,
    queues: Mutex<HashMap<PeerId, VecDeque<Waiting>>>,
}

impl MemoryPeers {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl PeerStore for MemoryPeers {
    async fn claim(&self, id: &PeerId, holder: &Holder, limit: usize) -> Result<Claim, StoreError> {
        let mut ids = lock(&self.ids);
        let claim = match ids.get(id) {
            Some(held) if held.token != holder.token => return Ok(Claim::Taken),
            Some(held) => Claim::TookOver(held.conn.clone()),
            None if ids.len() >= limit => return Ok(Claim::Full),
            None => Claim::Opened,
        };
        ids.insert(id.clone(), holder.clone());
        Ok(claim)
    }

    async fn restore(&self, id: &PeerId, holder: &Holder) -> Result<bool, StoreError> {
        let mut ids = lock(&self.ids);
        Ok(&*ids.entry(id.clone()).or_insert_with(|| holder.clone()) == holder)
    }

    async fn release(&self, id: &PeerId, conn: &ConnId) -> Result<bool, StoreError> {
        let mut ids = lock(&self.ids);
        if ids.get(id).is_some_and(|h| &h.conn == conn) {
            ids.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn holder(&self, id: &PeerId) -> Result<Option<Holder>, StoreError> {
        Ok(lock(&self.ids).get(id).cloned())
    }

    async fn ids(&self) -> Result<Vec<PeerId>, StoreError> {
        Ok(lock(&self.ids).keys().cloned().collect())
    }

    async fn enqueue(&self, waiting: &Waiting, max: usize, keep: Duration) -> Result<bool, StoreError> {
        let _ = keep;
        let mut queues = lock(&self.queues);
        let queue = queues.entry(waiting.message.dst.clone()).or_default();
        if queue.len() >= max {
            return Ok(false);
        }
        queue.push_back(waiting.clone());
        Ok(true)
    }

    async fn take(&self, dst: &PeerId) -> Result<Vec<Waiting>, StoreError> {
        Ok(lock(&self.queues).remove(dst).map(Vec::from).unwrap_or_default())
    }

    async fn expire(&self, dst: &PeerId, cutoff: u64) -> Result<Expired, StoreError> {
        let mut queues = lock(&self.queues);
        let Some(oldest) = queues.get(dst).and_then(|q| q.front()).map(|w| w.at) else {
            return Ok(Expired::Empty);
        };
        if oldest > cutoff {
            return Ok(Expired::Since(oldest));
        }
        Ok(Expired::Taken(queues.remove(dst).map(Vec::from).unwrap_or_default()))
    }
}
