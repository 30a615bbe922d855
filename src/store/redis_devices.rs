//! The Redis device store: presence, queues, expiry notices, endpoints, job
//! leases and wake-ups, one cluster-wide view for every instance.
//!
//! Layout (prefix `p`, default `switchboard`; device and network ids hold no `:`):
//! - `p:d:dev:{device}` string: the device's record (JSON, times in unix ms)
//! - `p:d:devices` set: every device with a record; `p:d:net:{network}` set: those in one network
//! - `p:d:q:{device}` sorted set: the signals waiting for the device, JSON scored by id;
//!   `p:d:q:{device}:seq`: the last id given; `p:d:queued` set: devices with a non-empty queue
//! - `p:d:n:{device}` sorted set: the expiry notices for the device as a sender, JSON scored by id;
//!   `p:d:n:{device}:seq`: the last id given; `p:d:noticed` set: devices with notices
//! - `p:d:at:{device}` string: the device's live connection, JSON `{instance, conn}`
//! - `p:d:lease:{name}` string: the lease's holder, expiring with the lease
//! - `p:d:announce:{user}:{device}` string: the announcement limit's bucket
//!   (see `ANNOUNCE`), expiring once the bucket is full again
//! - `p:d:wake` channel: ids of devices that have mail
//! - `p:inst:{instance}:alive`: the room store's heartbeat (see [`super::redis`]), which
//!   tells whether an endpoint's instance is alive
//!
//! Atomicity: a record change reads the record, applies the [`Device`] rule and
//! writes the result with a Lua compare-and-set on the exact JSON it read,
//! retrying on conflict; the network sets change in the same script. Each
//! queue and notice change is one Lua script, so an id is never given twice
//! and two instances expiring at once move each signal to its sender's notices
//! exactly once. Promotion plans from fresh records and promotes one device at
//! a time through the same compare-and-set; a planned device that changed
//! meanwhile makes it plan again, so two instances promoting at once fill each
//! missing seat once.
//!
//! Times are the callers' `now`, never Redis's clock, except in the
//! announcement limit, which every instance must count alike: nothing but a
//! lease and an announcement bucket has a Redis TTL; the sweep and expiry
//! delete records and signals. The id counters
//! stay, so an id is not given again once its queue or notice list empties.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::StoreError;
use super::devices::{
    DeviceStore, DeviceStoreError, Endpoint, PeerLookup, PresenceStats, Sweep, WAKE_CAPACITY, Wake, earliest_first,
    lookup, stats,
};
use super::redis::{MAX_ATTEMPTS, alive_key, key, millis, unavailable};
use crate::domain::presence::{self, Announcement, Capability, Device, DeviceId, NetworkId, SignalAddress};
use crate::domain::signal::{Expired, Notice, Outgoing, Queued, SignalKind};
use crate::domain::{ConnId, UserId};

/// Compare-and-set of one device record, with its set memberships.
/// KEYS: record, old network set, new network set, all-devices set (the old
/// and new network sets are the same key unless the device moves).
/// ARGV: the JSON read ('' when absent), the JSON to write ('' deletes), device id.
const PUT: &str = r#"
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
if KEYS[2] ~= KEYS[3] or ARGV[2] == '' then redis.call('SREM', KEYS[2], ARGV[3]) end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[4], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[3])
end
return 1
"#;

/// Queues a signal unless the queue is full; returns its id, 0 when full.
/// The id is spliced in as the JSON's first field.
/// KEYS: queue, id counter, queued set. ARGV: max, signal JSON without id, receiver.
const ENQUEUE: &str = r#"
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local id = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], id, '{"id":' .. id .. ',' .. string.sub(ARGV[2], 2))
redis.call('SADD', KEYS[3], ARGV[3])
return id
"#;

/// Moves one expired signal to its sender's notices, if it is still queued;
/// returns the notice's id, 0 when another instance moved it first.
/// KEYS: queue, queued set, sender's notices, sender's notice counter, noticed set.
/// ARGV: the signal's JSON as read, receiver, notice JSON without id, sender.
const EXPIRE: &str = r#"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
local id = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], id, '{"id":' .. id .. ',' .. string.sub(ARGV[3], 2))
redis.call('SADD', KEYS[5], ARGV[4])
return id
"#;

/// Removes the entries with ids in a range from a queue or a notice list, and
/// the owner from the index once its list is empty; returns how many.
/// KEYS: sorted set, index set. ARGV: lowest id, highest id, owner device.
const DROP: &str = r#"
local removed = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return removed
"#;

