//! [`Presence`] in Redis: device records changed by compare-and-set, network
//! sets beside them, and the announcement limit as a GCRA script.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use super::codec::DeviceJson;
use super::device_key;
use crate::domain::UserId;
use crate::domain::presence::{
    self, Announcement, Device, DeviceId, NetworkId, PeerLookup, PresenceStats, earliest_first,
};
use crate::store::StoreError;
use crate::store::devices::{AnnounceFailure, Presence, Sweep};
use crate::store::redis::{MAX_ATTEMPTS, decode, encode, unavailable};

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

/// Device records and the announcement limit in Redis.
pub struct RedisPresence {
    client: Client,
    prefix: String,
    put: Script,
    announce: Script,
}

impl RedisPresence {
    /// The engine over `client` (connected), keys under `prefix`.
    pub fn new(client: Client, prefix: &str) -> Self {
        Self { client, prefix: prefix.to_owned(), put: Script::from_lua(PUT), announce: Script::from_lua(ANNOUNCE) }
    }

    fn key(&self, parts: &[&str]) -> String {
        device_key(&self.prefix, parts)
    }

    fn record_key(&self, device: &str) -> String {
        self.key(&["dev", device])
    }

    fn network_key(&self, network: &NetworkId) -> String {
        self.key(&["net", network.as_str()])
    }

    /// The records of `ids` that exist.
    async fn records(&self, ids: Vec<String>) -> Result<Vec<Device>, StoreError> {
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
    async fn all(&self) -> Result<Vec<Device>, StoreError> {
        let ids: Vec<String> = self.client.smembers(self.key(&["devices"])).await.map_err(unavailable)?;
        self.records(ids).await
    }

    /// The records in `network` (one that moved after the set was read is left out).
    async fn network(&self, network: &NetworkId) -> Result<Vec<Device>, StoreError> {
        let ids: Vec<String> = self.client.smembers(self.network_key(network)).await.map_err(unavailable)?;
        Ok(self.records(ids).await?.into_iter().filter(|d| &d.network == network).collect())
    }

    /// Applies `rule` to the device's record (`None`: absent) and writes the
    /// record it returns (`None` deletes) atomically, retrying on races.
    async fn update<T, E: From<StoreError>>(
        &self,
        id: &DeviceId,
        rule: impl Fn(Option<&Device>) -> Result<(Option<Device>, T), E>,
    ) -> Result<T, E> {
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
    async fn promote_in(&self, network: &NetworkId, min: usize) -> Result<Vec<Device>, StoreError> {
        let mut promoted = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let online: Vec<Device> = self.network(network).await?.into_iter().filter(|d| d.online).collect();
            let mut stale_plan = false;
            for id in presence::promotions(&online, min) {
                let done = self
                    .update::<_, StoreError>(&id, |current| match current {
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
        Err(StoreError::Unavailable(format!("network {network:?} stayed contended for {MAX_ATTEMPTS} attempts")))
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn announce(&self, a: Announcement, now: SystemTime) -> Result<Device, AnnounceFailure> {
        self.update(&a.device, |current| {
            let device = Device::announce(current.filter(|d| !d.is_expired(now)), a.clone(), now)?;
            Ok((Some(device.clone()), device))
        })
        .await
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let key = self.record_key(id.as_str());
        let raw: Option<String> = self.client.get(&key).await.map_err(unavailable)?;
        raw.map(|raw| decode(&key, &raw, DeviceJson::into_device)).transpose()
    }

    async fn peers(&self, network: &NetworkId, now: SystemTime, ttl: Duration) -> Result<Vec<Device>, StoreError> {
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
    ) -> Result<PeerLookup, StoreError> {
        Ok(presence::lookup(self.network(network).await?.iter(), user, now, ttl))
    }

    async fn sweep(&self, now: SystemTime, ttl: Duration) -> Result<Sweep, StoreError> {
        let mut sweep = Sweep::default();
        let due = self.all().await?.into_iter().filter(|d| d.is_stale(now, ttl) || d.is_expired(now));
        for device in due {
            // Decided again on a fresh read: an announcement may have come meanwhile.
            let (offline, deleted) = self
                .update::<_, StoreError>(&device.id, |current| {
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

    async fn promote(&self, min: usize) -> Result<Vec<Device>, StoreError> {
        let networks: BTreeSet<NetworkId> =
            self.all().await?.into_iter().filter(|d| d.online).map(|d| d.network).collect();
        let mut promoted = Vec::new();
        for network in &networks {
            promoted.extend(self.promote_in(network, min).await?);
        }
        earliest_first(&mut promoted);
        Ok(promoted)
    }

    async fn stats(&self) -> Result<PresenceStats, StoreError> {
        Ok(presence::stats(self.all().await?.iter()))
    }

    async fn take_announcement(
        &self,
        user: &UserId,
        device: &DeviceId,
        (max, window): (u32, Duration),
    ) -> Result<Option<Duration>, StoreError> {
        // Device ids hold no ':', so the key names one user and device.
        let keys = vec![self.key(&["announce", user.as_str(), device.as_str()])];
        let args = vec![window.as_millis().max(1).to_string(), max.max(1).to_string()];
        let wait: i64 = self.announce.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok((wait > 0).then(|| Duration::from_millis(wait.unsigned_abs())))
    }
}
