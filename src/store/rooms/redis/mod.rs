//! The Redis room store: one cluster-wide view for every instance.
//!
//! Layout (`p` is the prefix in braces, a Redis Cluster hash tag: `{switchboard}` by default):
//! - `p:room:{id}` hash: `v` (version), `created` (ms), `members` (JSON `[[user, conn], ...]`, join order)
//! - `p:rooms` sorted set: room ids scored by `created`, so listings page in creation order
//!   (Redis orders equal scores by member, which is the `id` tie-break)
//! - `p:conn:{conn}` set: the rooms a connection is in (for disconnect clean-up)
//! - `p:held:{n}:{room}:{user}` string, `p:kept:{n}:{room}:{user}` list (`n` the room id's
//!   length): a held seat's marker (`held`, or `live:{conn}` once resumed and handed over)
//!   and the relays kept for it, both expiring a while after the grace (see [`grace`])
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
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::watch;

use super::StoreError;
use super::route_cache::RouteCache;
use crate::domain::{ConnId, Room, RoomId};
use crate::store::redis::clock::{LUA_NOW, RedisClock};
use crate::store::redis::heartbeat::Heartbeat;
use crate::store::redis::instances::Instances;
use crate::store::redis::{MAX_ATTEMPTS, key, millis, unavailable};

mod announcements;
mod codec;
mod grace;
mod scripts;
mod seats;
mod store;
#[cfg(test)]
mod tests;

use scripts::{CAS, DROP_IDLE, KEEP, LIST, TAKE};

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
    keep: Script,
    take: Script,
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
            cas: Script::from_lua(format!("{LUA_NOW}\n{CAS}")),
            list: Script::from_lua(LIST),
            drop_idle: Script::from_lua(DROP_IDLE),
            keep: Script::from_lua(KEEP),
            take: Script::from_lua(TAKE),
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
        tokio::spawn(announcements::watch_changes(
            self.cache.clone(),
            self.changed.clone(),
            subscriber,
            self.changes_channel(),
            sync.clone(),
            ready,
        ));
        tokio::spawn(announcements::watch_stalls(self.cache.clone(), self.client.clone(), self.sync_channel()));
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

    pub(super) fn conn_rooms(&self, conn: &ConnId) -> String {
        self.key(&["conn", conn.as_str()])
    }

    pub(super) fn instance_conns(&self, instance: &str) -> String {
        self.key(&["inst", instance, "conns"])
    }
}