/// Deletes an endpoint if it is still the one given. KEYS: endpoint. ARGV: its JSON.
const UNREGISTER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Takes a free lease or renews one's own; 1 if `holder` holds it now.
/// KEYS: lease. ARGV: holder, TTL in ms.
const LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// One announcement against a token bucket of `max` per `window` (GCRA: a
/// burst of `max`, then one every `window / max`), on Redis's clock so that
/// every instance counts alike. The key holds "base ahead": `base` the time
/// (ms) of the last count, `ahead` how far past it the bucket's theoretical
/// arrival time was, in 1/`max` ms, so all arithmetic is on whole numbers below
/// 2^53. Returns 0 when counted, else the milliseconds to wait (nothing counted).
/// KEYS: the bucket. ARGV: window (ms), max.
const ANNOUNCE: &str = r#"
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ahead = 0
local held = redis.call('GET', KEYS[1])
if held then
  local base, was = string.match(held, '^(%d+) (%d+)$')
  if base then
    local elapsed = math.min(math.max(now - tonumber(base), 0), window)
    ahead = math.max(tonumber(was) - elapsed * max, 0)
  end
end
local next = ahead + window
if next > window * max then
  return math.ceil((next - window * max) / max)
end
redis.call('SET', KEYS[1], string.format('%d %d', now, next), 'PX', math.ceil(next / max))
return 0
"#;

/// Most device records read with one `MGET`.
const MGET_CHUNK: usize = 500;

/// Signals of one queue read at a time by `expire`, which takes a queue's
/// signals oldest first and stops at the first one not expired.
const EXPIRE_PAGE: i64 = 100;

/// Presence and queues in Redis, shared by every instance.
pub struct RedisDevices {
    client: Client,
    /// The root prefix (`p`), for the room store's heartbeat keys.
    prefix: String,
    /// `p:d`, under which every key of this store lives.
    root: String,
    instance: String,
    put: Script,
    enqueue: Script,
    expire: Script,
    drop: Script,
    unregister: Script,
    lease: Script,
    announce: Script,
    wakes: broadcast::Sender<Wake>,
}

