//! Device presence and queued signals behind one trait (seed 004), so the
//! transport never knows where they live. Engines: [`MemoryDevices`] here (one
//! instance, the default); both apply the rules of
//! [`crate::domain::presence`] and [`crate::domain::signal`], and time is
//! always passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::StoreError;
use crate::domain::ConnId;
use crate::domain::UserId;
use crate::domain::presence::{self, AnnounceError, Announcement, Device, DeviceId, NetworkId};
use crate::domain::rate::KeyedLimits;
use crate::domain::signal::{Expired, Notice, Outgoing, Queued};

/// Why a device store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStoreError {
    /// A presence rule refused the announcement.
    #[error(transparent)]
    Rule(#[from] AnnounceError),
    /// The receiver has this many signals waiting already.
    #[error("{0} signals are waiting for this device already, the most kept")]
    QueueFull(usize),
    /// The backing store cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a device's live `/devices` connection is: an instance and a connection on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance holding the connection (`local` with the memory store).
    pub instance: Arc<str>,
    /// The socket.io connection id.
    pub conn: ConnId,
}

/// The answer to "where is this user's device in this network?".
#[derive(Clone, Debug, PartialEq)]
pub enum PeerLookup {
    /// An online device of the user (the most recently seen).
    Online(Device),
    /// None online: when the user was last seen, if ever, and the network's
    /// coordinators seen within the last hour, for fallback routing.
    Offline {
        /// The user's last announcement in this network, if the record is kept.
        last_seen: Option<SystemTime>,
        /// Coordinator devices seen within [`presence::RETENTION`], most recent first.
        last_coordinators: Vec<DeviceId>,
    },
}

/// What one presence sweep changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// Devices marked offline.
    pub went_offline: Vec<DeviceId>,
    /// Records deleted after [`presence::RETENTION`].
    pub deleted: usize,
}

/// Figures for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresenceStats {
    /// Online devices.
    pub active_devices: usize,
    /// Networks with at least one online device.
    pub active_networks: usize,
    /// Online coordinators per network with online devices.
    pub coordinators: Vec<(NetworkId, usize)>,
    /// Signals waiting in queues.
    pub queued_signals: usize,
}

/// Where `user` is among the devices of one network at `now` (expired
/// records do not count): [`DeviceStore::find_user`] for every engine.
pub(super) fn lookup<'a>(
    in_network: impl Iterator<Item = &'a Device>,
    user: &UserId,
    now: SystemTime,
    ttl: Duration,
) -> PeerLookup {
    let in_network: Vec<&Device> = in_network.filter(|d| !d.is_expired(now)).collect();
    let mine: Vec<&Device> = in_network.iter().copied().filter(|d| &d.user == user).collect();
    if let Some(online) =
        mine.iter().filter(|d| d.online && !d.is_stale(now, ttl)).max_by_key(|d| (d.last_seen, d.id.clone()))
    {
        return PeerLookup::Online((*online).clone());
    }
    let mut coordinators: Vec<&Device> = in_network.into_iter().filter(|d| d.coordinator).collect();
    coordinators.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
    PeerLookup::Offline {
        last_seen: mine.iter().map(|d| d.last_seen).max(),
        last_coordinators: coordinators.into_iter().map(|d| d.id.clone()).collect(),
    }
}

/// [`PresenceStats`] over every device record and the number of queued signals.
pub(super) fn stats<'a>(devices: impl Iterator<Item = &'a Device>, queued_signals: usize) -> PresenceStats {
    let mut networks: std::collections::BTreeMap<NetworkId, usize> = Default::default();
    let mut active_devices = 0;
    for d in devices.filter(|d| d.online) {
        active_devices += 1;
        *networks.entry(d.network.clone()).or_default() += usize::from(d.coordinator);
    }
    PresenceStats {
        active_devices,
        active_networks: networks.len(),
        coordinators: networks.into_iter().collect(),
        queued_signals,
    }
}

