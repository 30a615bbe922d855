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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::route_cache::RouteCache;
use super::{
    JoinOutcome, LeaveOutcome, LiveSeats, Reconciled, RestoredSeat, RoomPage, RoomSnapshot, RoomStore, StoreError,
};
use crate::domain::{ConnId, Joined, Member, Request, Room, RoomError, RoomId, RoomMeta, Route, UserId};

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

/// Compare-and-set of one hash field: KEYS[1] the hash; ARGV: the field, the
/// value expected (as read), the new value ('' deletes). 1 if it matched.
pub(super) const HASH_CAS: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"#;

/// How often a change retries after losing a race on the same room (or device record).
pub(super) const MAX_ATTEMPTS: usize = 64;

/// Room state in Redis, shared by every instance.
pub struct RedisStore {
    client: Client,
    prefix: String,
    instance: String,
    instance_ttl: Duration,
    cas: Script,
    list: Script,
    cache: Arc<RouteCache>,
    /// Woken by every room change announced (any instance's).
    changed: Arc<tokio::sync::Notify>,
}

/// A room change to write: the room after the rule (None deletes it), plus set updates.
struct Change {
    room: Option<Room>,
    sets: Vec<(String, char, String)>,
}

impl RedisStore {
    /// A store over `client` (already connected), for the instance `instance`,
    /// whose heartbeat lasts `instance_ttl`.
    pub fn new(client: Client, prefix: &str, instance: &str, instance_ttl: Duration) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
            instance_ttl,
            cas: Script::from_lua(CAS),
            list: Script::from_lua(LIST),
            cache: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// The channel room changes are announced on: give it to
    /// [`keep_subscriptions`](crate::redis::keep_subscriptions).
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

    async fn read(&self, id: &RoomId) -> Result<(u64, Option<Room>), StoreError> {
        let key = self.key(&["room", id.as_str()]);
        let (v, created, members): (Option<u64>, Option<u64>, Option<String>) =
            self.client.hmget(key, vec!["v", "created", "members"]).await.map_err(unavailable)?;
        match (v, members) {
            (Some(v), Some(members)) => Ok((v, Some(decode(id, created.unwrap_or(0), &members)?))),
            _ => Ok((0, None)),
        }
    }