impl RedisDevices {
    /// A store over `client` (already connected) for the instance `instance`:
    /// the id its endpoints carry, which this store takes as alive without
    /// asking (it is running).
    pub fn new(client: Client, prefix: &str, instance: &str) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            root: key(prefix, &["d"]),
            instance: instance.to_owned(),
            put: Script::from_lua(PUT),
            enqueue: Script::from_lua(ENQUEUE),
            expire: Script::from_lua(EXPIRE),
            drop: Script::from_lua(DROP),
            unregister: Script::from_lua(UNREGISTER),
            lease: Script::from_lua(LEASE),
            announce: Script::from_lua(ANNOUNCE),
            wakes: broadcast::channel(WAKE_CAPACITY).0,
        }
    }

    /// Starts hearing wake-ups from every instance on `subscriber`, whose
    /// subscription to [`Self::wake_channel`] `ready` follows
    /// ([`keep_subscriptions`](crate::redis::keep_subscriptions) keeps it);
    /// each time it is back, [`Wake::All`], since wake-ups were missed.
    pub fn watch_wakes(&self, subscriber: SubscriberClient, ready: watch::Receiver<bool>) {
        tokio::spawn(watch_wakes(self.wakes.clone(), subscriber, self.wake_channel(), ready));
    }

    /// The channel wake-ups go on: give it to
    /// [`keep_subscriptions`](crate::redis::keep_subscriptions).
    pub fn wake_channel(&self) -> String {
        self.key(&["wake"])
    }

    fn key(&self, parts: &[&str]) -> String {
        key(&self.root, parts)
    }

    fn record_key(&self, device: &str) -> String {
        self.key(&["dev", device])
    }

    fn network_key(&self, network: &NetworkId) -> String {
        self.key(&["net", network.as_str()])
    }

    fn queue_key(&self, device: &str) -> String {
        self.key(&["q", device])
    }

    fn notices_key(&self, device: &str) -> String {
        self.key(&["n", device])
    }

    /// The records of `ids` that exist.
    async fn records(&self, ids: Vec<String>) -> Result<Vec<Device>, DeviceStoreError> {
        let mut devices = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MGET_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|id| self.record_key(id)).collect();
            let raws: Vec<Option<String>> = self.client.mget(keys.clone()).await.map_err(unavailable)?;
            for (key, raw) in keys.iter().zip(raws) {
                if let Some(raw) = raw {
                    devices.push(decode(key, &raw, DeviceJson::into_device)?);
                }
            }
        }
        Ok(devices)
    }

    /// Every device record.
    async fn all(&self) -> Result<Vec<Device>, DeviceStoreError> {
        let ids: Vec<String> = self.client.smembers(self.key(&["devices"])).await.map_err(unavailable)?;
        self.records(ids).await
    }

    /// The records in `network` (one that moved after the set was read is left out).
    async fn network(&self, network: &NetworkId) -> Result<Vec<Device>, DeviceStoreError> {
        let ids: Vec<String> = self.client.smembers(self.network_key(network)).await.map_err(unavailable)?;
        Ok(self.records(ids).await?.into_iter().filter(|d| &d.network == network).collect())
    }

    /// Applies `rule` to the device's record (`None`: absent) and writes the
    /// record it returns (`None` deletes) atomically, retrying on races.
    async fn update<T>(
        &self,
        id: &DeviceId,
        rule: impl Fn(Option<&Device>) -> Result<(Option<Device>, T), DeviceStoreError>,
    ) -> Result<T, DeviceStoreError> {
        let key = self.record_key(id.as_str());
        for _ in 0..MAX_ATTEMPTS {
            let raw: Option<String> = self.client.get(&key).await.map_err(unavailable)?;
            let current = raw.as_deref().map(|raw| decode(&key, raw, DeviceJson::into_device)).transpose()?;
            let (next, result) = rule(current.as_ref())?;
            if next == current {
                return Ok(result);
            }
            let set = |d: &Device| self.network_key(&d.network);
            // A new record has no old set, a deleted one no new set: the other stands in.
            let old_set = current.as_ref().or(next.as_ref()).map(set).unwrap_or_default();
            let new_set = next.as_ref().or(current.as_ref()).map(set).unwrap_or_default();
            let json = next.as_ref().map(|d| encode(&DeviceJson::from(d))).transpose()?.unwrap_or_default();
            let keys = vec![key.clone(), old_set, new_set, self.key(&["devices"])];
            let args = vec![raw.unwrap_or_default(), json, id.as_str().to_owned()];
            let written: i64 = self.put.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
            if written == 1 {
                return Ok(result);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::Unavailable(format!("device {id:?} stayed contended for {MAX_ATTEMPTS} attempts")).into())
    }

    /// Promotes the devices missing in `network`. A planned device that
    /// changed meanwhile (another instance promoted it, say) is not promoted,
    /// and the plan is made again from fresh records.
    async fn promote_in(&self, network: &NetworkId, min: usize) -> Result<Vec<Device>, DeviceStoreError> {
        let mut promoted = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let online: Vec<Device> = self.network(network).await?.into_iter().filter(|d| d.online).collect();
            let mut stale_plan = false;
            for id in presence::promotions(&online, min) {
                let done = self
                    .update(&id, |current| match current {
                        Some(d) if &d.network == network && d.can_be_promoted() => {
                            let mut next = d.clone();
                            next.promote();
                            Ok((Some(next.clone()), Some(next)))
                        }
                        other => Ok((other.cloned(), None)),
                    })
                    .await?;
                let Some(device) = done else {
                    stale_plan = true;
                    break;
                };
                promoted.push(device);
            }
            if !stale_plan {
                return Ok(promoted);
            }
        }
        Err(StoreError::Unavailable(format!("network {network:?} stayed contended for {MAX_ATTEMPTS} attempts")).into())
    }

    /// A sorted set's entries from rank `start` to `stop` (-1: the last), lowest
    /// id first: each as stored, and decoded.
    async fn entries<J: DeserializeOwned, T>(
        &self,
        key: &str,
        (start, stop): (i64, i64),
        convert: impl Fn(J) -> Result<T, String>,
    ) -> Result<Vec<(String, T)>, DeviceStoreError> {
        let raws: Vec<String> =
            self.client.zrange(key, start, stop, None, false, None, false).await.map_err(unavailable)?;
        raws.into_iter()
            .map(|raw| {
                let value = decode(key, &raw, &convert)?;
                Ok((raw, value))
            })
            .collect()
    }

    /// Removes the entries with ids from `low` to `high` from `owner`'s
    /// sorted set `list` (its queue or notices), whose index is `index`; the
    /// entries removed, as stored, oldest first.
    async fn drop_ids(
        &self,
        list: String,
        index: &str,
        owner: &str,
        low: &str,
        high: &str,
    ) -> Result<Vec<String>, DeviceStoreError> {
        let keys = vec![list, self.key(&[index])];
        let args = vec![low.to_owned(), high.to_owned(), owner.to_owned()];
        Ok(self.drop.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?)
    }

    /// `raw` (an endpoint as stored, if any), if its instance is alive.
    async fn live(&self, key: &str, raw: Option<String>) -> Result<Option<Endpoint>, DeviceStoreError> {
        let Some(raw) = raw else { return Ok(None) };
        let at = decode(key, &raw, EndpointJson::into_endpoint)?;
        if *at.instance == self.instance {
            return Ok(Some(at));
        }
        let alive: bool = self.client.exists(alive_key(&self.prefix, &at.instance)).await.map_err(unavailable)?;
        Ok(alive.then_some(at))
    }
}

