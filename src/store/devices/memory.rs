//! The device engines in this process's memory (one instance): each concern
//! its own struct behind its own lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use super::memory_queues::MemoryQueues;
use super::{AnnounceFailure, Endpoint, Endpoints, Presence, Sweep, WAKE_CAPACITY, Wake};
use crate::domain::UserId;
use crate::domain::presence::{
    self, Announcement, Device, DeviceId, NetworkId, PeerLookup, PresenceStats, earliest_first,
};
use crate::domain::rate::KeyedLimits;
use crate::store::StoreError;

/// Every critical section leaves the maps consistent, so a poisoned lock is used as is.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
