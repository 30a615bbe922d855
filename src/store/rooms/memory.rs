//! The in-memory room store: one instance, nothing else to run.
//!
//! Rooms live in a sharded map (`DashMap`), so operations on different rooms
//! never wait on one global lock, and the relay path (`route`) takes one shard's
//! read lock. A second map indexes the rooms of each connection for the
//! disconnect clean-up. Lock order is always room shard, then connection shard;
//! `leave_all` releases the connection entry before touching rooms, so the two
//! orders never meet. Held seats' kept relays (seat grace) are a third map,
//! locked after a room's shard when both are.

use std::collections::VecDeque;
use std::time::SystemTime;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::grace::{self, HeldSeat, Keeping, KeptRelay};
use super::{JoinOutcome, LeaveOutcome, RoomPage, RoomSnapshot, RoomStore, RoomStoreError, StoreError, Upkept};
use crate::domain::{ConnId, Joined, Request, Room, RoomError, RoomId, RoomMeta, Route, UserId};

/// Room state in this process's memory.
#[derive(Default)]
pub struct MemoryStore {
    rooms: DashMap<RoomId, Room>,
    rooms_of: DashMap<ConnId, Vec<RoomId>>,
    holds: DashMap<(RoomId, UserId), Hold>,
}

/// A held seat's relays, and whether it was resumed (`live`: the connection
/// relays go to now that they were handed over).
#[derive(Default)]
struct Hold {
    live: Option<ConnId>,
    kept: VecDeque<KeptRelay>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn index_add(&self, conn: &ConnId, room: &RoomId) {
        let mut rooms = self.rooms_of.entry(conn.clone()).or_default();
        if !rooms.contains(room) {
            rooms.push(room.clone());
        }
    }

    fn index_remove(&self, conn: &ConnId, room: &RoomId) {
        if let Entry::Occupied(mut rooms) = self.rooms_of.entry(conn.clone()) {
            rooms.get_mut().retain(|r| r != room);
            if rooms.get().is_empty() {
                rooms.remove();
            }
        }
    }
}

impl MemoryStore {
    /// Removes the participant on `conn` from `room`, with the senders of
    /// what was kept for its seat if it was held.
    fn leave_here(&self, room: &RoomId, conn: &ConnId) -> Option<LeaveOutcome> {
        let Entry::Occupied(mut entry) = self.rooms.entry(room.clone()) else {
            return None;
        };
        let departure = entry.get_mut().leave(conn)?;
        let kept: Vec<KeptRelay> =
            self.holds.remove(&(room.clone(), departure.user.clone())).map(|(_, h)| h.kept.into()).unwrap_or_default();
        let unsent = grace::unsent(Some(entry.get()), &kept);
        let peers = entry.get().peers_of(conn);
        let room_deleted = entry.get().is_empty();
        if room_deleted {
            entry.remove();
        } else {
            drop(entry);
        }
        self.index_remove(conn, room);
        let (user, new_host) = (departure.user, departure.new_host);
        Some(LeaveOutcome { room: room.clone(), user, peers, room_deleted, new_host, unsent })
    }
}