/// Forwards the device ids published on `channel` to `wakes`.
/// Wake-ups missed (a lagging or reconnecting subscriber) become [`Wake::All`].
async fn watch_wakes(
    wakes: broadcast::Sender<Wake>,
    subscriber: SubscriberClient,
    channel: String,
    mut ready: watch::Receiver<bool>,
) {
    let mut messages = subscriber.message_rx();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(m) if &*m.channel == channel.as_str() => {
                    if let Some(id) = m.value.as_str().and_then(|id| DeviceId::parse(&id).ok()) {
                        // No receiver (no device connected here) is not an error.
                        let _ = wakes.send(Wake::Device(id));
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "device wake-ups were dropped: every local device reads its mail");
                    let _ = wakes.send(Wake::All);
                }
                Err(RecvError::Closed) => return,
            },
            change = ready.changed() => match change {
                // Subscribed again: wake-ups published while this instance was
                // away are lost, so every local device reads its mail.
                Ok(()) if *ready.borrow_and_update() => drop(wakes.send(Wake::All)),
                Ok(()) => {}
                Err(_) => return,
            },
        }
    }
}

/// A device record as stored.
#[derive(Serialize, Deserialize)]
struct DeviceJson {
    id: String,
    user: String,
    network: String,
    signal_address: String,
    capabilities: Vec<String>,
    coordinator: bool,
    last_seen: u64,
    online: bool,
    created_at: u64,
}

impl From<&Device> for DeviceJson {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.to_string(),
            user: d.user.to_string(),
            network: d.network.to_string(),
            signal_address: d.signal_address.to_string(),
            capabilities: d.capabilities.iter().map(|c| c.name().to_owned()).collect(),
            coordinator: d.coordinator,
            last_seen: millis(d.last_seen),
            online: d.online,
            created_at: millis(d.created_at),
        }
    }
}

impl DeviceJson {
    fn into_device(self) -> Result<Device, String> {
        Ok(Device {
            id: valid(&self.id, DeviceId::parse)?,
            user: valid(&self.user, UserId::parse)?,
            network: valid(&self.network, NetworkId::parse)?,
            signal_address: valid(&self.signal_address, SignalAddress::parse)?,
            capabilities: self.capabilities.iter().map(|c| valid(c, Capability::parse)).collect::<Result<_, _>>()?,
            coordinator: self.coordinator,
            last_seen: time(self.last_seen),
            online: self.online,
            created_at: time(self.created_at),
        })
    }
}

/// A queued signal as stored; `id` is given (and spliced in) by the enqueue script.
#[derive(Serialize, Deserialize)]
struct SignalJson {
    #[serde(skip_serializing)]
    id: u64,
    kind: String,
    from: String,
    to: String,
    data: serde_json::Value,
    queued_at: u64,
}

impl SignalJson {
    fn new(signal: &Outgoing, now: SystemTime) -> Self {
        Self {
            id: 0,
            kind: signal.kind.name().to_owned(),
            from: signal.from.to_string(),
            to: signal.to.to_string(),
            data: signal.data.clone(),
            queued_at: millis(now),
        }
    }

    fn into_queued(self) -> Result<Queued, String> {
        let signal = Outgoing {
            kind: kind(&self.kind)?,
            from: valid(&self.from, DeviceId::parse)?,
            to: valid(&self.to, DeviceId::parse)?,
            data: self.data,
        };
        Ok(Queued { id: self.id, signal, queued_at: time(self.queued_at) })
    }
}

/// An expiry notice as stored; `id` is given (and spliced in) by the expire script.
#[derive(Serialize, Deserialize)]
struct NoticeJson {
    #[serde(skip_serializing)]
    id: u64,
    sender: String,
    to: String,
    kind: String,
    queued_at: u64,
}

impl From<&Expired> for NoticeJson {
    fn from(e: &Expired) -> Self {
        Self {
            id: 0,
            sender: e.sender.to_string(),
            to: e.to.to_string(),
            kind: e.kind.name().to_owned(),
            queued_at: millis(e.queued_at),
        }
    }
}

impl NoticeJson {
    fn into_notice(self) -> Result<Notice, String> {
        let expired = Expired {
            sender: valid(&self.sender, DeviceId::parse)?,
            to: valid(&self.to, DeviceId::parse)?,
            kind: kind(&self.kind)?,
            queued_at: time(self.queued_at),
        };
        Ok(Notice { id: self.id, expired })
    }
}

/// An endpoint as stored.
#[derive(Serialize, Deserialize)]
struct EndpointJson {
    instance: String,
    conn: String,
}

