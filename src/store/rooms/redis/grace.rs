//! Seat grace over Redis: holding a closed connection's seats (a flag on the
//! member, written with the room, and a marker key beside it), keeping
//! relays for them (a list behind the marker, one script) and handing them
//! over on resume. A seat whose grace ended leaves as any other
//! ([`RedisStore::leave_if`] deletes the marker and reads what was kept).
//!
//! The marker is what makes keeping and handing over agree: a relay is kept
//! only while it says `held`, and the last hand-over turns it into
//! `live:{conn}` in the same script that found the list empty, so a relay
//! routed by a copy of the room from before the resume still reaches the
//! resumed connection, after everything kept.

use fred::prelude::*;

use super::{Change, RedisStore};
use crate::domain::{ConnId, RoomId, UserId};
use crate::store::StoreError;
use crate::store::redis::unavailable;
use crate::store::rooms::grace::{HOLD_MARGIN_MS, HeldSeat, Keeping, KeptRelay};

/// Relays read back at once when a seat's grace ends, at most (the rest
/// expire with their list).
const EXPIRED_READ_MAX: usize = 100_000;

impl RedisStore {
    fn seat_key(&self, kind: &str, room: &RoomId, user: &UserId) -> String {
        self.key(&[kind, &room.as_str().len().to_string(), room.as_str(), user.as_str()])
    }

    /// The marker of `user`'s held seat in `room`.
    pub(super) fn held_key(&self, room: &RoomId, user: &UserId) -> String {
        self.seat_key("held", room, user)
    }

    fn kept_key(&self, room: &RoomId, user: &UserId) -> String {
        self.seat_key("kept", room, user)
    }

    pub(super) async fn hold_seats(&self, conn: &ConnId, grace_ms: u64) -> Result<Vec<HeldSeat>, StoreError> {
        let ttl = grace_ms + HOLD_MARGIN_MS + 2 * self.instance_ttl.as_millis() as u64;
        let mut held = Vec::new();
        for room in self.rooms_of(conn).await? {
            let user = self
                .update::<_, StoreError>(&room, |current| {
                    let Some(mut next) = current else { return Ok((None, None)) };
                    let Some(user) = next.hold(conn) else { return Ok((None, None)) };
                    let sets = vec![(self.held_key(&room, &user), 'H', format!("{ttl}:held"))];
                    Ok((Some(Change { room: Some(next), sets }), Some(user)))
                })
                .await?;
            held.extend(user.map(|user| HeldSeat { room, user }));
        }
        Ok(held)
    }

    pub(super) async fn keep_relay(
        &self,
        room: &RoomId,
        to: &UserId,
        relay: &KeptRelay,
        max: usize,
    ) -> Result<Keeping, StoreError> {
        let item = serde_json::to_string(relay).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let keys = vec![self.held_key(room, to), self.kept_key(room, to)];
        let reply: Vec<Value> = self
            .keep
            .evalsha_with_reload(&self.client, keys, vec![max.to_string(), item])
            .await
            .map_err(unavailable)?;
        Ok(match reply.first().and_then(Value::as_i64) {
            Some(1) => Keeping::Kept,
            Some(0) => Keeping::Full,
            Some(2) => match reply.get(1).and_then(Value::as_string) {
                Some(conn) => Keeping::Live(ConnId::new(&conn)),
                None => Keeping::NotHeld,
            },
            _ => Keeping::NotHeld,
        })
    }

    pub(super) async fn take_relays(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max: usize,
    ) -> Result<Vec<KeptRelay>, StoreError> {
        let keys = vec![self.held_key(room, user), self.kept_key(room, user)];
        let args = vec![max.to_string(), conn.as_str().to_owned()];
        let items: Vec<String> = self.take.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        if !items.is_empty() {
            return Ok(items.iter().filter_map(|i| serde_json::from_str(i).ok()).collect());
        }
        self.update::<_, StoreError>(room, |current| {
            let Some(mut next) = current else { return Ok((None, ())) };
            let changed = next.release(user, conn);
            Ok((changed.then(|| Change { room: Some(next), sets: vec![] }), ()))
        })
        .await?;
        Ok(Vec::new())
    }

    /// Every relay still kept for `user`'s seat in `room` (its marker gone), removed.
    pub(super) async fn take_all(&self, room: &RoomId, user: &UserId) -> Result<Vec<KeptRelay>, StoreError> {
        let keys = vec![self.held_key(room, user), self.kept_key(room, user)];
        let args = vec![EXPIRED_READ_MAX.to_string(), String::new()];
        let items: Vec<String> = self.take.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(items.iter().filter_map(|i| serde_json::from_str(i).ok()).collect())
    }
}