#[async_trait]
impl RoomStore for MemoryStore {
    async fn join(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<JoinOutcome, RoomStoreError> {
        let mut entry = self.rooms.entry(room.clone()).or_insert_with(|| Room::new(room.clone(), SystemTime::now()));
        let joined = entry.join(user, conn, max_size);
        if entry.is_empty() {
            // Only a refused join into a room created just now leaves it empty.
            drop(entry);
            self.rooms.remove_if(room, |_, r| r.is_empty());
            return Err(joined.expect_err("an accepted join leaves a participant").into());
        }
        let joined = joined?;
        let outcome = JoinOutcome { users: entry.users(), peers: entry.peers_of(conn), joined };
        if let Joined::Rejoined { replaced } | Joined::Resumed { replaced } = &outcome.joined {
            self.index_remove(replaced, room);
        }
        self.index_add(conn, room);
        Ok(outcome)
    }

    async fn create(&self, room: &RoomId, meta: RoomMeta, conn: &ConnId) -> Result<JoinOutcome, RoomStoreError> {
        let Entry::Vacant(vacant) = self.rooms.entry(room.clone()) else {
            return Err(RoomError::AlreadyExists.into());
        };
        let created = vacant.insert(Room::create(room.clone(), SystemTime::now(), meta, conn));
        let outcome = JoinOutcome { users: created.users(), peers: created.peers_of(conn), joined: Joined::New };
        drop(created);
        self.index_add(conn, room);
        Ok(outcome)
    }

    async fn request(
        &self,
        room: &RoomId,
        user: &UserId,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Result<Request, RoomStoreError> {
        let mut entry = self.rooms.get_mut(room).ok_or(RoomError::NoSuchRoom)?;
        Ok(entry.request(user, now_ms, deadline_ms)?)
    }

    async fn decide(&self, room: &RoomId, by: &ConnId, user: &UserId, approve: bool) -> Result<(), RoomStoreError> {
        let mut entry = self.rooms.get_mut(room).ok_or(RoomError::NoSuchRoom)?;
        Ok(entry.decide(by, user, approve)?)
    }

    async fn expire_request(&self, room: &RoomId, user: &UserId, now_ms: u64) -> Result<bool, StoreError> {
        Ok(self.rooms.get_mut(room).is_some_and(|mut r| r.expire_request(user, now_ms)))
    }

    async fn name_user(&self, room: &RoomId, user: &UserId, name: &str) -> Result<(), StoreError> {
        if let Some(mut entry) = self.rooms.get_mut(room) {
            entry.name_user(user, name);
        }
        Ok(())
    }

    async fn leave(&self, room: &RoomId, conn: &ConnId) -> Result<Option<LeaveOutcome>, StoreError> {
        Ok(self.leave_here(room, conn))
    }

    async fn hold(&self, conn: &ConnId, _grace_ms: u64) -> Result<Vec<HeldSeat>, StoreError> {
        let rooms = self.rooms_of.get(conn).map(|r| r.clone()).unwrap_or_default();
        let mut held = Vec::with_capacity(rooms.len());
        for room in rooms {
            let Some(mut entry) = self.rooms.get_mut(&room) else { continue };
            let Some(user) = entry.hold(conn) else { continue };
            // Relays kept before a resume that has not handed them all over stay.
            self.holds.entry((room.clone(), user.clone())).or_default().live = None;
            held.push(HeldSeat { room, user });
        }
        Ok(held)
    }

    async fn keep(&self, room: &RoomId, to: &UserId, relay: &KeptRelay, max: usize) -> Result<Keeping, StoreError> {
        let Some(mut hold) = self.holds.get_mut(&(room.clone(), to.clone())) else { return Ok(Keeping::NotHeld) };
        Ok(match &hold.live {
            Some(conn) => Keeping::Live(conn.clone()),
            None if hold.kept.len() >= max => Keeping::Full,
            None => {
                hold.kept.push_back(relay.clone());
                Keeping::Kept
            }
        })
    }

    async fn take_kept(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max: usize,
    ) -> Result<Vec<KeptRelay>, StoreError> {
        if let Some(mut hold) = self.holds.get_mut(&(room.clone(), user.clone())) {
            if !hold.kept.is_empty() {
                let n = hold.kept.len().min(max);
                return Ok(hold.kept.drain(..n).collect());
            }
            hold.live = Some(conn.clone());
        }
        if let Some(mut entry) = self.rooms.get_mut(room) {
            entry.release(user, conn);
        }
        Ok(Vec::new())
    }

    async fn leave_all(&self, conn: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError> {
        let rooms = self.rooms_of.remove(conn).map(|(_, rooms)| rooms).unwrap_or_default();
        let mut left = Vec::with_capacity(rooms.len());
        for room in rooms {
            if let Some(outcome) = self.leave(&room, conn).await? {
                left.push(outcome);
            }
        }
        Ok(left)
    }

    async fn route(&self, room: &RoomId, from: &ConnId, to: &UserId) -> Result<Route, RoomStoreError> {
        let room = self.rooms.get(room).ok_or(RoomError::NotInRoom)?;
        Ok(room.route(from, to)?)
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomSnapshot>, StoreError> {
        Ok(self.rooms.get(room).map(|r| RoomSnapshot::from(&*r)))
    }

    async fn list(&self, offset: usize, limit: usize) -> Result<RoomPage, StoreError> {
        let mut rooms: Vec<RoomSnapshot> = self.rooms.iter().map(|r| RoomSnapshot::from(&*r)).collect();
        let total = rooms.len();
        rooms.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        let rooms = rooms.into_iter().skip(offset).take(limit).collect();
        Ok(RoomPage { rooms, total })
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.rooms.len())
    }

    async fn maintain(&self) -> Result<Upkept, StoreError> {
        Ok(Upkept::default())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    crate::store_suite!(async { (super::MemoryStore::new(), ()) });
}
