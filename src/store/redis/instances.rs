//! Which instances of the cluster are alive, and what Redis still knows.
//!
//! Each instance sets `p:inst:{instance}:alive` with a TTL of
//! `INSTANCE_TTL_MS` on every upkeep round and lists itself in
//! `p:instances`; an instance whose key has expired is dead. The room engine
//! reaps a dead instance's seats; the device and mesh engines ignore what a
//! dead instance's connections registered.
//!
//! The same round ([`Heartbeat::beat`], one script) tells an instance what it
//! cannot see otherwise:
//! - **Redis lost its data** (restarted empty, failed over to a replica that
//!   had not caught up, flushed): `p:epoch`, written by the first instance
//!   that finds it missing, has changed or vanished since the last round.
//! - **This instance was taken for dead** (paused, or Redis stalled, for
//!   longer than its TTL): its own alive key had expired, so a survivor may
//!   have removed its seats meanwhile.
//!
//! Either way the instance must put back what its live connections hold
//! (the room engine's reconcile). And a survivor reaps only once it has
//! itself beaten without a break for a whole TTL: right after an outage of
//! Redis every instance's key may have expired, and those that are alive
//! renew theirs within one round.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::scripts::Script;

use super::clock::{LUA_NOW, RedisClock};
use super::{key, unavailable};
use crate::domain::now_ms;
use crate::store::{Lapse, StoreError};

/// One heartbeat. KEYS: this instance's alive key, the instances set, the
/// epoch. ARGV: the alive key's value, its TTL (ms), this instance's id, the
/// epoch to write if there is none. Returns whether the alive key had
/// lapsed (1/0), the epoch, and Redis's time (Unix ms).
const BEAT: &str = r#"
local lapsed = redis.call('GET', KEYS[1]) ~= ARGV[1]
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
return { lapsed and 1 or 0, epoch, now }
"#;

/// Forgets a dead instance, unless it came back. KEYS: its alive key, its
/// connections set, the instances set, its reap claim. ARGV: its id. 1 if forgotten.
const FORGET: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"#;

/// Deletes what a dead instance left, unless it came back. KEYS: its alive
/// key, the key. ARGV: the value as read, the hash field ('' for a plain
/// key). 1 if deleted, 0 if it changed meanwhile, -1 if the instance is alive.
const FORGET_LEFTOVER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[2] == '' then
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) return 1 end
else
  if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) return 1 end
end
return 0
"#;

/// The instances of one cluster (one key prefix), as seen from one of them.
#[derive(Clone)]
pub struct Instances {
    client: Client,
    prefix: String,
    /// This instance.
    me: String,
}

impl Instances {
    /// The instances under `prefix`, seen from `me`.
    pub fn new(client: Client, prefix: &str, me: &str) -> Self {
        Self { client, prefix: prefix.to_owned(), me: me.to_owned() }
    }

