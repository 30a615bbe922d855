//! The Redis room store: one cluster-wide view for every instance.
//!
//! Layout (prefix `p`, default `switchboard`):
//! - `p:room:{id}` hash: `v` (version), `created` (ms), `members` (JSON `[[user, conn], ...]`, join order)
//! - `p:rooms` sorted set: room ids scored by `created`, so listings page in creation order
//!   (Redis orders equal scores by member, which is the `id` tie-break)
//! - `p:conn:{conn}` set: the rooms a connection is in (for disconnect clean-up)
//! - `p:inst:{instance}:conns` set, `p:inst:{instance}:alive` key with a TTL, `p:instances` set:
//!   which instance holds which connection, and which instances are alive
//!
//! Atomicity: optimistic concurrency. A change reads the room hash, applies the
//! same [`Room`] rule the memory store uses, and writes it back with a Lua
//! compare-and-set on the version, retrying on conflict. Versions come from one
//! global counter, so a room deleted and created again never reuses a version.
//! Every write publishes the room id on `p:changed`, which keeps each
//! instance's [`RouteCache`] (relay routing without a round trip) honest.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::route_cache::RouteCache;
use super::{LeaveOutcome, RestoredSeat, RoomStore, StoreError};
use crate::domain::{ConnId, Room, RoomId, UserId};
use crate::store::redis::instances::Instances;
use crate::store::redis::{MAX_ATTEMPTS, key, millis, unavailable};

mod codec;
mod store;
#[cfg(test)]
mod tests;

/// Compare-and-set of one room plus set updates, all or nothing.
/// KEYS: room hash, rooms zset, version counter, then one key per set update.
/// ARGV: expected version, members JSON ('' deletes), room id, created ms,
/// then per set update: '+' or '-', and the member; last, the channel on
/// which the room id is published once written.
const CAS: &str = r#"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  local nv = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[1], 'v', nv, 'created', ARGV[4], 'members', ARGV[2])
  if v == 0 then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
end
for i = 4, #KEYS do
  local op, member = ARGV[3 + (i - 4) * 2 + 2], ARGV[3 + (i - 4) * 2 + 3]
  if op == '+' then redis.call('SADD', KEYS[i], member) else redis.call('SREM', KEYS[i], member) end
end
redis.call('PUBLISH', ARGV[#ARGV], ARGV[3])
return 1
"#;

/// One page of rooms, read atomically: total, then id, created, members per room.
/// KEYS: rooms zset. ARGV: room key prefix, start, stop.
const LIST: &str = r#"
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])
local out = { redis.call('ZCARD', KEYS[1]) }
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[1] .. id, 'created', 'members')
  table.insert(out, id)
  table.insert(out, h[1] or '0')
  table.insert(out, h[2] or '[]')
end
return out
"#;

/// Room state in Redis, shared by every instance.
pub struct RedisStore {
    client: Client,
    prefix: String,
    instances: Instances,
    instance_ttl: Duration,
    cas: Script,
    list: Script,
    cache: Arc<RouteCache>,
    /// Woken by every room change announced (any instance's).
    changed: Arc<tokio::sync::Notify>,
}

/// A room change to write: the room after the rule (None deletes it), plus set updates.
pub(super) struct Change {
    pub(super) room: Option<Room>,
    pub(super) sets: Vec<(String, char, String)>,
}

impl RedisStore {
    /// A store over `client` (already connected), for the instance `instance`,
    /// whose heartbeat lasts `instance_ttl`.
    pub fn new(client: Client, prefix: &str, instance: &str, instance_ttl: Duration) -> Self {
        Self {
            client: client.clone(),
            prefix: prefix.to_owned(),
            instances: Instances::new(client.clone(), prefix, instance),
            instance_ttl,
            cas: Script::from_lua(CAS),
            list: Script::from_lua(LIST),
            cache: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// The channel room changes are announced on (to be kept subscribed by
    /// whoever holds the subscriber: the cluster).
    pub fn changes_channel(&self) -> String {
        self.key(&["changed"])
    }

    /// Starts receiving the announcements of room changes on `subscriber`
    /// (the socket.io adapter's); until `ready` says [`Self::changes_channel`]
    /// is subscribed, and whenever it is not, relays are routed by asking Redis.
    pub fn watch_changes(&self, subscriber: SubscriberClient, ready: watch::Receiver<bool>) {
        tokio::spawn(watch_changes(
            self.cache.clone(),
            self.changed.clone(),
            subscriber,
            self.changes_channel(),
            ready,
        ));
    }

    pub(super) fn key(&self, parts: &[&str]) -> String {
        key(&self.prefix, parts)
    }

    pub(super) async fn read(&self, id: &RoomId) -> Result<(u64, Option<Room>), StoreError> {
        let key = self.key(&["room", id.as_str()]);
        let (v, created, members): (Option<u64>, Option<u64>, Option<String>) =
            self.client.hmget(key, vec!["v", "created", "members"]).await.map_err(unavailable)?;
        match (v, members) {
            (Some(v), Some(members)) => Ok((v, Some(codec::decode(id, created.unwrap_or(0), &members)?))),
            _ => Ok((0, None)),
        }
    }

    /// Applies `rule` to the current room and writes the result atomically, retrying on races.
    pub(super) async fn update<T, E: From<StoreError>>(
        &self,
        id: &RoomId,
        rule: impl Fn(Option<Room>) -> Result<(Change, T), E>,
    ) -> Result<T, E> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, room) = self.read(id).await?;
            let (change, result) = rule(room)?;
            if self.write(id, version, change).await? {
                return Ok(result);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::Unavailable(format!("room {id:?} stayed contended for {MAX_ATTEMPTS} attempts")).into())
    }

