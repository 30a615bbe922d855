//! Rooms and their seats behind one trait, so nothing above knows where they live.
//!
//! [`RoomStore`] is what the core's room services call. Engines:
//! [`memory::MemoryStore`] (one instance, the default) and
//! [`redis::RedisStore`] (a cluster of instances); both pass the same suite
//! (`suite.rs`) unchanged, and both apply the rules of [`crate::domain::Room`].
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

use std::time::SystemTime;

use async_trait::async_trait;

use crate::domain::{ConnId, Joined, Request, Room, RoomError, RoomId, RoomMeta, Route, UserId};
use grace::{HeldSeat, Keeping, KeptRelay, Unsent};

pub mod grace;
pub mod memory;
pub mod redis;
pub mod route_cache;
#[cfg(test)]
pub mod suite;
#[cfg(test)]
pub mod suite_grace;

use super::{Lapse, StoreError};

/// Why a room operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoomStoreError {
    /// A room rule refused the operation.
    #[error(transparent)]
    Rule(#[from] RoomError),
    /// The backing store cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a join changed, and who must hear of it.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinOutcome {
    /// New seat, taken-over seat, or nothing changed.
    pub joined: Joined,
    /// Every participant after the join, joiner included, in join order.
    pub users: Vec<UserId>,
    /// Connections of the other participants.
    pub peers: Vec<ConnId>,
}

/// A participant that left a room, and who must hear of it.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaveOutcome {
    /// The room left.
    pub room: RoomId,
    /// The user id that held the seat.
    pub user: UserId,
    /// Connections of the remaining participants.
    pub peers: Vec<ConnId>,
    /// Whether the room was deleted because it became empty.
    pub room_deleted: bool,
    /// The room's new host, when the one who left hosted it.
    pub new_host: Option<UserId>,
    /// When the seat was held: the senders of the relays kept for it, never delivered.
    pub unsent: Vec<Unsent>,
}

/// What this instance's live connections should hold: the seats the core
/// gave them, kept apart from the store so the store can be made to agree
/// with it ([`RoomStore::reconcile`]). Asked again at each change, so a seat
/// taken or given up while a reconcile runs is respected.
pub trait Intent: Send + Sync {
    /// Every local connection holding seats, and its seats (room, user).
    fn seats(&self) -> Vec<(ConnId, Vec<(RoomId, UserId)>)>;
    /// The user `conn` should hold a seat as in `room` now, if any.
    fn holds(&self, conn: &ConnId, room: &RoomId) -> Option<UserId>;
    /// Whether `conn` has closed and its seats are held (seat grace): put
    /// back, they are put back held.
    fn held(&self, conn: &ConnId) -> bool {
        let _ = conn;
        false
    }
}

/// A seat put back by [`RoomStore::reconcile`], and who must hear of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoredSeat {
    /// The room.
    pub room: RoomId,
    /// The user whose seat was put back.
    pub user: UserId,
    /// Connections of the other participants.
    pub peers: Vec<ConnId>,
}

/// A seat a live connection should hold but cannot get back.
#[derive(Clone, Debug, PartialEq)]
pub struct LostSeat {
    /// The connection.
    pub conn: ConnId,
    /// The room.
    pub room: RoomId,
    /// The user it was seated as.
    pub user: UserId,
    /// Why: the user's seat is on another connection now (true), or the
    /// room filled up meanwhile (false).
    pub moved: bool,
}

/// What [`RoomStore::reconcile`] changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Seats of live connections that the store had lost, put back.
    pub restored: Vec<RestoredSeat>,
    /// Seats of this instance's connections that they no longer hold, removed.
    pub removed: Vec<LeaveOutcome>,
    /// Seats that could not be put back.
    pub lost: Vec<LostSeat>,
}

/// What an upkeep round did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Upkept {
    /// Departures of the participants of dead instances.
    pub left: Vec<LeaveOutcome>,
    /// What the heartbeat found, if anything.
    pub lapse: Option<Lapse>,
    /// Dead instances whose participants this round removed: what they left
    /// in the other engines is to be deleted too.
    pub reaped: Vec<String>,
}

/// A read-only copy of a room for listings.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomSnapshot {
    /// The room id.
    pub id: RoomId,
    /// Participant user ids in join order.
    pub participants: Vec<UserId>,
    /// When the room was created.
    pub created_at: SystemTime,
    /// Its metadata, if any.
    pub meta: Option<RoomMeta>,
    /// The connection holding the host's seat (rooms with metadata).
    pub host_conn: Option<ConnId>,
}

impl From<&Room> for RoomSnapshot {
    fn from(room: &Room) -> Self {
        let meta = room.meta().cloned();
        let host_conn = meta.as_ref().and_then(|m| room.seat_of(&m.host_id)).cloned();
        Self { id: room.id().clone(), participants: room.users(), created_at: room.created_at(), meta, host_conn }
    }
}