impl From<&Endpoint> for EndpointJson {
    fn from(at: &Endpoint) -> Self {
        Self { instance: at.instance.to_string(), conn: at.conn.as_str().to_owned() }
    }
}

impl EndpointJson {
    fn into_endpoint(self) -> Result<Endpoint, String> {
        Ok(Endpoint { instance: self.instance.into(), conn: ConnId::new(&self.conn) })
    }
}

fn encode(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The value stored at `key` as `raw`, or why it is corrupt.
fn decode<J: DeserializeOwned, T>(
    key: &str,
    raw: &str,
    convert: impl FnOnce(J) -> Result<T, String>,
) -> Result<T, StoreError> {
    let json = serde_json::from_str(raw).map_err(|e| e.to_string());
    json.and_then(convert).map_err(|why| StoreError::Unavailable(format!("{key} in Redis is corrupt: {why}")))
}

/// `raw` parsed by a domain rule, or why not.
fn valid<T, E: Display>(raw: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, String> {
    parse(raw).map_err(|e| format!("{raw:?}: {e}"))
}

fn kind(raw: &str) -> Result<SignalKind, String> {
    SignalKind::parse(raw).ok_or_else(|| format!("{raw:?} is no signal kind"))
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[async_trait]
impl DeviceStore for RedisDevices {
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, DeviceStoreError> {
        self.update(&a.device, |current| {
            let device = Device::announce(current.filter(|d| !d.is_expired(now)), a.clone(), now)?;
            Ok((Some(device.clone()), device))
        })
        .await
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, DeviceStoreError> {
        let key = self.record_key(id.as_str());
        let raw: Option<String> = self.client.get(&key).await.map_err(unavailable)?;
        Ok(raw.map(|raw| decode(&key, &raw, DeviceJson::into_device)).transpose()?)
    }

    async fn peers(
        &self,
        network: &NetworkId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Vec<Device>, DeviceStoreError> {
        let mut peers: Vec<Device> =
            self.network(network).await?.into_iter().filter(|d| d.online && !d.is_stale(now, ttl)).collect();
        earliest_first(&mut peers);
        Ok(peers)
    }

    async fn find_user(
        &self,
        network: &NetworkId,
        user: &UserId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<PeerLookup, DeviceStoreError> {
        Ok(lookup(self.network(network).await?.iter(), user, now, ttl))
    }

    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, DeviceStoreError> {
        let mut sweep = Sweep::default();
        let due = self.all().await?.into_iter().filter(|d| d.is_stale(now, ttl) || d.is_expired(now));
        for device in due {
            // Decided again on a fresh read: an announcement may have come meanwhile.
            let (offline, deleted) = self
                .update(&device.id, |current| {
                    let Some(d) = current else { return Ok((None, (false, false))) };
                    let stale = d.is_stale(now, ttl);
                    if d.is_expired(now) {
                        return Ok((None, (stale, true)));
                    }
                    let mut next = d.clone();
                    if stale {
                        next.go_offline();
                    }
                    Ok((Some(next), (stale, false)))
                })
                .await?;
            if offline {
                sweep.went_offline.push(device.id);
            }
            sweep.deleted += usize::from(deleted);
        }
        sweep.went_offline.sort();
        Ok(sweep)
    }

    async fn promote(&self, min: usize) -> Result<Vec<Device>, DeviceStoreError> {
        let networks: BTreeSet<NetworkId> =
            self.all().await?.into_iter().filter(|d| d.online).map(|d| d.network).collect();
        let mut promoted = Vec::new();
        for network in &networks {
            promoted.extend(self.promote_in(network, min).await?);
        }
        earliest_first(&mut promoted);
        Ok(promoted)
    }

    async fn stats(&self) -> Result<PresenceStats, DeviceStoreError> {
        let devices = self.all().await?;
        let receivers: Vec<String> = self.client.smembers(self.key(&["queued"])).await.map_err(unavailable)?;
        let pipeline = self.client.pipeline();
        for receiver in &receivers {
            let _: () = pipeline.zcard(self.queue_key(receiver)).await.map_err(unavailable)?;
        }
        let lengths: Vec<u64> = pipeline.all().await.map_err(unavailable)?;
        Ok(stats(devices.iter(), lengths.iter().sum::<u64>() as usize))
    }

    async fn enqueue(&self, signal: Outgoing, now: SystemTime, max: usize) -> Result<Queued, DeviceStoreError> {
        let to = signal.to.as_str();
        let keys = vec![self.queue_key(to), self.key(&["q", to, "seq"]), self.key(&["queued"])];
        let args = vec![max.to_string(), encode(&SignalJson::new(&signal, now))?, to.to_owned()];
        let id: u64 = self.enqueue.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        if id == 0 {
            return Err(DeviceStoreError::QueueFull(max));
        }
        Ok(Queued { id, signal, queued_at: now })
    }

    async fn pending(&self, to: &DeviceId) -> Result<Vec<Queued>, DeviceStoreError> {
        let entries = self.entries(&self.queue_key(to.as_str()), (0, -1), SignalJson::into_queued).await?;
        Ok(entries.into_iter().map(|(_, q)| q).collect())
    }

    async fn ack(&self, to: &DeviceId, up_to: u64) -> Result<Vec<Queued>, DeviceStoreError> {
        let queue = self.queue_key(to.as_str());
        let removed = self.drop_ids(queue.clone(), "queued", to.as_str(), "-inf", &up_to.to_string()).await?;
        Ok(removed.iter().map(|raw| decode(&queue, raw, SignalJson::into_queued)).collect::<Result<_, _>>()?)
    }

    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, DeviceStoreError> {
        let id = id.to_string();
        Ok(!self.drop_ids(self.queue_key(to.as_str()), "queued", to.as_str(), &id, &id).await?.is_empty())
    }

    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, DeviceStoreError> {
        let senders: Vec<String> = self.client.smembers(self.key(&["noticed"])).await.map_err(unavailable)?;
        for sender in senders {
            for (_, n) in self.entries(&self.notices_key(&sender), (0, -1), NoticeJson::into_notice).await? {
                if n.is_past_retention(now, ttl) {
                    let id = n.id.to_string();
                    self.drop_ids(self.notices_key(&sender), "noticed", &sender, &id, &id).await?;
                }
            }
        }
        let mut expired = Vec::new();
        let receivers: Vec<String> = self.client.smembers(self.key(&["queued"])).await.map_err(unavailable)?;
        for receiver in receivers {
            let queue = self.queue_key(&receiver);
            'queue: loop {
                let page = self.entries(&queue, (0, EXPIRE_PAGE - 1), SignalJson::into_queued).await?;
                let more = page.len() == EXPIRE_PAGE as usize;
                for (raw, q) in page {
                    if !q.is_expired(now, ttl) {
                        break 'queue;
                    }
                    let e = Expired::from(&q);
                    let sender = e.sender.as_str();
                    let keys = vec![
                        queue.clone(),
                        self.key(&["queued"]),
                        self.notices_key(sender),
                        self.key(&["n", sender, "seq"]),
                        self.key(&["noticed"]),
                    ];
                    let args = vec![raw, receiver.clone(), encode(&NoticeJson::from(&e))?, sender.to_owned()];
                    let filed: u64 =
                        self.expire.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
                    // 0: another instance expired it first, and filed its notice.
                    if filed > 0 {
                        expired.push(e);
                    }
                }
                // The page is gone (here or elsewhere): the next one starts at rank 0 again.
                if !more {
                    break;
                }
            }
        }
        Ok(expired)
    }

    async fn notices(&self, sender: &DeviceId) -> Result<Vec<Notice>, DeviceStoreError> {
        let entries = self.entries(&self.notices_key(sender.as_str()), (0, -1), NoticeJson::into_notice).await?;
        Ok(entries.into_iter().map(|(_, n)| n).collect())
    }

    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, DeviceStoreError> {
        let id = id.to_string();
        Ok(!self.drop_ids(self.notices_key(sender.as_str()), "noticed", sender.as_str(), &id, &id).await?.is_empty())
    }

    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, DeviceStoreError> {
        let key = self.key(&["at", device.as_str()]);
        let json = encode(&EndpointJson::from(&at))?;
        let previous: Option<String> = self.client.set(&key, json, None, None, true).await.map_err(unavailable)?;
        self.live(&key, previous).await
    }

    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, DeviceStoreError> {
        let keys = vec![self.key(&["at", device.as_str()])];
        let json = encode(&EndpointJson::from(at))?;
        let removed: i64 =
            self.unregister.evalsha_with_reload(&self.client, keys, vec![json]).await.map_err(unavailable)?;
        Ok(removed == 1)
    }

    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, DeviceStoreError> {
        let key = self.key(&["at", device.as_str()]);
        let raw: Option<String> = self.client.get(&key).await.map_err(unavailable)?;
        self.live(&key, raw).await
    }

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, DeviceStoreError> {
        let keys = vec![self.key(&["lease", name])];
        let args = vec![holder.to_owned(), ttl.as_millis().max(1).to_string()];
        let held: i64 = self.lease.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(held == 1)
    }

    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        (max, window): (u32, Duration),
    ) -> Result<Option<Duration>, DeviceStoreError> {
        // Device ids hold no ':', so the key names one user and device.
        let keys = vec![self.key(&["announce", user.as_str(), device.as_str()])];
        let args = vec![window.as_millis().max(1).to_string(), max.max(1).to_string()];
        let wait: i64 = self.announce.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok((wait > 0).then(|| Duration::from_millis(wait.unsigned_abs())))
    }

    async fn wake(&self, device: &DeviceId) -> Result<(), DeviceStoreError> {
        let _: () = self.client.publish(self.wake_channel(), device.as_str()).await.map_err(unavailable)?;
        Ok(())
    }

    fn wakes(&self) -> broadcast::Receiver<Wake> {
        self.wakes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::device_suite::{INSTANCE, announcement, at, id, signal, t};
    use crate::testing::RedisProcess;

    /// A store for `instance` that hears wake-ups, as `server::run` would build it.
    async fn devices(redis: &RedisProcess, instance: &str) -> RedisDevices {
        let mut config = Config::from_url(&redis.url()).unwrap();
        let client = Builder::from_config(config.clone()).build().unwrap();
        client.init().await.unwrap();
        // The socket.io adapter's subscriber, whose wake-ups this store shares, speaks RESP3.
        config.version = fred::types::RespVersion::RESP3;
        let subscriber = Builder::from_config(config).build_subscriber_client().unwrap();
        subscriber.init().await.unwrap();
        let store = RedisDevices::new(client, "test", instance);
        let subscriptions = crate::redis::keep_subscriptions(subscriber.clone(), vec![store.wake_channel()]);
        store.watch_wakes(subscriber, subscriptions.watch());
        let subscribed = tokio::time::timeout(Duration::from_secs(5), subscriptions.until_ready()).await;
        subscribed.expect("never subscribed to wake-ups");
        store
    }

    async fn store() -> (RedisDevices, RedisProcess) {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        (devices(&redis, INSTANCE).await, redis)
    }

    async fn two() -> (Arc<RedisDevices>, Arc<RedisDevices>, RedisProcess) {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let (a, b) = (devices(&redis, "instance-a").await, devices(&redis, "instance-b").await);
        (Arc::new(a), Arc::new(b), redis)
    }

    crate::device_store_suite!(store());

    #[tokio::test]
    async fn an_endpoint_counts_only_while_its_instance_is_alive() {
        let (s, _redis) = store().await;
        let (device, alive) = (id("peer_a"), alive_key("test", "instance-b"));
        let _: () = s.client.set(&alive, 1, None, None, false).await.unwrap();
        let on_b = Endpoint { instance: "instance-b".into(), conn: ConnId::new("cb") };
        assert_eq!(s.register(&device, on_b.clone()).await.unwrap(), None);
        assert_eq!(s.endpoint(&device).await.unwrap(), Some(on_b.clone()));

        // instance-b dies: its heartbeat key is gone (as when its TTL runs out).
        let _: () = s.client.del(&alive).await.unwrap();
        assert_eq!(s.endpoint(&device).await.unwrap(), None);
        assert_eq!(s.register(&device, at("c1")).await.unwrap(), None, "nothing live was replaced");
        assert_eq!(s.endpoint(&device).await.unwrap(), Some(at("c1")), "this instance is alive without a heartbeat");
        assert!(!s.unregister(&device, &on_b).await.unwrap());
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_is_renewed_by_it_and_taken_over_after_its_ttl() {
        let (a, b, _redis) = two().await;
        let short = Duration::from_millis(200);
        assert!(a.lease("sweep", "instance-a", short).await.unwrap());
        assert!(!b.lease("sweep", "instance-b", short).await.unwrap(), "held by a");
        assert!(b.lease("promote", "instance-b", short).await.unwrap(), "another lease is another lock");
        assert!(a.lease("sweep", "instance-a", Duration::from_secs(30)).await.unwrap(), "renewed by its holder");
        let left: i64 = a.client.pttl("test:d:lease:sweep").await.unwrap();
        assert!(left > 1_000, "the renewal extended it: {left} ms left");

        assert!(a.lease("sweep", "instance-a", short).await.unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !b.lease("sweep", "instance-b", short).await.unwrap() {
            assert!(tokio::time::Instant::now() < deadline, "never taken over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!a.lease("sweep", "instance-a", short).await.unwrap(), "a lost it to b");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_expiring_at_once_file_exactly_one_notice_per_signal() {
        let (a, b, _redis) = two().await;
        // 150 signals per queue: more than one page each.
        for n in 0..300 {
            let (from, to) = (["peer_x", "peer_y", "peer_z"][n as usize % 3], ["peer_p", "peer_q"][n as usize % 2]);
            a.enqueue(signal(from, to, n), t(n), 1000).await.unwrap();
        }
        let ttl = Duration::from_secs(60);
        let runs: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|s| tokio::spawn(async move { s.expire(t(1_000), ttl).await.unwrap() }))
            .collect();
        let mut expired = 0;
        for run in runs {
            expired += run.await.unwrap().len();
        }
        assert_eq!(expired, 300, "each expired signal is reported by one run");
        for sender in ["peer_x", "peer_y", "peer_z"] {
            let notices: Vec<u64> = b.notices(&id(sender)).await.unwrap().iter().map(|n| n.id).collect();
            assert_eq!(notices, (1..=100).collect::<Vec<_>>(), "{sender}: one notice per signal");
        }
        assert_eq!(a.stats().await.unwrap().queued_signals, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_enqueues_from_two_instances_get_distinct_increasing_ids() {
        let (a, b, _redis) = two().await;
        let tasks: Vec<_> = (0..40)
            .map(|n| {
                let s = if n % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { s.enqueue(signal("peer_a", "peer_b", n), t(n), 1000).await.unwrap().id })
            })
            .collect();
        let mut given = Vec::new();
        for task in tasks {
            given.push(task.await.unwrap());
        }
        given.sort();
        assert_eq!(given, (1..=40).collect::<Vec<_>>());
        let pending: Vec<u64> = b.pending(&id("peer_b")).await.unwrap().iter().map(|q| q.id).collect();
        assert_eq!(pending, given);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_promotions_on_two_instances_promote_exactly_the_missing_number() {
        let (a, b, _redis) = two().await;
        for (i, dev) in ["peer_a", "peer_b", "peer_c", "peer_d"].iter().enumerate() {
            a.announce(announcement("home", dev, dev, &[Capability::Store]), t(i as u64)).await.unwrap();
        }
        let runs: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|s| tokio::spawn(async move { s.promote(3).await.unwrap() }))
            .collect();
        let mut promoted = Vec::new();
        for run in runs {
            promoted.extend(run.await.unwrap().into_iter().map(|d| d.id));
        }
        promoted.sort();
        assert_eq!(promoted, vec![id("peer_a"), id("peer_b"), id("peer_c")]);
        assert_eq!(b.stats().await.unwrap().coordinators, vec![(NetworkId::parse("home").unwrap(), 3)]);
    }

    #[tokio::test]
    async fn everything_survives_a_restart_of_switchboard() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let before = devices(&redis, "instance-a").await;
        let device =
            before.announce(announcement("home", "peer_a", "alice", &[Capability::Relay]), t(0)).await.unwrap();
        before.enqueue(signal("peer_b", "peer_a", 1), t(0), 10).await.unwrap();
        before.enqueue(signal("peer_b", "peer_a", 2), t(100), 10).await.unwrap();
        before.expire(t(60), Duration::from_secs(60)).await.unwrap();
        assert!(before.lease("sweep", "instance-a", Duration::from_secs(30)).await.unwrap());
        drop(before);

        let after = devices(&redis, "instance-a2").await;
        assert_eq!(after.device(&id("peer_a")).await.unwrap(), Some(device));
        let pending = after.pending(&id("peer_a")).await.unwrap();
        assert_eq!((pending.len(), pending[0].id, pending[0].signal.clone()), (1, 2, signal("peer_b", "peer_a", 2)));
        assert_eq!(after.notices(&id("peer_b")).await.unwrap().len(), 1);
        assert_eq!(after.enqueue(signal("peer_b", "peer_a", 3), t(200), 10).await.unwrap().id, 3);
        assert!(!after.lease("sweep", "instance-a2", Duration::from_secs(30)).await.unwrap(), "held until it expires");
    }

    #[tokio::test]
    async fn a_wake_on_one_instance_reaches_every_instance() {
        let (a, b, _redis) = two().await;
        let (mut on_a, mut on_b) = (a.wakes(), b.wakes());
        a.wake(&id("peer_a")).await.unwrap();
        for rx in [&mut on_b, &mut on_a] {
            let woken = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("woken in time");
            assert_eq!(woken.unwrap(), Wake::Device(id("peer_a")));
        }
    }

    #[tokio::test]
    async fn a_corrupt_record_is_reported_as_unavailable() {
        let (s, _redis) = store().await;
        let _: () = s.client.set("test:d:dev:peer_a", "{not json", None, None, false).await.unwrap();
        let _: () = s.client.sadd("test:d:devices", "peer_a").await.unwrap();
        for result in [s.device(&id("peer_a")).await.map(|_| ()), s.stats().await.map(|_| ())] {
            match result {
                Err(DeviceStoreError::Store(StoreError::Unavailable(why))) => {
                    assert!(why.starts_with("test:d:dev:peer_a in Redis is corrupt"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