    pub(super) async fn write(&self, id: &RoomId, version: u64, change: Change) -> Result<bool, StoreError> {
        let mut keys = vec![self.key(&["room", id.as_str()]), self.key(&["rooms"]), self.key(&["seq"])];
        let (members, created) = match &change.room {
            Some(room) => (codec::encode(room)?, millis(room.created_at())),
            None => (String::new(), 0),
        };
        let mut args = vec![version.to_string(), members, id.as_str().to_owned(), created.to_string()];
        for (key, op, member) in change.sets {
            keys.push(key);
            args.push(op.to_string());
            args.push(member);
        }
        args.push(self.key(&["changed"]));
        let written: i64 = self.cas.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        if written == 1 {
            self.cache.invalidate(id);
        }
        Ok(written == 1)
    }

    /// Removes `conn`, a connection of instance `owner`, from every room.
    pub(super) async fn leave_all_of(&self, conn: &ConnId, owner: &str) -> Result<Vec<LeaveOutcome>, StoreError> {
        let rooms: Vec<String> = self.client.smembers(self.conn_rooms(conn)).await.map_err(unavailable)?;
        let mut left = Vec::with_capacity(rooms.len());
        for room in rooms {
            let Ok(room) = RoomId::parse(&room) else {
                continue;
            };
            if let Some(outcome) = self.leave(&room, conn).await? {
                left.push(outcome);
            }
        }
        let _: () = self.client.del(self.conn_rooms(conn)).await.map_err(unavailable)?;
        let _: () = self.client.srem(self.instance_conns(owner), conn.as_str()).await.map_err(unavailable)?;
        Ok(left)
    }

    /// Puts `user`'s seat on `conn` back in `room` if nobody holds it.
    pub(super) async fn restore(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<Option<RestoredSeat>, StoreError> {
        let owner = self.instance_conns(self.instances.me());
        let outcome = self
            .update::<_, StoreError>(room, |current| {
                let mut next = current.unwrap_or_else(|| Room::new(room.clone(), SystemTime::now()));
                let free = next.seat_of(user).is_none();
                let restored = free && next.join(user, conn, max_size).is_ok();
                let sets = vec![
                    (self.conn_rooms(conn), if restored { '+' } else { '-' }, room.as_str().to_owned()),
                    (owner.clone(), '+', conn.as_str().to_owned()),
                ];
                let seat = restored.then(|| RestoredSeat {
                    room: room.clone(),
                    user: user.clone(),
                    peers: next.peers_of(conn),
                });
                let keep = (!next.is_empty()).then_some(next);
                Ok((Change { room: keep, sets }, seat))
            })
            .await?;
        Ok(outcome)
    }

    /// Removes a dead instance's participants, if no other survivor is already doing it.
    pub(super) async fn reap(&self, dead: &str) -> Result<Vec<LeaveOutcome>, StoreError> {
        if !self.instances.claim_reap(dead, self.instance_ttl).await? {
            return Ok(Vec::new());
        }
        let conns: Vec<String> = self.client.smembers(self.instance_conns(dead)).await.map_err(unavailable)?;
        let mut left = Vec::new();
        for conn in conns {
            left.extend(self.leave_all_of(&ConnId::new(&conn), dead).await?);
        }
        self.instances.forget(dead).await?;
        tracing::info!(instance = dead, participants = left.len(), "removed the participants of a dead instance");
        Ok(left)
    }

    pub(super) fn conn_rooms(&self, conn: &ConnId) -> String {
        self.key(&["conn", conn.as_str()])
    }

    pub(super) fn instance_conns(&self, instance: &str) -> String {
        self.key(&["inst", instance, "conns"])
    }
}
/// Drops cached rooms as their changes are announced on `channel`, and
/// follows the subscription's health (see [`RouteCache`]).
async fn watch_changes(
    cache: Arc<RouteCache>,
    changed: Arc<tokio::sync::Notify>,
    subscriber: SubscriberClient,
    channel: String,
    mut ready: watch::Receiver<bool>,
) {
    let mut messages = subscriber.message_rx();
    cache.set_subscribed(*ready.borrow_and_update());
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(m) if &*m.channel == channel.as_str() => {
                    if let Some(id) = m.value.as_str().and_then(|id| RoomId::parse(&id).ok()) {
                        cache.invalidate(&id);
                    }
                    changed.notify_one();
                }
                Ok(_) => {}
                // Announcements were dropped: any copy may be stale.
                Err(RecvError::Lagged(_)) => cache.clear(),
                Err(RecvError::Closed) => return,
            },
            // Down: announcements may be missed; up again: some may have been.
            // Either way the cache is emptied.
            change = ready.changed() => match change {
                Ok(()) => cache.set_subscribed(*ready.borrow_and_update()),
                Err(_) => return cache.set_subscribed(false),
            },
        }
    }
}
