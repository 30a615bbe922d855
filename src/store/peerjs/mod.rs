//! PeerJS ids and the messages waiting for them behind one trait: which
//! connection holds each id (cluster-wide, so ids are unique across
//! instances) and each id's queue of messages sent before it connected.
//!
//! Engines: [`memory::MemoryPeers`] (one instance) and [`redis::RedisPeers`];
//! both pass `suite.rs`. An id held by a dead instance's connection is free
//! (claimable, not listed, not a destination) from the moment that
//! instance's heartbeat expires; survivors then delete it
//! ([`PeerStore::forget_instance`]). Times are Unix milliseconds, passed in.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

pub mod memory;
pub mod redis;
#[cfg(test)]
mod suite;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::ConnId;
use crate::domain::peerjs::{PeerId, Waiting};

/// Who holds an id: the connection, its instance, and the token it was
/// registered with (the same token takes the id over).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The token the id was registered with.
    pub token: String,
    /// The connection holding it.
    pub conn: ConnId,
    /// That connection's instance.
    pub instance: String,
}

/// What a claim of an id came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The id was free: it is the claimant's.
    Opened,
    /// The same token held it on this older connection: it is the claimant's now.
    TookOver(ConnId),
    /// Another token holds it.
    Taken,
    /// `limit` ids are registered already.
    Full,
}

/// The ids and their queues.
#[async_trait]
pub trait PeerStore: Send + Sync + 'static {
    /// Registers `id` for `holder` if it is free (and fewer than `limit` ids
    /// are), or held with the same token (a takeover, whatever the count).
    async fn claim(&self, id: &PeerId, holder: &Holder, limit: usize) -> Result<Claim, StoreError>;

    /// Puts `id` back for `holder` unless someone holds it (Redis lost it);
    /// whether it did, or `holder` has it already.
    async fn restore(&self, id: &PeerId, holder: &Holder) -> Result<bool, StoreError>;

    /// Frees `id` if `conn` still holds it; whether it did.
    async fn release(&self, id: &PeerId, conn: &ConnId) -> Result<bool, StoreError>;

    /// Who holds `id`, if its instance is alive.
    async fn holder(&self, id: &PeerId) -> Result<Option<Holder>, StoreError>;

    /// Every id held on a live instance.
    async fn ids(&self) -> Result<Vec<PeerId>, StoreError>;

    /// Deletes the ids a dead instance left (cluster mode); how many.
    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let _ = dead;
        Ok(0)
    }

    /// Queues `waiting` for its destination unless `max` wait already;
    /// whether it did. The queue lasts `keep` at most.
    async fn enqueue(&self, waiting: &Waiting, max: usize, keep: Duration) -> Result<bool, StoreError>;

    /// Takes every message waiting for `dst`, oldest first.
    async fn take(&self, dst: &PeerId) -> Result<Vec<Waiting>, StoreError>;

    /// Takes `dst`'s whole queue if its oldest message came at or before
    /// `cutoff`; else nothing, and when its oldest came (`None`: no queue).
    async fn expire(&self, dst: &PeerId, cutoff: u64) -> Result<Expired, StoreError>;
}

/// What [`PeerStore::expire`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Expired {
    /// The queue, taken.
    Taken(Vec<Waiting>),
    /// Not yet: its oldest message came then.
    Since(u64),
    /// No queue (delivered, or never there).
    Empty,
}