    /// This instance's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    fn alive_key(&self, instance: &str) -> String {
        alive_key(&self.prefix, instance)
    }

    /// Whether `instance` is alive (this one always is: it is running).
    pub async fn is_alive(&self, instance: &str) -> Result<bool, StoreError> {
        if instance == self.me {
            return Ok(true);
        }
        self.client.exists(self.alive_key(instance)).await.map_err(unavailable)
    }

    /// `p:{engine}:inst:{instance}`: what `instance` registered in an engine
    /// (`m` mesh, `d` devices), for the clean-up once it is dead.
    fn index(&self, engine: &str, instance: &str) -> String {
        key(&self.prefix, &[engine, "inst", instance])
    }

    /// Notes that this instance registered `entry` in `engine`.
    pub async fn note(&self, engine: &str, entry: &str) -> Result<(), StoreError> {
        self.client.sadd(self.index(engine, &self.me), entry).await.map_err(unavailable)
    }

    /// Notes that this instance no longer holds `entry` in `engine`.
    pub async fn unnote(&self, engine: &str, entry: &str) -> Result<(), StoreError> {
        self.client.srem(self.index(engine, &self.me), entry).await.map_err(unavailable)
    }

    /// What `dead` noted in `engine`.
    pub async fn leftovers(&self, engine: &str, dead: &str) -> Result<Vec<String>, StoreError> {
        self.client.smembers(self.index(engine, dead)).await.map_err(unavailable)
    }

    /// Deletes `key` (or its hash `field`) if it still holds `raw`, which
    /// `dead` left; `None` if `dead` is alive again (stop: it is its own).
    async fn forget_leftover(
        &self,
        dead: &str,
        key: &str,
        field: Option<&str>,
        raw: String,
    ) -> Result<Option<bool>, StoreError> {
        let keys = vec![self.alive_key(dead), key.to_owned()];
        let args = vec![raw, field.unwrap_or_default().to_owned()];
        let script = Script::from_lua(FORGET_LEFTOVER);
        let done: i64 = script.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok((done >= 0).then_some(done == 1))
    }

    /// Deletes what `dead` noted in `engine` and still holds: `locate` names
    /// where a note's record lives (a key, or a field of a hash), `theirs`
    /// says whether the record read there (key, value) is still `dead`'s.
    /// Then the notes go. Stops if `dead` is alive again; how many went.
    pub async fn forget_leftovers(
        &self,
        engine: &str,
        dead: &str,
        locate: impl Fn(&str) -> Option<(String, Option<String>)> + Sync,
        theirs: impl Fn(&str, &str) -> Result<bool, StoreError> + Sync,
    ) -> Result<usize, StoreError> {
        let mut forgotten = 0;
        for noted in self.leftovers(engine, dead).await? {
            let Some((key, field)) = locate(&noted) else { continue };
            let raw: Option<String> = match &field {
                Some(field) => self.client.hget(&key, field.as_str()).await,
                None => self.client.get(&key).await,
            }
            .map_err(unavailable)?;
            let Some(raw) = raw.filter(|raw| theirs(&key, raw).unwrap_or(false)) else { continue };
            match self.forget_leftover(dead, &key, field.as_deref(), raw).await? {
                Some(true) => forgotten += 1,
                Some(false) => {}
                None => return Ok(forgotten),
            }
        }
        self.drop_leftovers(engine, dead).await?;
        Ok(forgotten)
    }

    /// Deletes `dead`'s notes in `engine` once its leftovers are gone.
    async fn drop_leftovers(&self, engine: &str, dead: &str) -> Result<(), StoreError> {
        self.client.del(self.index(engine, dead)).await.map_err(unavailable)
    }

    /// Which of `instances` are alive, in one round trip.
    pub async fn alive_among<'a>(
        &self,
        instances: impl Iterator<Item = &'a str>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let named: std::collections::BTreeSet<&str> = instances.collect();
        let others: Vec<&str> = named.iter().copied().filter(|i| *i != self.me).collect();
        let mut alive: std::collections::HashSet<String> =
            named.iter().filter(|i| **i == self.me).map(|i| i.to_string()).collect();
        if others.is_empty() {
            return Ok(alive);
        }
        let keys: Vec<String> = others.iter().map(|i| self.alive_key(i)).collect();
        let found: Vec<Option<String>> = self.client.mget(keys).await.map_err(unavailable)?;
        alive.extend(others.into_iter().zip(found).filter(|(_, f)| f.is_some()).map(|(i, _)| i.to_owned()));
        Ok(alive)
    }

    /// Registered instances whose heartbeat has expired (one round trip for all).
    pub async fn dead(&self) -> Result<Vec<String>, StoreError> {
        let all: Vec<String> = self.client.smembers(key(&self.prefix, &["instances"])).await.map_err(unavailable)?;
        let others: Vec<String> = all.into_iter().filter(|i| i != &self.me).collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = others.iter().map(|i| self.alive_key(i)).collect();
        let alive: Vec<Option<String>> = self.client.mget(keys).await.map_err(unavailable)?;
        Ok(others.into_iter().zip(alive).filter(|(_, a)| a.is_none()).map(|(i, _)| i).collect())
    }

    /// Claims the clean-up of `dead` for `ttl`; false if another survivor has it.
    pub async fn claim_reap(&self, dead: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = Expiration::PX(ttl.as_millis() as i64);
        let claimed: Option<String> = self
            .client
            .set(self.reap_key(dead), self.me.as_str(), Some(ttl), Some(SetOptions::NX), false)
            .await
            .map_err(unavailable)?;
        Ok(claimed.is_some())
    }

    fn reap_key(&self, dead: &str) -> String {
        key(&self.prefix, &["reap", dead])
    }

    /// Unregisters `dead` once its clean-up is done, with every key it left,
    /// unless it came back meanwhile; whether it was forgotten.
    pub async fn forget(&self, dead: &str) -> Result<bool, StoreError> {
        let keys = vec![
            self.alive_key(dead),
            key(&self.prefix, &["inst", dead, "conns"]),
            key(&self.prefix, &["instances"]),
            self.reap_key(dead),
        ];
        let script = Script::from_lua(FORGET);
        let done: i64 =
            script.evalsha_with_reload(&self.client, keys, vec![dead.to_owned()]).await.map_err(unavailable)?;
        Ok(done == 1)
    }
}

