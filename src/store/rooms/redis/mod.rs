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

use super::route_cache::{self, RouteCache};
use super::{Intent, LeaveOutcome, LostSeat, RestoredSeat, StoreError};
use crate::domain::{ConnId, Room, RoomId, UserId};
use crate::store::redis::clock::RedisClock;
use crate::store::redis::instances::{Heartbeat, Instances, alive_key};
use crate::store::redis::{MAX_ATTEMPTS, key, millis, unavailable};

mod codec;
mod store;
#[cfg(test)]
mod tests;

/// Compare-and-set of one room plus set updates, all or nothing.
/// KEYS: room hash, rooms zset, version counter, then the guard keys (each
/// must not exist), then one key per set update.
/// ARGV: expected version, members JSON ('' deletes), room id, created ms,
/// the channel on which the room id is published once written, the deadline
/// (Redis's Unix ms, '0' for none: see [`RedisClock`]), how many guard keys,
/// then per set update: '+' or '-', and the member.
/// Returns 1 written, 0 the version moved, -1 a guard key exists, -2 too late.
const CAS: &str = r#"
if ARGV[6] ~= '0' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[6]) then return -2 end
end
local guards = tonumber(ARGV[7])
for i = 4, 3 + guards do
  if redis.call('EXISTS', KEYS[i]) == 1 then return -1 end
end
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
local first = 4 + guards
for i = first, #KEYS do
  local op, member = ARGV[8 + (i - first) * 2], ARGV[9 + (i - first) * 2]
  if op == '+' then redis.call('SADD', KEYS[i], member) else redis.call('SREM', KEYS[i], member) end
end
redis.call('PUBLISH', ARGV[5], ARGV[3])
return 1
"#;

/// Unregisters a connection of this instance that holds no seat any more.
/// KEYS: its rooms set, this instance's connections set. ARGV: the connection.
const DROP_IDLE: &str = r#"
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
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
    heartbeat: Heartbeat,
    instance_ttl: Duration,
    clock: Arc<RedisClock>,
    cas: Script,
    list: Script,
    drop_idle: Script,
    cache: Arc<RouteCache>,
    /// Woken by every room change announced (any instance's).
    changed: Arc<tokio::sync::Notify>,
}

/// A room change to write: the room after the rule (None deletes it), plus set updates.
pub(super) struct Change {
    pub(super) room: Option<Room>,
    pub(super) sets: Vec<(String, char, String)>,
}

/// How a compare-and-set ended.
#[derive(Debug, PartialEq)]
pub(super) enum Written {
    /// The change is in.
    Done,
    /// The room changed since it was read: read again.
    Moved,
    /// A guard key exists (the dead instance being reaped came back).
    Fenced,
}

/// What putting one live seat back did.
pub(super) enum Restoring {
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
    /// A store over `client` (already connected), for the instance `instance`,
    /// whose heartbeat lasts `instance_ttl`; writes carry deadlines on `clock`.
    pub fn new(client: Client, prefix: &str, instance: &str, instance_ttl: Duration, clock: Arc<RedisClock>) -> Self {
        let instances = Instances::new(client.clone(), prefix, instance);
        Self {
            client: client.clone(),
            prefix: prefix.to_owned(),
            heartbeat: Heartbeat::new(instances, instance_ttl, clock.clone()),
            instance_ttl,
            clock,
            cas: Script::from_lua(CAS),
            list: Script::from_lua(LIST),
            drop_idle: Script::from_lua(DROP_IDLE),
            cache: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// The channel room changes are announced on (to be kept subscribed by
    /// whoever holds the subscriber: the cluster).
    pub fn changes_channel(&self) -> String {
        self.key(&["changed"])
    }

    /// This instance's own channel for the route cache's sync tokens (to be
    /// kept subscribed with [`Self::changes_channel`]): Redis delivers what
    /// one connection subscribes to in the order it was published, across
    /// channels, so a token heard back here comes after every announcement
    /// published before it.
    pub fn sync_channel(&self) -> String {
        self.key(&["sync", self.me()])
    }

    /// Starts receiving the announcements of room changes on `subscriber`
    /// (the cluster's); until `ready` says [`Self::changes_channel`] and
    /// [`Self::sync_channel`] are subscribed, and whenever they are not,
    /// relays are routed by asking Redis.
    pub fn watch_changes(&self, subscriber: SubscriberClient, ready: watch::Receiver<bool>) {
        let sync = self.sync_channel();
        tokio::spawn(watch_changes(
            self.cache.clone(),
            self.changed.clone(),
            subscriber,
            self.changes_channel(),
            sync.clone(),
            ready,
        ));
        tokio::spawn(watch_stalls(self.cache.clone(), self.client.clone(), self.sync_channel()));
    }

    pub(super) fn key(&self, parts: &[&str]) -> String {
        key(&self.prefix, parts)
    }

    pub(super) fn me(&self) -> &str {
        self.heartbeat.instances().me()
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

    /// Applies `rule` to the current room and writes the result atomically
    /// (nothing when the rule says `None`), retrying on races.
    pub(super) async fn update<T, E: From<StoreError>>(
        &self,
        id: &RoomId,
        rule: impl Fn(Option<Room>) -> Result<(Option<Change>, T), E>,
    ) -> Result<T, E> {
        let done = self.update_guarded(id, None, rule).await?;
        Ok(done.expect("no guard, never fenced"))
    }

    /// [`Self::update`], unless `guard` exists when writing: then `None`.
    pub(super) async fn update_guarded<T, E: From<StoreError>>(
        &self,
        id: &RoomId,
        guard: Option<&str>,
        rule: impl Fn(Option<Room>) -> Result<(Option<Change>, T), E>,
    ) -> Result<Option<T>, E> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, room) = self.read(id).await?;
            let (change, result) = rule(room)?;
            let Some(change) = change else { return Ok(Some(result)) };
            match self.write(id, version, change, guard).await? {
                Written::Done => return Ok(Some(result)),
                Written::Fenced => return Ok(None),
                Written::Moved => tokio::task::yield_now().await,
            }
        }
        Err(StoreError::Unavailable(format!("room {id:?} stayed contended for {MAX_ATTEMPTS} attempts")).into())
    }

