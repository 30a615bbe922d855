//! The device engines in this process's memory (one instance): each concern
//! its own struct behind its own lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{AnnounceFailure, Endpoint, Endpoints, EnqueueFailure, Presence, Queues, Sweep, WAKE_CAPACITY, Wake};
use crate::domain::UserId;
use crate::domain::presence::{
    self, Announcement, Device, DeviceId, NetworkId, PeerLookup, PresenceStats, earliest_first,
};
use crate::domain::rate::KeyedLimits;
use crate::domain::signal::{Expired, Notice, Outgoing, Queued};
use crate::store::StoreError;

/// Every critical section leaves the maps consistent, so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Device records and the announcement limit.
#[derive(Default)]
pub struct MemoryPresence {
    devices: Mutex<HashMap<DeviceId, Device>>,
    announcements: KeyedLimits<(UserId, DeviceId)>,
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, AnnounceFailure> {
        let mut devices = lock(&self.devices);
        let current = devices.get(&a.device).filter(|d| !d.is_expired(now));
        let device = Device::announce(current, a, now)?;
        devices.insert(device.id.clone(), device.clone());
        Ok(device)
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        Ok(lock(&self.devices).get(id).cloned())
    }

    async fn peers(&self, network: &NetworkId, now: SystemTime, ttl: Duration) -> Result<Vec<Device>, StoreError> {
        let devices = lock(&self.devices);
        let online = devices.values().filter(|d| &d.network == network && d.online && !d.is_stale(now, ttl));
        let mut peers: Vec<Device> = online.cloned().collect();
        earliest_first(&mut peers);
        Ok(peers)
    }

    async fn find_user(
        &self,
        network: &NetworkId,
        user: &UserId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<PeerLookup, StoreError> {
        let devices = lock(&self.devices);
        Ok(presence::lookup(devices.values().filter(|d| &d.network == network), user, now, ttl))
    }

    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, StoreError> {
        let mut devices = lock(&self.devices);
        let mut sweep = Sweep::default();
        for device in devices.values_mut().filter(|d| d.is_stale(now, ttl)) {
            device.go_offline();
            sweep.went_offline.push(device.id.clone());
        }
        sweep.went_offline.sort();
        let before = devices.len();
        devices.retain(|_, d| !d.is_expired(now));
        sweep.deleted = before - devices.len();
        Ok(sweep)
    }

    async fn promote(&self, min: usize) -> Result<Vec<Device>, StoreError> {
        let mut devices = lock(&self.devices);
        let mut networks: HashMap<NetworkId, Vec<Device>> = HashMap::new();
        for d in devices.values().filter(|d| d.online) {
            networks.entry(d.network.clone()).or_default().push(d.clone());
        }
        let mut promoted = Vec::new();
        for in_network in networks.values() {
            for id in presence::promotions(in_network, min) {
                if let Some(d) = devices.get_mut(&id) {
                    d.promote();
                    promoted.push(d.clone());
                }
            }
        }
        earliest_first(&mut promoted);
        Ok(promoted)
    }

    async fn stats(&self) -> Result<PresenceStats, StoreError> {
        Ok(presence::stats(lock(&self.devices).values()))
    }

    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        (max, window): (u32, Duration),
    ) -> Result<Option<Duration>, StoreError> {
        let rate = f64::from(max) / window.as_secs_f64();
        let key = (user.clone(), device.clone());
        Ok(self.announcements.take(&key, Instant::now(), rate, f64::from(max)).err())
    }
}

/// Queues and notices, each list numbered per owner.
#[derive(Default)]
pub struct MemoryQueues(Mutex<Lists>);

#[derive(Default)]
struct Lists {
    queues: HashMap<DeviceId, VecDeque<Queued>>,
    next_id: HashMap<DeviceId, u64>,
    notices: HashMap<DeviceId, VecDeque<Notice>>,
    next_notice: HashMap<DeviceId, u64>,
}

/// Removes the entry of `owner`'s list matching `is`, dropping the list once
/// empty; whether there was one.
fn remove_entry<T>(lists: &mut HashMap<DeviceId, VecDeque<T>>, owner: &DeviceId, is: impl Fn(&T) -> bool) -> bool {
    let Some(list) = lists.get_mut(owner) else { return false };
    let before = list.len();
    list.retain(|entry| !is(entry));
    let removed = before != list.len();
    if list.is_empty() {
        lists.remove(owner);
    }
    removed
}

