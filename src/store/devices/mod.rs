//! Devices (seed 004) behind three traits, one per concern, so nothing above
//! knows where they live:
//! - [`Presence`]: announcements, discovery, the sweep, coordinator
//!   promotion, the announcement limit;
//! - [`Queues`]: the signals waiting for a device, and the expiry notices
//!   waiting for their senders;
//! - [`Endpoints`]: each device's one live connection, and the wake-ups that
//!   tell its instance it has mail.
//!
//! [`Devices`] bundles one engine of each. Engines: [`memory`] (one instance,
//! the default) and [`redis`] (a cluster); both pass the suite in `suite/`
//! unchanged and apply the rules of [`crate::domain::presence`] and
//! [`crate::domain::signal`]. Time is always passed in.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

pub mod memory;
mod memory_queues;
pub mod redis;
#[cfg(test)]
pub mod suite;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::StoreError;
use crate::domain::ConnId;
use crate::domain::UserId;
use crate::domain::presence::{AnnounceError, Announcement, Device, DeviceId, NetworkId, PeerLookup, PresenceStats};
use crate::domain::queue::{OverBudget, QueueBudget};
use crate::domain::signal::{Expired, Notice, Outgoing, Queued};

/// Why an announcement was not recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnnounceFailure {
    /// A presence rule refused it.
    #[error(transparent)]
    Rule(#[from] AnnounceError),
    /// The backing store cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a signal was not queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnqueueFailure {
    /// A budget would be passed (see [`QueueBudget`]).
    #[error(transparent)]
    Full(#[from] OverBudget),
    /// The backing store cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a device's live connection is: an instance and a connection on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance holding the connection (`local` with the memory engines).
    pub instance: Arc<str>,
    /// The connection's id.
    pub conn: ConnId,
}

/// What one presence sweep changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// Devices marked offline.
    pub went_offline: Vec<DeviceId>,
    /// Records deleted after [`crate::domain::presence::RETENTION`].
    pub deleted: usize,
}

/// Announcements and discovery.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records an announcement at `now` (upsert).
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, AnnounceFailure>;

    /// One device's record.
    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError>;

    /// The devices of `network` online at `now` (announced within `ttl`), earliest first.
    async fn peers(&self, network: &NetworkId, now: SystemTime, ttl: Duration) -> Result<Vec<Device>, StoreError>;

    /// Where `user`'s device in `network` is, or the fallback coordinators.
    async fn find_user(
        &self,
        network: &NetworkId,
        user: &UserId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<PeerLookup, StoreError>;

    /// Marks devices silent for `ttl` offline and deletes records past retention.
    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, StoreError>;

    /// Promotes, in every network, exactly the devices missing for `min`
    /// online coordinators; returns the promoted devices.
    async fn promote(&self, min: usize) -> Result<Vec<Device>, StoreError>;

    /// Figures for `/metrics`.
    async fn stats(&self) -> Result<PresenceStats, StoreError>;

    /// Counts one announcement of `device` by `user` against `limit`
    /// (`max` per `window`: a burst of `max`, then one every `window / max`),
    /// cluster-wide; `Some(wait)` when refused, counting nothing.
    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        limit: (u32, Duration),
    ) -> Result<Option<Duration>, StoreError>;
}

/// Signals waiting for their receivers, and notices waiting for their senders.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Queues `signal` for its receiver at `now`, unless it would pass a
    /// budget (counted with the receiver's queue, the sender's user and every
    /// queue, in bytes of bodies); ids increase per receiver.
    async fn enqueue(&self, signal: Outgoing, now: SystemTime, budget: &QueueBudget) -> Result<Queued, EnqueueFailure>;

    /// One page of the receiver's queue as `owner` may read it (the signals
    /// queued while `owner` owned it): at most `limit` with ids above
    /// `after`, oldest first, left in place (never the whole queue at once).
    async fn pending(&self, to: &DeviceId, owner: &UserId, after: u64, limit: usize)
    -> Result<Vec<Queued>, StoreError>;

    /// Whether signals queued for another user than `owner` wait in the
    /// receiver's queue (its id changed hands, or is about to).
    async fn others_waiting(&self, to: &DeviceId, owner: &UserId) -> Result<bool, StoreError>;

    /// Removes `owner`'s signals of the receiver's queue with an id up to
    /// `up_to` and returns them, oldest first (at once: two callers never both get one).
    async fn ack(&self, to: &DeviceId, owner: &UserId, up_to: u64) -> Result<Vec<Queued>, StoreError>;

    /// Removes one signal (the device confirmed it); whether it was there.
    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, StoreError>;

    /// Removes queued signals older than `ttl`, files a [`Notice`] for each
    /// sender, drops notices past their retention, and returns what expired now.
    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, StoreError>;

    /// The notices waiting for `sender` as `owner` may read them (of signals
    /// sent while `owner` owned it), oldest first, left in place.
    async fn notices(&self, sender: &DeviceId, owner: &UserId) -> Result<Vec<Notice>, StoreError>;

    /// Removes one notice (the sender confirmed it); whether it was there.
    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, StoreError>;

    /// Signals waiting in every queue, for `/metrics`.
    async fn queued(&self) -> Result<usize, StoreError>;

    /// Bytes of bodies waiting in every queue (what the total budget counts).
    async fn queued_bytes(&self) -> Result<usize, StoreError>;
}

/// Each device's one live connection, and wake-ups to it.
#[async_trait]
pub trait Endpoints: Send + Sync + 'static {
    /// Records `at` as the device's one live connection; returns the one it
    /// replaces, if that is still live (its instance alive).
    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, StoreError>;

    /// Deletes the endpoints a dead instance left (cluster mode; the memory
    /// engine has no other instances); how many. Stops if it is alive again.
    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let _ = dead;
        Ok(0)
    }

    /// Records `at` again unless the device has an endpoint (Redis lost it,
    /// or this instance was taken for dead); whether it did.
    async fn restore(&self, device: &DeviceId, at: Endpoint) -> Result<bool, StoreError>;

    /// Forgets the device's connection if it is still `at`; whether it was.
    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, StoreError>;

    /// The device's live connection: registered, on an instance that is alive.
    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, StoreError>;

    /// Tells whichever instance holds `device`'s connection that it has mail.
    async fn wake(&self, device: &DeviceId) -> Result<(), StoreError>;

    /// Devices woken by [`Endpoints::wake`] on any instance, and [`Wake::All`]
    /// when some may have been missed (a lagging receiver should take that as
    /// `All` too).
    fn wakes(&self) -> broadcast::Receiver<Wake>;
}

/// A wake-up from [`Endpoints::wakes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// This device has mail.
    Device(DeviceId),
    /// Wake-ups may have been lost (a reconnection to Redis): every device may have mail.
    All,
}

/// Capacity of the wake channel; a receiver that lags re-reads every queue.
pub const WAKE_CAPACITY: usize = 4096;

/// One engine of each device concern.
#[derive(Clone)]
pub struct Devices {
    /// Announcements and discovery.
    pub presence: Arc<dyn Presence>,
    /// Queued signals and expiry notices.
    pub queues: Arc<dyn Queues>,
    /// Live connections and wake-ups.
    pub endpoints: Arc<dyn Endpoints>,
}

impl Devices {
    /// The memory engines (one instance).
    pub fn memory() -> Self {
        Self {
            presence: Arc::new(memory::MemoryPresence::default()),
            queues: Arc::new(memory::MemoryQueues::default()),
            endpoints: Arc::new(memory::MemoryEndpoints::default()),
        }
    }
}