    /// Applies `rule` to the current room and writes the result atomically, retrying on races.
    async fn update<T>(
        &self,
        id: &RoomId,
        rule: impl Fn(Option<Room>) -> Result<(Change, T), RoomError>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, room) = self.read(id).await?;
            let (change, result) = rule(room)?;
            if self.write(id, version, change).await? {
                return Ok(result);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::Unavailable(format!("room {id:?} stayed contended for {MAX_ATTEMPTS} attempts")))
    }

    async fn write(&self, id: &RoomId, version: u64, change: Change) -> Result<bool, StoreError> {
        let mut keys = vec![self.key(&["room", id.as_str()]), self.key(&["rooms"]), self.key(&["seq"])];
        let (members, created) = match &change.room {
            Some(room) => (encode(room)?, millis(room.created_at())),
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
    async fn leave_all_of(&self, conn: &ConnId, owner: &str) -> Result<Vec<LeaveOutcome>, StoreError> {
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
    async fn restore(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<Option<RestoredSeat>, StoreError> {
        let owner = self.instance_conns(&self.instance);
        let outcome = self
            .update(room, |current| {
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

    fn alive_key(&self, instance: &str) -> String {
        alive_key(&self.prefix, instance)
    }

    /// Marks this instance alive for one TTL, and registers it.
    async fn heartbeat(&self) -> Result<(), StoreError> {
        let ttl = Expiration::PX(self.instance_ttl.as_millis() as i64);
        let _: () =
            self.client.set(self.alive_key(&self.instance), 1, Some(ttl), None, false).await.map_err(unavailable)?;
        let _: () = self.client.sadd(self.key(&["instances"]), self.instance.as_str()).await.map_err(unavailable)?;
        Ok(())
    }

    /// Registered instances whose heartbeat key has expired.
    async fn dead_instances(&self) -> Result<Vec<String>, StoreError> {
        let all: Vec<String> = self.client.smembers(self.key(&["instances"])).await.map_err(unavailable)?;
        let mut dead = Vec::new();
        for instance in all.into_iter().filter(|i| i != &self.instance) {
            let alive: bool = self.client.exists(self.alive_key(&instance)).await.map_err(unavailable)?;
            if !alive {
                dead.push(instance);
            }
        }
        Ok(dead)
    }

    /// Removes a dead instance's participants, if no other survivor is already doing it.
    async fn reap(&self, dead: &str) -> Result<Vec<LeaveOutcome>, StoreError> {
        let claim = self.key(&["reap", dead]);
        let ttl = Expiration::PX(self.instance_ttl.as_millis() as i64);
        let claimed: Option<String> = self
            .client
            .set(claim, self.instance.as_str(), Some(ttl), Some(SetOptions::NX), false)
            .await
            .map_err(unavailable)?;
        if claimed.is_none() {
            return Ok(Vec::new());
        }
        let conns: Vec<String> = self.client.smembers(self.instance_conns(dead)).await.map_err(unavailable)?;
        let mut left = Vec::new();
        for conn in conns {
            left.extend(self.leave_all_of(&ConnId::new(&conn), dead).await?);
        }
        let _: () = self.client.srem(self.key(&["instances"]), dead).await.map_err(unavailable)?;
        tracing::info!(instance = dead, participants = left.len(), "removed the participants of a dead instance");
        Ok(left)
    }

    fn conn_rooms(&self, conn: &ConnId) -> String {
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

/// `prefix:part:part...`: every key and channel of the Redis engines.
pub(super) fn key(prefix: &str, parts: &[&str]) -> String {
    let mut key = prefix.to_owned();
    for part in parts {
        key.push(':');
        key.push_str(part);
    }
    key
}

/// The key that exists while `instance` is alive (its heartbeat, refreshed by [`RoomStore::maintain`]).
pub(super) fn alive_key(prefix: &str, instance: &str) -> String {
    key(prefix, &["inst", instance, "alive"])
}

pub(super) fn unavailable(e: fred::error::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) use crate::domain::unix_ms as millis;

/// A room with metadata as stored; a room without is stored as its member
/// pairs alone (the format from before rooms had metadata).
#[derive(serde::Serialize, serde::Deserialize)]
struct RoomJson {
    members: Vec<(String, String)>,
    meta: MetaJson,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MetaJson {
    name: String,
    description: String,
    host: String,
    host_id: String,
    requires_approval: bool,
    approved: Vec<String>,
    names: Vec<(String, String)>,
    requests: Vec<(String, u64)>,
}

fn encode(room: &Room) -> Result<String, StoreError> {
    let members: Vec<(String, String)> =
        room.members().iter().map(|m| (m.user.as_str().to_owned(), m.conn.as_str().to_owned())).collect();
    let json = match room.meta() {
        None => serde_json::to_string(&members),
        Some(m) => serde_json::to_string(&RoomJson {
            members,
            meta: MetaJson {
                name: m.name.clone(),
                description: m.description.clone(),
                host: m.host.clone(),
                host_id: m.host_id.as_str().to_owned(),
                requires_approval: m.requires_approval,
                approved: m.approved.iter().map(|u| u.as_str().to_owned()).collect(),
                names: m.names.iter().map(|(u, n)| (u.as_str().to_owned(), n.clone())).collect(),
                requests: m.requests.iter().map(|(u, d)| (u.as_str().to_owned(), *d)).collect(),
            },
        }),
    };
    json.map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn decode(id: &RoomId, created: u64, stored: &str) -> Result<Room, StoreError> {
    let corrupt = |why: String| StoreError::Unavailable(format!("room {id:?} in Redis is corrupt: {why}"));
    let user = |raw: &str| UserId::parse(raw).map_err(|e| corrupt(e.to_string()));
    let (pairs, meta): (Vec<(String, String)>, Option<MetaJson>) = if stored.starts_with('[') {
        (serde_json::from_str(stored).map_err(|e| corrupt(e.to_string()))?, None)
    } else {
        let room: RoomJson = serde_json::from_str(stored).map_err(|e| corrupt(e.to_string()))?;
        (room.members, Some(room.meta))
    };
    let members = pairs
        .into_iter()
        .map(|(u, conn)| Ok(Member { user: user(&u)?, conn: ConnId::new(&conn) }))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let meta = meta
        .map(|m| {
            Ok::<_, StoreError>(RoomMeta {
                name: m.name,
                description: m.description,
                host: m.host,
                host_id: user(&m.host_id)?,
                requires_approval: m.requires_approval,
                approved: m.approved.iter().map(|u| user(u)).collect::<Result<_, _>>()?,
                names: m.names.into_iter().map(|(u, n)| Ok((user(&u)?, n))).collect::<Result<_, StoreError>>()?,
                requests: m.requests.into_iter().map(|(u, d)| Ok((user(&u)?, d))).collect::<Result<_, StoreError>>()?,
            })
        })
        .transpose()?;
    Ok(Room::restore(id.clone(), UNIX_EPOCH + Duration::from_millis(created), members, meta))
}

#[async_trait]
impl RoomStore for RedisStore {
    async fn join(
        &self,
        room: &RoomId,
        user: &UserId,
        conn: &ConnId,
        max_size: usize,
    ) -> Result<JoinOutcome, StoreError> {
        let owner = self.instance_conns(&self.instance);
        self.update(room, |current| {
            let mut next = current.unwrap_or_else(|| Room::new(room.clone(), SystemTime::now()));
            let joined = next.join(user, conn, max_size)?;
            let mut sets = vec![
                (self.conn_rooms(conn), '+', room.as_str().to_owned()),
                (owner.clone(), '+', conn.as_str().to_owned()),
            ];
            if let Joined::Rejoined { replaced } = &joined {
                sets.push((self.conn_rooms(replaced), '-', room.as_str().to_owned()));
            }
            let outcome = JoinOutcome { users: next.users(), peers: next.peers_of(conn), joined };
            Ok((Change { room: Some(next), sets }, outcome))
        })
        .await
    }

    async fn create(&self, room: &RoomId, meta: RoomMeta, conn: &ConnId) -> Result<JoinOutcome, StoreError> {
        let owner = self.instance_conns(&self.instance);
        self.update(room, |current| {
            if current.is_some() {
                return Err(RoomError::AlreadyExists);
            }
            let next = Room::create(room.clone(), SystemTime::now(), meta.clone(), conn);
            let sets = vec![
                (self.conn_rooms(conn), '+', room.as_str().to_owned()),
                (owner.clone(), '+', conn.as_str().to_owned()),
            ];
            let outcome = JoinOutcome { users: next.users(), peers: next.peers_of(conn), joined: Joined::New };
            Ok((Change { room: Some(next), sets }, outcome))
        })
        .await
    }

    async fn request(
        &self,
        room: &RoomId,
        user: &UserId,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Result<Request, StoreError> {
        self.update(room, |current| {
            let mut next = current.ok_or(RoomError::NoSuchRoom)?;
            let request = next.request(user, now_ms, deadline_ms)?;
            Ok((Change { room: Some(next), sets: vec![] }, request))
        })
        .await
    }

    async fn decide(&self, room: &RoomId, by: &ConnId, user: &UserId, approve: bool) -> Result<(), StoreError> {
        self.update(room, |current| {
            let mut next = current.ok_or(RoomError::NoSuchRoom)?;
            next.decide(by, user, approve)?;
            Ok((Change { room: Some(next), sets: vec![] }, ()))
        })
        .await
    }

    async fn expire_request(&self, room: &RoomId, user: &UserId, now_ms: u64) -> Result<bool, StoreError> {
        self.update(room, |current| {
            let Some(mut next) = current else { return Ok((Change { room: None, sets: vec![] }, false)) };
            let expired = next.expire_request(user, now_ms);
            Ok((Change { room: Some(next), sets: vec![] }, expired))
        })
        .await
    }

    async fn name_user(&self, room: &RoomId, user: &UserId, name: &str) -> Result<(), StoreError> {
        self.update(room, |current| {
            let Some(mut next) = current else { return Ok((Change { room: None, sets: vec![] }, ())) };
            next.name_user(user, name);
            Ok((Change { room: Some(next), sets: vec![] }, ()))
        })
        .await
    }

    async fn leave(&self, room: &RoomId, conn: &ConnId) -> Result<Option<LeaveOutcome>, StoreError> {
        self.update(room, |current| {
            let sets = vec![(self.conn_rooms(conn), '-', room.as_str().to_owned())];
            let Some(mut next) = current else {
                return Ok((Change { room: None, sets }, None));
            };
            let Some(departure) = next.leave(conn) else {
                return Ok((Change { room: Some(next), sets }, None));
            };
            let room_deleted = next.is_empty();
            let outcome = LeaveOutcome {
                room: room.clone(),
                user: departure.user,
                peers: next.peers_of(conn),
                room_deleted,
                new_host: departure.new_host,
            };
            Ok((Change { room: (!room_deleted).then_some(next), sets }, Some(outcome)))
        })
        .await
    }

    async fn leave_all(&self, conn: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError> {
        self.leave_all_of(conn, &self.instance).await
    }

    async fn maintain(&self) -> Result<Vec<LeaveOutcome>, StoreError> {
        let beat = self.heartbeat().await;
        self.cache.set_store_ok(beat.is_ok());
        beat?;
        let mut left = Vec::new();
        for dead in self.dead_instances().await? {
            left.extend(self.reap(&dead).await?);
        }
        Ok(left)
    }

    async fn reconcile(&self, live: &LiveSeats, max_size: usize) -> Result<Reconciled, StoreError> {
        let mut reconciled = Reconciled::default();
        for (conn, seats) in live {
            for (room, user) in seats {
                if let Some(seat) = self.restore(room, user, conn, max_size).await? {
                    reconciled.restored.push(seat);
                }
            }
        }
        let mine: Vec<String> = self.client.smembers(self.instance_conns(&self.instance)).await.map_err(unavailable)?;
        for ghost in mine.iter().filter(|c| !live.iter().any(|(live, _)| live.as_str() == c.as_str())) {
            reconciled.removed.extend(self.leave_all_of(&ConnId::new(ghost), &self.instance).await?);
        }
        Ok(reconciled)
    }

    async fn route(&self, room: &RoomId, from: &ConnId, to: &UserId) -> Result<Route, StoreError> {
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
        let keys = vec![self.key(&["rooms"])];
        let args = vec![self.key(&["room", ""]), offset.to_string(), (offset + limit - 1).to_string()];
        let raw: Vec<Value> = self.list.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        let total = raw.first().and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut rooms = Vec::new();
        for chunk in raw[1..].chunks_exact(3) {
            let (Some(id), Some(created), Some(members)) =
                (chunk[0].as_string(), chunk[1].as_u64(), chunk[2].as_string())
            else {
                continue;
            };
            let Ok(id) = RoomId::parse(&id) else { continue };
            rooms.push(RoomSnapshot::from(&decode(&id, created, &members)?));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisProcess;

    async fn store() -> (RedisStore, RedisProcess) {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        (RedisStore::new(client, "test", "instance-a", Duration::from_secs(10)), redis)
    }

    crate::store_suite!(store());

    #[tokio::test]
    async fn reconcile_restores_lost_seats_keeps_moved_ones_and_removes_ghosts() {
        let (s, redis) = store().await;
        let id = |x: &str| (RoomId::parse(x).unwrap(), UserId::parse(x).unwrap());
        let (r, alice) = id("alice");
        let bob = UserId::parse("bob").unwrap();
        s.join(&r, &alice, &ConnId::new("a1"), 5).await.unwrap();
        s.join(&r, &bob, &ConnId::new("ghost"), 5).await.unwrap();
        // Redis loses everything; meanwhile bob's seat in "moved" went to another instance's connection.
        let _: () = s.client.flushall(false).await.unwrap();
        let moved = RoomId::parse("moved").unwrap();
        let other = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
        other.init().await.unwrap();
        let b = RedisStore::new(other, "test", "instance-b", Duration::from_secs(10));
        b.join(&moved, &alice, &ConnId::new("elsewhere"), 5).await.unwrap();

        let live = vec![(ConnId::new("a1"), vec![(r.clone(), alice.clone()), (moved.clone(), alice.clone())])];
        let done = s.reconcile(&live, 5).await.unwrap();
        assert_eq!(done.restored.len(), 1, "{done:?}");
        assert_eq!((done.restored[0].room.as_str(), done.restored[0].user.as_str()), ("alice", "alice"));
        assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice.clone()]);
        let (_, moved_room) = s.read(&moved).await.unwrap();
        assert_eq!(moved_room.unwrap().seat_of(&alice), Some(&ConnId::new("elsewhere")), "a moved seat stays moved");

        // A connection that is no longer live but still registered here is a ghost.
        s.join(&r, &bob, &ConnId::new("gone"), 5).await.unwrap();
        let done = s.reconcile(&live, 5).await.unwrap();
        assert_eq!(done.removed.len(), 1);
        assert_eq!(done.removed[0].user, bob);
        assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice]);
    }

    #[tokio::test]
    async fn a_survivor_removes_the_participants_of_an_instance_whose_heartbeat_expired() {
        let (a, redis) = store().await;
        let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let b = RedisStore::new(client, "test", "instance-b", Duration::from_secs(10));
        let (r, other) = (RoomId::parse("r").unwrap(), RoomId::parse("gone").unwrap());
        a.join(&r, &UserId::parse("on-a").unwrap(), &ConnId::new("ca"), 5).await.unwrap();
        b.join(&r, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
        b.join(&other, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
        a.maintain().await.unwrap();
        b.maintain().await.unwrap();
        assert!(a.maintain().await.unwrap().is_empty(), "b is alive");

        // b dies: its heartbeat key is gone (as when its TTL runs out).
        let _: () = a.client.del(a.alive_key("instance-b")).await.unwrap();
        let mut left = a.maintain().await.unwrap();
        left.sort_by(|x, y| x.room.cmp(&y.room));
        assert_eq!(left.len(), 2);
        assert!(left[0].room_deleted, "room 'gone' had only b's participant");
        assert_eq!((left[1].user.as_str(), left[1].peers.clone()), ("on-b", vec![ConnId::new("ca")]));
        assert_eq!(a.room(&r).await.unwrap().unwrap().participants, vec![UserId::parse("on-a").unwrap()]);
        assert!(a.maintain().await.unwrap().is_empty(), "reaped once");
    }

    /// A store whose route cache follows announcements, as in `server::run`.
    async fn watching(redis: &RedisProcess, instance: &str) -> RedisStore {
        // Commands fail after 500 ms instead of waiting for a Redis that is gone.
        let timeout = |b: &mut Builder| {
            b.with_performance_config(|p| p.default_command_timeout = Duration::from_millis(500));
        };
        let mut builder = Builder::from_config(Config::from_url(&redis.url()).unwrap());
        timeout(&mut builder);
        let client = builder.build().unwrap();
        client.init().await.unwrap();
        let mut config = Config::from_url(&redis.url()).unwrap();
        config.version = fred::types::RespVersion::RESP3;
        let mut builder = Builder::from_config(config);
        timeout(&mut builder);
        let subscriber = builder.build_subscriber_client().unwrap();
        subscriber.init().await.unwrap();
        let store = RedisStore::new(client, "test", instance, Duration::from_secs(10));
        let subscriptions = crate::redis::keep_subscriptions(subscriber.clone(), vec![store.changes_channel()]);
        store.watch_changes(subscriber, subscriptions.watch());
        store.maintain().await.unwrap();
        wait_until("the route cache is usable", || store.cache.usable()).await;
        store
    }

    async fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Routes until the answer is cached: an announcement still in flight from
    /// an earlier change (correctly) keeps a read from being cached.
    async fn route_until_cached(s: &RedisStore, r: &RoomId, from: &str, to: &UserId) -> Route {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let route = s.route(r, &ConnId::new(from), to).await.unwrap();
            if s.cache.route(r, &ConnId::new(from), to).is_some() {
                return route;
            }
            assert!(tokio::time::Instant::now() < deadline, "the route was never cached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_cached_route_follows_changes_made_on_another_instance_and_here() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let (a, b) = (watching(&redis, "instance-a").await, watching(&redis, "instance-b").await);
        let (r, alice, bob) =
            (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        a.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
        b.join(&r, &bob, &ConnId::new("cb1"), 5).await.unwrap();
        assert_eq!(route_until_cached(&a, &r, "ca", &bob).await.target, ConnId::new("cb1"));

        // bob reconnects on b: his seat moves; a's copy is dropped when b announces it.
        b.join(&r, &bob, &ConnId::new("cb2"), 5).await.unwrap();
        wait_until("a has dropped its copy", || a.cache.is_empty()).await;
        assert_eq!(a.route(&r, &ConnId::new("ca"), &bob).await.unwrap().target, ConnId::new("cb2"));

        // A change made here drops the copy at once, before any announcement.
        a.leave(&r, &ConnId::new("ca")).await.unwrap();
        assert!(a.cache.is_empty());
        let err = a.route(&r, &ConnId::new("ca"), &bob).await.unwrap_err();
        assert!(matches!(err, StoreError::Rule(RoomError::NotInRoom)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_redis_gone_nothing_is_routed_from_the_cache() {
        let mut redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let a = watching(&redis, "instance-a").await;
        let (r, alice, bob) =
            (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        a.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
        a.join(&r, &bob, &ConnId::new("cb"), 5).await.unwrap();
        route_until_cached(&a, &r, "ca", &bob).await;

        tokio::task::block_in_place(|| redis.stop());
        // The lost subscription, or else the next upkeep, empties the cache.
        let _ = a.maintain().await;
        assert!(a.cache.is_empty() && !a.cache.usable());
        let err = a.route(&r, &ConnId::new("ca"), &bob).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_room_deleted_and_created_again_never_reuses_a_version() {
        let (s, _redis) = store().await;
        let (r, u, c) = (RoomId::parse("r").unwrap(), UserId::parse("u").unwrap(), ConnId::new("c"));
        s.join(&r, &u, &c, 5).await.unwrap();
        let (first, _) = s.read(&r).await.unwrap();
        s.leave(&r, &c).await.unwrap();
        s.join(&r, &u, &c, 5).await.unwrap();
        let (second, _) = s.read(&r).await.unwrap();
        assert!(second > first, "a stale writer holding version {first} must lose");
        let stale = Change { room: None, sets: vec![] };
        assert!(!s.write(&r, first, stale).await.unwrap());
    }
}