/// The key that exists while `instance` is alive.
pub fn alive_key(prefix: &str, instance: &str) -> String {
    key(prefix, &["inst", instance, "alive"])
}

/// This instance's heartbeat, and what it tells about Redis and the instance.
pub struct Heartbeat {
    instances: Instances,
    ttl: Duration,
    clock: Arc<RedisClock>,
    script: Script,
    state: Mutex<BeatState>,
}

#[derive(Default)]
struct BeatState {
    /// The epoch seen last round (`None` before the first).
    epoch: Option<String>,
    /// Since when every round has succeeded without a lapse.
    steady_since: Option<Instant>,
}

impl Heartbeat {
    /// The heartbeat of `instances`' own instance, lasting `ttl`.
    pub fn new(instances: Instances, ttl: Duration, clock: Arc<RedisClock>) -> Self {
        let script = Script::from_lua(format!("{LUA_NOW}\n{BEAT}"));
        Self { instances, ttl, clock, script, state: Mutex::default() }
    }

    /// Marks this instance alive for the TTL and registers it; what it found.
    /// The first round of a process finds nothing (its key never existed).
    pub async fn beat(&self) -> Result<Option<Lapse>, StoreError> {
        let me = self.instances.me();
        let keys = vec![
            self.instances.alive_key(me),
            key(&self.instances.prefix, &["instances"]),
            key(&self.instances.prefix, &["epoch"]),
        ];
        // A new epoch each time, so one written after a loss never equals one before.
        let candidate = uuid::Uuid::new_v4().simple().to_string();
        let args = vec![me.to_owned(), self.ttl.as_millis().max(1).to_string(), me.to_owned(), candidate];
        let sent = now_ms();
        let beat: Result<(i64, String, u64), _> =
            self.script.evalsha_with_reload(&self.instances.client, keys, args).await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (lapsed, epoch, redis_ms) = match beat {
            Ok(beat) => beat,
            Err(e) => {
                state.steady_since = None;
                return Err(unavailable(e));
            }
        };
        self.clock.measured(redis_ms, sent, now_ms());
        let first = state.epoch.is_none();
        let lapse = match state.epoch.replace(epoch.clone()) {
            Some(known) if known != epoch => Some(Lapse::DataLost),
            _ if lapsed == 1 && !first => Some(Lapse::TakenForDead),
            _ => None,
        };
        if lapse.is_some() || first {
            state.steady_since = None;
        } else if state.steady_since.is_none() {
            state.steady_since = Some(Instant::now());
        }
        Ok(lapse)
    }

    /// Whether this instance may declare others dead: its own rounds have
    /// succeeded, without a lapse, for a whole TTL.
    pub fn may_reap(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.steady_since.is_some_and(|since| since.elapsed() >= self.ttl)
    }

    /// Makes this instance's steady run `by` longer (tests: a whole TTL of
    /// beats without waiting one out).
    #[cfg(test)]
    pub fn age(&self, by: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.steady_since = state.steady_since.and_then(|since| since.checked_sub(by));
    }

    /// The instances it beats for.
    pub fn instances(&self) -> &Instances {
        &self.instances
    }
}