/// Presence and queues: the operations the transport and the jobs need.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Records an announcement at `now` (upsert).
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, DeviceStoreError>;

    /// One device's record.
    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, DeviceStoreError>;

    /// The devices of `network` online at `now` (announced within `ttl`),
    /// earliest first.
    async fn peers(&self, network: &NetworkId, now: SystemTime, ttl: Duration)
    -> Result<Vec<Device>, DeviceStoreError>;

    /// Where `user`'s device in `network` is, or the fallback coordinators.
    async fn find_user(
        &self,
        network: &NetworkId,
        user: &UserId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<PeerLookup, DeviceStoreError>;

    /// Marks devices silent for `ttl` offline and deletes records past retention.
    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, DeviceStoreError>;

    /// Promotes, in every network, exactly the devices missing for `min`
    /// online coordinators; returns the promoted devices.
    async fn promote(&self, min: usize) -> Result<Vec<Device>, DeviceStoreError>;

    /// Figures for `/metrics`.
    async fn stats(&self) -> Result<PresenceStats, DeviceStoreError>;

    /// Queues `signal` for its receiver at `now`, unless `max` are waiting
    /// already ([`DeviceStoreError::QueueFull`]); ids increase per receiver.
    async fn enqueue(&self, signal: Outgoing, now: SystemTime, max: usize) -> Result<Queued, DeviceStoreError>;

    /// The receiver's queue, oldest first, left in place.
    async fn pending(&self, to: &DeviceId) -> Result<Vec<Queued>, DeviceStoreError>;

    /// Removes the receiver's signals with an id up to `up_to` and returns
    /// them, oldest first (at once: two callers never both get one).
    async fn ack(&self, to: &DeviceId, up_to: u64) -> Result<Vec<Queued>, DeviceStoreError>;

    /// Removes one signal (the device confirmed it); whether it was there.
    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, DeviceStoreError>;

    /// Removes queued signals older than `ttl`, files a [`Notice`] for each
    /// sender, drops notices older than [`NOTICE_RETENTION`] past their
    /// signal's expiry, and returns what expired now.
    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, DeviceStoreError>;

    /// The notices waiting for `sender`, oldest first, left in place.
    async fn notices(&self, sender: &DeviceId) -> Result<Vec<Notice>, DeviceStoreError>;

    /// Removes one notice (the sender confirmed it); whether it was there.
    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, DeviceStoreError>;

    /// Records `at` as the device's one live connection; returns the one it
    /// replaces, if that is still live (its instance alive).
    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, DeviceStoreError>;

    /// Forgets the device's connection if it is still `at`; whether it was.
    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, DeviceStoreError>;

    /// The device's live connection: registered, on an instance that is alive.
    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, DeviceStoreError>;

    /// Takes or renews the lease `name` for `holder` for `ttl`; whether
    /// `holder` holds it now. One holder at a time, cluster-wide.
    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, DeviceStoreError>;

    /// Counts one announcement of `device` by `user` against `limit`
    /// (`max` per `window`: a burst of `max`, then one every `window / max`),
    /// cluster-wide; `Some(wait)` when refused, counting nothing.
    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        limit: (u32, Duration),
    ) -> Result<Option<Duration>, DeviceStoreError>;

    /// Tells whichever instance holds `device`'s connection that it has mail.
    async fn wake(&self, device: &DeviceId) -> Result<(), DeviceStoreError>;

    /// Devices woken by [`DeviceStore::wake`] on any instance, and
    /// [`Wake::All`] when some may have been missed (a lagging receiver should
    /// take that as `All` too).
    fn wakes(&self) -> broadcast::Receiver<Wake>;
}

/// A wake-up from [`DeviceStore::wakes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// This device has mail.
    Device(DeviceId),
    /// Wake-ups may have been lost (a reconnection to Redis): every device may have mail.
    All,
}

/// Capacity of the wake channel; a receiver that lags re-reads every queue.
pub const WAKE_CAPACITY: usize = 4096;

/// Presence and queues in this process's memory.
pub struct MemoryDevices {
    state: Mutex<State>,
    wakes: broadcast::Sender<Wake>,
    announcements: KeyedLimits<(UserId, DeviceId)>,
}

#[derive(Default)]
struct State {
    devices: HashMap<DeviceId, Device>,
    queues: HashMap<DeviceId, VecDeque<Queued>>,
    next_id: HashMap<DeviceId, u64>,
    notices: HashMap<DeviceId, VecDeque<Notice>>,
    next_notice: HashMap<DeviceId, u64>,
    endpoints: HashMap<DeviceId, Endpoint>,
}

impl Default for MemoryDevices {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            wakes: broadcast::channel(WAKE_CAPACITY).0,
            announcements: KeyedLimits::default(),
        }
    }
}