#[async_trait]
impl Queues for MemoryQueues {
    async fn enqueue(&self, signal: Outgoing, now: SystemTime, max: usize) -> Result<Queued, EnqueueFailure> {
        let mut lists = lock(&self.0);
        if lists.queues.get(&signal.to).map_or(0, VecDeque::len) >= max {
            return Err(EnqueueFailure::Full(max));
        }
        let next = lists.next_id.entry(signal.to.clone()).or_insert(0);
        *next += 1;
        let queued = Queued { id: *next, signal, queued_at: now };
        lists.queues.entry(queued.signal.to.clone()).or_default().push_back(queued.clone());
        Ok(queued)
    }

    async fn pending(&self, to: &DeviceId) -> Result<Vec<Queued>, StoreError> {
        Ok(lock(&self.0).queues.get(to).map(|q| q.iter().cloned().collect()).unwrap_or_default())
    }

    async fn ack(&self, to: &DeviceId, up_to: u64) -> Result<Vec<Queued>, StoreError> {
        let mut lists = lock(&self.0);
        let Some(queue) = lists.queues.get_mut(to) else { return Ok(Vec::new()) };
        let kept = queue.split_off(queue.partition_point(|q| q.id <= up_to));
        let removed = std::mem::replace(queue, kept).into();
        if queue.is_empty() {
            lists.queues.remove(to);
        }
        Ok(removed)
    }

    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, StoreError> {
        Ok(remove_entry(&mut lock(&self.0).queues, to, |q| q.id == id))
    }

    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, StoreError> {
        let mut lists = lock(&self.0);
        let lists = &mut *lists;
        let mut expired = Vec::new();
        for queue in lists.queues.values_mut() {
            while queue.front().is_some_and(|q| q.is_expired(now, ttl)) {
                expired.extend(queue.pop_front().as_ref().map(Expired::from));
            }
        }
        lists.queues.retain(|_, q| !q.is_empty());
        for notices in lists.notices.values_mut() {
            notices.retain(|n| !n.is_past_retention(now, ttl));
        }
        for e in &expired {
            let next = lists.next_notice.entry(e.sender.clone()).or_insert(0);
            *next += 1;
            let notice = Notice { id: *next, expired: e.clone() };
            lists.notices.entry(e.sender.clone()).or_default().push_back(notice);
        }
        lists.notices.retain(|_, n| !n.is_empty());
        Ok(expired)
    }

    async fn notices(&self, sender: &DeviceId) -> Result<Vec<Notice>, StoreError> {
        Ok(lock(&self.0).notices.get(sender).map(|n| n.iter().cloned().collect()).unwrap_or_default())
    }

    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, StoreError> {
        Ok(remove_entry(&mut lock(&self.0).notices, sender, |n| n.id == id))
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        Ok(lock(&self.0).queues.values().map(VecDeque::len).sum())
    }
}

/// Live connections, and wake-ups within this process.
pub struct MemoryEndpoints {
    endpoints: Mutex<HashMap<DeviceId, Endpoint>>,
    wakes: broadcast::Sender<Wake>,
}

impl Default for MemoryEndpoints {
    fn default() -> Self {
        Self { endpoints: Mutex::default(), wakes: broadcast::channel(WAKE_CAPACITY).0 }
    }
}

#[async_trait]
impl Endpoints for MemoryEndpoints {
    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, StoreError> {
        Ok(lock(&self.endpoints).insert(device.clone(), at))
    }

    async fn restore(&self, device: &DeviceId, at: Endpoint) -> Result<bool, StoreError> {
        let mut endpoints = lock(&self.endpoints);
        if endpoints.contains_key(device) {
            return Ok(false);
        }
        endpoints.insert(device.clone(), at);
        Ok(true)
    }

    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, StoreError> {
        let mut endpoints = lock(&self.endpoints);
        if endpoints.get(device) == Some(at) {
            endpoints.remove(device);
            return Ok(true);
        }
        Ok(false)
    }

    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, StoreError> {
        Ok(lock(&self.endpoints).get(device).cloned())
    }

    async fn wake(&self, device: &DeviceId) -> Result<(), StoreError> {
        // No receiver (nobody connected yet) is not an error.
        let _ = self.wakes.send(Wake::Device(device.clone()));
        Ok(())
    }

    fn wakes(&self) -> broadcast::Receiver<Wake> {
        self.wakes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    crate::device_store_suite!(async { (super::super::Devices::memory(), ()) });
}
