//! Which instances of the cluster are alive.
//!
//! Each instance sets `p:inst:{instance}:alive` with a TTL of
//! `INSTANCE_TTL_MS` on every upkeep round and lists itself in
//! `p:instances`; an instance whose key has expired is dead. The room engine
//! reaps a dead instance's seats; the device and mesh engines ignore what a
//! dead instance's connections registered.
//!
//! What a heartbeat tells is in [`super::heartbeat`].

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;

use super::{key, unavailable};
use crate::store::StoreError;

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
    pub(super) client: Client,
    pub(super) prefix: String,
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

    pub(super) fn alive_key(&self, instance: &str) -> String {
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
    /// (`m` mesh, `d` devices, `pj` PeerJS), for the clean-up once it is dead.
    fn index(&self, engine: &str, instance: &str) -> String {
        key(&self.prefix, &[engine, "inst", instance])
    }

    /// The key of what this instance noted in `engine`, for a script that
    /// notes an entry in the same step as it writes it ([`Self::note`]).
    pub fn notes_key(&self, engine: &str) -> String {
        self.index(engine, &self.me)
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
