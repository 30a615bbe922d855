//! Seats beyond one join or leave: leaving under a condition, a closed
//! connection's departures, putting live seats back (reconcile) and
//! removing a dead instance's (reap, fenced on its alive key).

use std::time::SystemTime;

use fred::prelude::*;

use super::{Change, RedisStore};
use crate::domain::{ConnId, Room, RoomId, UserId};
use crate::store::StoreError;
use crate::store::redis::instances::alive_key;
use crate::store::redis::unavailable;
use crate::store::rooms::grace;
use crate::store::rooms::{Intent, LeaveOutcome, LostSeat, RestoredSeat};

/// What putting one live seat back did.
pub(crate) enum Restoring {
    /// The store had it as it should be: nothing written.
    Kept,
    /// The connection gave it up meanwhile: nothing written.
    NoLongerWanted,
    /// Put back.
    Restored(RestoredSeat),
    /// Cannot be put back.
    Lost(LostSeat),
}

impl RedisStore {
    /// Removes `conn` from `room`, unless `keep` says it still holds its seat
    /// there or `guard` exists (then `None`: fenced).
    pub(super) async fn leave_if(
        &self,
        room: &RoomId,
        conn: &ConnId,
        keep: &(dyn Fn() -> bool + Sync),
        guard: Option<&str>,
    ) -> Result<Option<Option<LeaveOutcome>>, StoreError> {
        let left = self
            .update_guarded::<_, StoreError>(room, guard, |current| {
                if keep() {
                    return Ok((None, None));
                }
                let mut sets = vec![(self.conn_rooms(conn), '-', room.as_str().to_owned())];
                let Some(mut next) = current else {
                    return Ok((Some(Change { room: None, sets }), None));
                };
                let held = next.members().iter().any(|m| &m.conn == conn && m.held);
                let Some(departure) = next.leave(conn) else {
                    return Ok((Some(Change { room: Some(next), sets }), None));
                };
                if held {
                    sets.push((self.held_key(room, &departure.user), 'D', String::new()));
                }
                let room_deleted = next.is_empty();
                let outcome = LeaveOutcome {
                    room: room.clone(),
                    user: departure.user,
                    peers: next.peers_of(conn),
                    room_deleted,
                    new_host: departure.new_host,
                    unsent: Vec::new(),
                };
                let after = (!room_deleted).then_some(next);
                let kept_for = held.then(|| after.clone());
                Ok((Some(Change { room: after, sets }), Some((outcome, kept_for))))
            })
            .await?;
        let Some(left) = left else { return Ok(None) };
        let Some((mut outcome, kept_for)) = left else { return Ok(Some(None)) };
        // A held seat's kept relays are not delivered now: their senders are told.
        if let Some(after) = kept_for {
            outcome.unsent = grace::unsent(after.as_ref(), &self.take_all(room, &outcome.user).await?);
        }
        Ok(Some(Some(outcome)))
    }

    /// The rooms `conn` is indexed in.
    pub(super) async fn rooms_of(&self, conn: &ConnId) -> Result<Vec<RoomId>, StoreError> {
        let rooms: Vec<String> = self.client.smembers(self.conn_rooms(conn)).await.map_err(unavailable)?;
        Ok(rooms.iter().filter_map(|r| RoomId::parse(r).ok()).collect())
    }

    /// Removes `conn`, a connection of this instance that closed, from every room.
    pub(super) async fn leave_all_here(&self, conn: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError> {
        let mut left = Vec::new();
        for room in self.rooms_of(conn).await? {
            left.extend(self.leave_if(&room, conn, &|| false, None).await?.flatten());
        }
        let _: () = self.client.del(self.conn_rooms(conn)).await.map_err(unavailable)?;
        let _: () = self.client.srem(self.instance_conns(self.me()), conn.as_str()).await.map_err(unavailable)?;
        Ok(left)
    }

    /// Unregisters `conn` from this instance if it holds no seat.
    pub(super) async fn drop_if_idle(&self, conn: &ConnId) -> Result<(), StoreError> {
        let keys = vec![self.conn_rooms(conn), self.instance_conns(self.me())];
        let _: i64 = self
            .drop_idle
            .evalsha_with_reload(&self.client, keys, vec![conn.as_str().to_owned()])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Puts `user`'s seat on `conn` back in `room` if `intent` still holds it
    /// and nobody else does.
    pub(super) async fn restore(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        intent: &dyn Intent,
        max_size: usize,
    ) -> Result<Restoring, StoreError> {
        let owner = self.instance_conns(self.me());
        let index = |op| vec![(self.conn_rooms(conn), op, room.as_str().to_owned())];
        self.update::<_, StoreError>(room, |current| {
            if intent.holds(conn, room).as_ref() != Some(user) {
                return Ok((None, Restoring::NoLongerWanted));
            }
            let lost =
                |moved| Restoring::Lost(LostSeat { conn: conn.clone(), room: room.clone(), user: user.clone(), moved });
            match current.as_ref().and_then(|r| r.seat_of(user)) {
                Some(holder) if holder == conn => return Ok((None, Restoring::Kept)),
                Some(_) => return Ok((Some(Change { room: current, sets: index('-') }), lost(true))),
                None => {}
            }
            let mut next = current.clone().unwrap_or_else(|| Room::new(room.clone(), SystemTime::now()));
            if next.join(user, conn, max_size).is_err() {
                return Ok((Some(Change { room: current, sets: index('-') }), lost(false)));
            }
            let mut sets = index('+');
            sets.push((owner.clone(), '+', conn.as_str().to_owned()));
            if intent.held(conn) {
                next.hold(conn);
                sets.push((self.held_key(room, user), 'H', format!("{}:held", grace::RESTORED_HOLD_TTL_MS)));
            }
            let seat = RestoredSeat { room: room.clone(), user: user.clone(), peers: next.peers_of(conn) };
            Ok((Some(Change { room: Some(next), sets }), Restoring::Restored(seat)))
        })
        .await
    }

    /// Removes a dead instance's participants, if no other survivor is
    /// already doing it, stopping as soon as the instance shows it is alive;
    /// what they left, and whether the instance is forgotten (reaped whole).
    pub(super) async fn reap(&self, dead: &str) -> Result<(Vec<LeaveOutcome>, bool), StoreError> {
        let instances = self.heartbeat.instances();
        if !instances.claim_reap(dead, self.instance_ttl).await? {
            return Ok((Vec::new(), false));
        }
        let guard = alive_key(&self.prefix, dead);
        let conns: Vec<String> = self.client.smembers(self.instance_conns(dead)).await.map_err(unavailable)?;
        let mut left = Vec::new();
        for conn in conns.iter().map(|c| ConnId::new(c)) {
            for room in self.rooms_of(&conn).await? {
                match self.leave_if(&room, &conn, &|| false, Some(&guard)).await? {
                    Some(out) => left.extend(out),
                    None => {
                        tracing::warn!(
                            instance = dead,
                            "an instance taken for dead came back while its seats were being removed"
                        );
                        return Ok((left, false));
                    }
                }
            }
        }
        let forgotten = instances.forget(dead).await?;
        if forgotten {
            tracing::info!(instance = dead, participants = left.len(), "removed the participants of a dead instance");
        }
        Ok((left, forgotten))
    }
}