impl MemoryDevices {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
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

/// Orders devices by first announcement, then id.
pub(super) fn earliest_first(devices: &mut [Device]) {
    devices.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
}

#[async_trait]
impl DeviceStore for MemoryDevices {
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, DeviceStoreError> {
        let mut state = self.lock();
        let current = state.devices.get(&a.device).filter(|d| !d.is_expired(now));
        let device = Device::announce(current, a, now)?;
        state.devices.insert(device.id.clone(), device.clone());
        Ok(device)
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, DeviceStoreError> {
        Ok(self.lock().devices.get(id).cloned())
    }

    async fn peers(
        &self,
        network: &NetworkId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Vec<Device>, DeviceStoreError> {
        let state = self.lock();
        let mut peers: Vec<Device> = state
            .devices
            .values()
            .filter(|d| &d.network == network && d.online && !d.is_stale(now, ttl))
            .cloned()
            .collect();
        earliest_first(&mut peers);
        Ok(peers)
    }

    async fn find_user(
        &self,
        network: &NetworkId,
        user: &UserId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<PeerLookup, DeviceStoreError> {
        let state = self.lock();
        let in_network = state.devices.values().filter(|d| &d.network == network);
        Ok(lookup(in_network, user, now, ttl))
    }

    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, DeviceStoreError> {
        let mut state = self.lock();
        let mut sweep = Sweep::default();
        for device in state.devices.values_mut().filter(|d| d.is_stale(now, ttl)) {
            device.go_offline();
            sweep.went_offline.push(device.id.clone());
        }
        sweep.went_offline.sort();
        let before = state.devices.len();
        state.devices.retain(|_, d| !d.is_expired(now));
        sweep.deleted = before - state.devices.len();
        Ok(sweep)
    }

    async fn promote(&self, min: usize) -> Result<Vec<Device>, DeviceStoreError> {
        let mut state = self.lock();
        let mut networks: HashMap<NetworkId, Vec<Device>> = HashMap::new();
        for d in state.devices.values().filter(|d| d.online) {
            networks.entry(d.network.clone()).or_default().push(d.clone());
        }
        let mut promoted = Vec::new();
        for devices in networks.values() {
            for id in presence::promotions(devices, min) {
                if let Some(d) = state.devices.get_mut(&id) {
                    d.promote();
                    promoted.push(d.clone());
                }
            }
        }
        earliest_first(&mut promoted);
        Ok(promoted)
    }

    async fn stats(&self) -> Result<PresenceStats, DeviceStoreError> {
        let state = self.lock();
        Ok(stats(state.devices.values(), state.queues.values().map(VecDeque::len).sum()))
    }

    async fn enqueue(&self, signal: Outgoing, now: SystemTime, max: usize) -> Result<Queued, DeviceStoreError> {
        let mut state = self.lock();
        if state.queues.get(&signal.to).map_or(0, VecDeque::len) >= max {
            return Err(DeviceStoreError::QueueFull(max));
        }
        let next = state.next_id.entry(signal.to.clone()).or_insert(0);
        *next += 1;
        let queued = Queued { id: *next, signal, queued_at: now };
        state.queues.entry(queued.signal.to.clone()).or_default().push_back(queued.clone());
        Ok(queued)
    }

    async fn pending(&self, to: &DeviceId) -> Result<Vec<Queued>, DeviceStoreError> {
        Ok(self.lock().queues.get(to).map(|q| q.iter().cloned().collect()).unwrap_or_default())
    }

    async fn ack(&self, to: &DeviceId, up_to: u64) -> Result<Vec<Queued>, DeviceStoreError> {
        let mut state = self.lock();
        let Some(queue) = state.queues.get_mut(to) else { return Ok(Vec::new()) };
        let kept = queue.split_off(queue.partition_point(|q| q.id <= up_to));
        let removed = std::mem::replace(queue, kept).into();
        if queue.is_empty() {
            state.queues.remove(to);
        }
        Ok(removed)
    }

    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, DeviceStoreError> {
        Ok(remove_entry(&mut self.lock().queues, to, |q| q.id == id))
    }

    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, DeviceStoreError> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut expired = Vec::new();
        for queue in state.queues.values_mut() {
            while queue.front().is_some_and(|q| q.is_expired(now, ttl)) {
                expired.extend(queue.pop_front().as_ref().map(Expired::from));
            }
        }
        state.queues.retain(|_, q| !q.is_empty());
        for notices in state.notices.values_mut() {
            notices.retain(|n| !n.is_past_retention(now, ttl));
        }
        for e in &expired {
            let next = state.next_notice.entry(e.sender.clone()).or_insert(0);
            *next += 1;
            let notice = Notice { id: *next, expired: e.clone() };
            state.notices.entry(e.sender.clone()).or_default().push_back(notice);
        }
        state.notices.retain(|_, n| !n.is_empty());
        Ok(expired)
    }

    async fn notices(&self, sender: &DeviceId) -> Result<Vec<Notice>, DeviceStoreError> {
        Ok(self.lock().notices.get(sender).map(|n| n.iter().cloned().collect()).unwrap_or_default())
    }

    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, DeviceStoreError> {
        Ok(remove_entry(&mut self.lock().notices, sender, |n| n.id == id))
    }

    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, DeviceStoreError> {
        Ok(self.lock().endpoints.insert(device.clone(), at))
    }

    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, DeviceStoreError> {
        let mut state = self.lock();
        if state.endpoints.get(device) == Some(at) {
            state.endpoints.remove(device);
            return Ok(true);
        }
        Ok(false)
    }

    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, DeviceStoreError> {
        Ok(self.lock().endpoints.get(device).cloned())
    }

    async fn lease(&self, _name: &str, _holder: &str, _ttl: Duration) -> Result<bool, DeviceStoreError> {
        // One process: it always holds its own jobs.
        Ok(true)
    }

    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        (max, window): (u32, Duration),
    ) -> Result<Option<Duration>, DeviceStoreError> {
        let rate = f64::from(max) / window.as_secs_f64();
        let key = (user.clone(), device.clone());
        Ok(self.announcements.take(&key, Instant::now(), rate, f64::from(max)).err())
    }

    async fn wake(&self, device: &DeviceId) -> Result<(), DeviceStoreError> {
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
    crate::device_store_suite!(async { (super::MemoryDevices::new(), ()) });
}
