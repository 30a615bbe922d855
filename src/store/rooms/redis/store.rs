//! [`RoomStore`] over Redis: each operation a domain rule applied through the
//! compare-and-set of [`RedisStore::update`].

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use fred::prelude::*;

use super::codec::decode;
use super::seats::Restoring;
use super::{Change, RedisStore};
use crate::domain::{ConnId, Joined, Request, Room, RoomError, RoomId, RoomMeta, Route, UserId};
use crate::store::StoreError;
use crate::store::redis::unavailable;
use crate::store::rooms::grace::{HeldSeat, Keeping, KeptRelay};
use crate::store::rooms::{
    Intent, JoinOutcome, LeaveOutcome, Reconciled, RoomPage, RoomSnapshot, RoomStore, RoomStoreError, Upkept,
};

#[async_trait]
impl RoomStore for RedisStore {
    async fn join(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<JoinOutcome, RoomStoreError> {
        let owner = self.instance_conns(self.me());
        self.update(room, |current| {
            let mut next = current.unwrap_or_else(|| Room::new(room.clone(), SystemTime::now()));
            let joined = next.join(user, conn, max_size)?;
            let mut sets = vec![
                (self.conn_rooms(conn), '+', room.as_str().to_owned()),
                (owner.clone(), '+', conn.as_str().to_owned()),
            ];
            if let Joined::Rejoined { replaced } | Joined::Resumed { replaced } = &joined {
                sets.push((self.conn_rooms(replaced), '-', room.as_str().to_owned()));
            }
            let outcome = JoinOutcome { users: next.users(), peers: next.peers_of(conn), joined };
            Ok((Some(Change { room: Some(next), sets }), outcome))
        })
        .await
    }

    async fn create(&self, room: &RoomId, meta: RoomMeta, conn: &ConnId) -> Result<JoinOutcome, RoomStoreError> {
        let owner = self.instance_conns(self.me());
        self.update(room, |current| {
            if current.is_some() {
                return Err(RoomError::AlreadyExists.into());
            }
            let next = Room::create(room.clone(), SystemTime::now(), meta.clone(), conn);
            let sets = vec![
                (self.conn_rooms(conn), '+', room.as_str().to_owned()),
                (owner.clone(), '+', conn.as_str().to_owned()),
            ];
            let outcome = JoinOutcome { users: next.users(), peers: next.peers_of(conn), joined: Joined::New };
            Ok((Some(Change { room: Some(next), sets }), outcome))
        })
        .await
    }

    async fn request(
        &self,
        room: &RoomId,
        user: &UserId,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Result<Request, RoomStoreError> {
        self.update(room, |current| {
            let mut next = current.ok_or(RoomError::NoSuchRoom)?;
            let request = next.request(user, now_ms, deadline_ms)?;
            let changed = request == Request::Pending;
            Ok((changed.then(|| Change { room: Some(next), sets: vec![] }), request))
        })
        .await
    }

    async fn decide(&self, room: &RoomId, by: &ConnId, user: &UserId, approve: bool) -> Result<(), RoomStoreError> {
        self.update(room, |current| {
            let mut next = current.ok_or(RoomError::NoSuchRoom)?;
            next.decide(by, user, approve)?;
            Ok((Some(Change { room: Some(next), sets: vec![] }), ()))
        })
        .await
    }

    async fn expire_request(&self, room: &RoomId, user: &UserId, now_ms: u64) -> Result<bool, StoreError> {
        self.update::<_, StoreError>(room, |current| {
            let Some(mut next) = current else { return Ok((None, false)) };
            let expired = next.expire_request(user, now_ms);
            Ok((expired.then(|| Change { room: Some(next), sets: vec![] }), expired))
        })
        .await
    }

    async fn name_user(&self, room: &RoomId, user: &UserId, name: &str) -> Result<(), StoreError> {
        self.update::<_, StoreError>(room, |current| {
            let Some(mut next) = current else { return Ok((None, ())) };
            next.name_user(user, name);
            Ok((Some(Change { room: Some(next), sets: vec![] }), ()))
        })
        .await
    }

    async fn leave(&self, room: &RoomId, conn: &ConnId) -> Result<Option<LeaveOutcome>, StoreError> {
        Ok(self.leave_if(room, conn, &|| false, None).await?.flatten())
    }

    async fn leave_all(&self, conn: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError> {
        self.leave_all_here(conn).await
    }

    async fn hold(&self, conn: &ConnId, grace_ms: u64) -> Result<Vec<HeldSeat>, StoreError> {
        self.hold_seats(conn, grace_ms).await
    }

    async fn keep(&self, room: &RoomId, to: &UserId, relay: &KeptRelay, max: usize) -> Result<Keeping, StoreError> {
        self.keep_relay(room, to, relay, max).await
    }

    async fn take_kept(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max: usize,
    ) -> Result<Vec<KeptRelay>, StoreError> {
        self.take_relays(room, user, conn, max).await
    }

    async fn maintain(&self) -> Result<Upkept, StoreError> {
        let lapse = match self.heartbeat.beat().await {
            Ok(lapse) => lapse,
            Err(e) => {
                self.cache.beat_failed();
                return Err(e);
            }
        };
        // A copy read before a lapse may predate what was done meanwhile.
        if lapse.is_some() {
            self.cache.clear();
        }
        // Served only while beats keep coming: an instance paused past half
        // its TTL asks Redis again before routing (survivors may have removed
        // its participants meanwhile).
        self.cache.beat_succeeded(self.instance_ttl / 2);
        let mut upkept = Upkept { lapse, ..Upkept::default() };
        if self.heartbeat.may_reap() {
            for dead in self.heartbeat.instances().dead().await? {
                let (left, forgotten) = self.reap(&dead).await?;
                upkept.left.extend(left);
                if forgotten {
                    upkept.reaped.push(dead);
                }
            }
        }
        Ok(upkept)
    }

    async fn reconcile(&self, intent: &dyn Intent, max_size: usize) -> Result<Reconciled, StoreError> {
        let mut reconciled = Reconciled::default();
        for (conn, seats) in intent.seats() {
            for (room, user) in seats {
                match self.restore(&room, &user, &conn, intent, max_size).await? {
                    Restoring::Restored(seat) => reconciled.restored.push(seat),
                    Restoring::Lost(seat) => reconciled.lost.push(seat),
                    Restoring::Kept | Restoring::NoLongerWanted => {}
                }
            }
        }
        let mine: Vec<String> = self.client.smembers(self.instance_conns(self.me())).await.map_err(unavailable)?;
        for conn in mine.iter().map(|c| ConnId::new(c)) {
            for room in self.rooms_of(&conn).await? {
                if intent.holds(&conn, &room).is_some() {
                    continue;
                }
                let keep = || intent.holds(&conn, &room).is_some();
                reconciled.removed.extend(self.leave_if(&room, &conn, &keep, None).await?.flatten());
            }
            self.drop_if_idle(&conn).await?;
        }
        Ok(reconciled)
    }

    async fn route(&self, room: &RoomId, from: &ConnId, to: &UserId) -> Result<Route, RoomStoreError> {
        if let Some(route) = self.cache.route(room, from, to) {
            return Ok(route);
        }
        let seen = self.cache.generation(room);
        let (_, current) = self.read(room).await?;
        let current = current.ok_or(RoomError::NotInRoom)?;
        let route = current.route(from, to);
        self.cache.offer(room, current, seen);
        Ok(route?)
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomSnapshot>, StoreError> {
        Ok(self.read(room).await?.1.as_ref().map(RoomSnapshot::from))
    }

    async fn list(&self, offset: usize, limit: usize) -> Result<RoomPage, StoreError> {
        // The page's ids, then those rooms and the total in one script that
        // declares every key it reads (a room deleted in between is skipped).
        let range = (offset as i64, (offset + limit) as i64 - 1);
        let ids: Vec<String> = self
            .client
            .zrange(self.key(&["rooms"]), range.0, range.1, None, false, None, false)
            .await
            .map_err(unavailable)?;
        let ids: Vec<RoomId> = ids.iter().filter_map(|id| RoomId::parse(id).ok()).collect();
        let mut keys = vec![self.key(&["rooms"])];
        keys.extend(ids.iter().map(|id| self.key(&["room", id.as_str()])));
        let raw: Vec<Value> =
            self.list.evalsha_with_reload(&self.client, keys, Vec::<String>::new()).await.map_err(unavailable)?;
        let total = raw.first().and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut rooms = Vec::new();
        for (id, chunk) in ids.iter().zip(raw[1..].chunks_exact(2)) {
            let (Some(created), Some(members)) = (chunk[0].as_u64(), chunk[1].as_string()) else { continue };
            if members.is_empty() {
                continue;
            }
            rooms.push(RoomSnapshot::from(&decode(id, created, &members)?));
        }
        Ok(RoomPage { rooms, total })
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.client.zcard(self.key(&["rooms"])).await.map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn changed(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.changed.clone())
    }
}