/// One page of the room listing, ordered by creation time then id.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomPage {
    /// The rooms on this page.
    pub rooms: Vec<RoomSnapshot>,
    /// How many rooms exist in all.
    pub total: usize,
}

/// Room state: the operations the transport needs, each atomic on its room.
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Seats `user` on `conn` in `room` (created if absent), within `max_size`.
    async fn join(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<JoinOutcome, RoomStoreError>;

    /// Creates `room` with `meta`, its host seated on `conn`
    /// ([`RoomError::AlreadyExists`] if the id is taken).
    async fn create(&self, room: &RoomId, meta: RoomMeta, conn: &ConnId) -> Result<JoinOutcome, RoomStoreError>;

    /// Records `user`'s request to join `room` at `now_ms`, waiting until `deadline_ms` (Unix ms).
    async fn request(
        &self,
        room: &RoomId,
        user: &UserId,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Result<Request, RoomStoreError>;

    /// The host's answer to `user`'s waiting request; `by` must hold the host's seat.
    async fn decide(&self, room: &RoomId, by: &ConnId, user: &UserId, approve: bool) -> Result<(), RoomStoreError>;

    /// Drops `user`'s request if still waiting past its deadline at `now_ms`; whether it did.
    async fn expire_request(&self, room: &RoomId, user: &UserId, now_ms: u64) -> Result<bool, StoreError>;

    /// Records the display name `user` gave in `room` (rooms with metadata).
    async fn name_user(&self, room: &RoomId, user: &UserId, name: &str) -> Result<(), StoreError>;

    /// Removes `conn` from `room`; `None` if it held no seat there.
    async fn leave(&self, room: &RoomId, conn: &ConnId) -> Result<Option<LeaveOutcome>, StoreError>;

    /// Removes `conn` from every room it is in (on disconnect).
    async fn leave_all(&self, conn: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError>;

    /// Holds every seat of `conn`, whose connection closed abruptly, for
    /// `grace_ms` (see [`grace`]): peers keep seeing it, relays to it are kept.
    /// The grace ends with [`Self::leave_all`] of `conn`, which removes the
    /// seats not resumed meanwhile, naming the senders of what was kept.
    async fn hold(&self, conn: &ConnId, grace_ms: u64) -> Result<Vec<HeldSeat>, StoreError>;

    /// Keeps `relay` for `to`'s held seat in `room`, behind those kept
    /// before, unless `max` are kept already.
    async fn keep(&self, room: &RoomId, to: &UserId, relay: &KeptRelay, max: usize) -> Result<Keeping, StoreError>;

    /// For `user`'s seat in `room`, resumed on `conn`: up to `max` of its
    /// kept relays, oldest first, handed over (removed). When none are left
    /// the hold ends: later relays go to `conn` as they come.
    async fn take_kept(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max: usize,
    ) -> Result<Vec<KeptRelay>, StoreError>;

    /// Where a relay from `from` to user `to` in `room` goes, if the rules allow it.
    async fn route(&self, room: &RoomId, from: &ConnId, to: &UserId) -> Result<Route, RoomStoreError>;

    /// One room, if it exists.
    async fn room(&self, room: &RoomId) -> Result<Option<RoomSnapshot>, StoreError>;

    /// A page of rooms ordered by `created_at`, then id.
    async fn list(&self, offset: usize, limit: usize) -> Result<RoomPage, StoreError>;

    /// Woken on every room change made by another instance (cluster mode),
    /// for views kept current such as the `/dashboard` room list.
    fn changed(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// How many rooms exist.
    async fn count(&self) -> Result<usize, StoreError>;

    /// Cluster upkeep, called every few seconds: refreshes this instance's
    /// heartbeat, says whether Redis lost its data or this instance was taken
    /// for dead, and removes the participants of instances whose heartbeat
    /// has expired, returning what they left (so peers can be told). The
    /// memory store has no other instances and returns nothing.
    async fn maintain(&self) -> Result<Upkept, StoreError>;

    /// After the store was unreachable, lost its data or answered too late:
    /// makes it agree with `intent`, the seats of this instance's live
    /// connections. A seat `intent` holds that the store lost is put back
    /// (unless the user's seat moved to another connection, or the room
    /// filled up: then it is lost); a seat the store gives one of this
    /// instance's connections that `intent` does not hold is removed; a seat
    /// both hold is left exactly as it is. Each change is decided against the
    /// room as it is then, and `intent` as it is then. The memory store
    /// cannot disagree and changes nothing.
    async fn reconcile(&self, intent: &dyn Intent, max_size: usize) -> Result<Reconciled, StoreError> {
        let _ = (intent, max_size);
        Ok(Reconciled::default())
    }

    /// The engine's name for `/health` (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}