    pub(super) async fn write(
        &self,
        id: &RoomId,
        version: u64,
        change: Change,
        guard: Option<&str>,
    ) -> Result<Written, StoreError> {
        let mut keys = vec![self.key(&["room", id.as_str()]), self.key(&["rooms"]), self.key(&["seq"])];
        keys.extend(guard.map(str::to_owned));
        let (members, created) = match &change.room {
            Some(room) => (codec::encode(room)?, millis(room.created_at())),
            None => (String::new(), 0),
        };
        let mut args = vec![
            version.to_string(),
            members,
            id.as_str().to_owned(),
            created.to_string(),
            self.key(&["changed"]),
            self.clock.deadline().to_string(),
            usize::from(guard.is_some()).to_string(),
        ];
        for (key, op, member) in change.sets {
            keys.push(key);
            args.push(op.to_string());
            args.push(member);
        }
        let written: i64 = self.cas.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        match written {
            1 => {
                self.cache.invalidate(id);
                Ok(Written::Done)
            }
            0 => Ok(Written::Moved),
            -1 => Ok(Written::Fenced),
            _ => Err(StoreError::Unavailable(format!(
                "Redis ran the change of room {id:?} past its deadline: not applied"
            ))),
        }
    }

    /// Removes `conn` from `room`, unless `keep` says it still holds its seat
    /// there or `guard` exists (then `None`: fenced).
    pub(super) async fn leave_if(
        &self,
        room: &RoomId,
        conn: &ConnId,
        keep: &(dyn Fn() -> bool + Sync),
        guard: Option<&str>,
    ) -> Result<Option<Option<LeaveOutcome>>, StoreError> {
        self.update_guarded::<_, StoreError>(room, guard, |current| {
            if keep() {
                return Ok((None, None));
            }
            let sets = vec![(self.conn_rooms(conn), '-', room.as_str().to_owned())];
            let Some(mut next) = current else {
                return Ok((Some(Change { room: None, sets }), None));
            };
            let Some(departure) = next.leave(conn) else {
                return Ok((Some(Change { room: Some(next), sets }), None));
            };
            let room_deleted = next.is_empty();
            let outcome = LeaveOutcome {
                room: room.clone(),
                user: departure.user,
                peers: next.peers_of(conn),
                room_deleted,
                new_host: departure.new_host,
            };
            Ok((Some(Change { room: (!room_deleted).then_some(next), sets }), Some(outcome)))
        })
        .await
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

    pub(super) fn conn_rooms(&self, conn: &ConnId) -> String {
        self.key(&["conn", conn.as_str()])
    }

    pub(super) fn instance_conns(&self, instance: &str) -> String {
        self.key(&["inst", instance, "conns"])
    }
}

/// Ticks the route cache's stall detector; after a stall, publishes its sync
/// token on `channel` (again every 40 ticks, a second, until heard).
async fn watch_stalls(cache: Arc<RouteCache>, client: Client, channel: String) {
    let mut tick = tokio::time::interval(route_cache::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if let Some(token) = cache.tick(n.is_multiple_of(40)) {
            let published: Result<(), _> = client.publish(&channel, token.to_string()).await;
            if let Err(e) = published {
                tracing::debug!(error = %e, "route cache sync not published; retrying");
            }
        }
    }
}

/// Drops cached rooms as their changes are announced on `channel`, and
/// follows the subscription's health (see [`RouteCache`]).
async fn watch_changes(
    cache: Arc<RouteCache>,
    changed: Arc<tokio::sync::Notify>,
    subscriber: SubscriberClient,
    channel: String,
    sync: String,
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
                Ok(m) if &*m.channel == sync.as_str() => {
                    cache.heard(m.value.as_u64().unwrap_or(0));
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
