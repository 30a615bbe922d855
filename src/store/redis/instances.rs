//! Which instances of the cluster are alive: each instance sets
//! `p:inst:{instance}:alive` with a TTL of `INSTANCE_TTL_MS` on every upkeep
//! round and lists itself in `p:instances`; an instance whose key has expired
//! is dead. The room engine reaps a dead instance's seats; the device and mesh
//! engines ignore what a dead instance's connections registered.

use std::time::Duration;

use fred::prelude::*;

use super::{key, unavailable};
use crate::store::StoreError;

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

    /// Marks this instance alive for `ttl`, and registers it.
    pub async fn beat(&self, ttl: Duration) -> Result<(), StoreError> {
        let ttl = Expiration::PX(ttl.as_millis() as i64);
        let _: () = self.client.set(self.alive_key(&self.me), 1, Some(ttl), None, false).await.map_err(unavailable)?;
        let _: () = self.client.sadd(key(&self.prefix, &["instances"]), self.me.as_str()).await.map_err(unavailable)?;
        Ok(())
    }

    /// Whether `instance` is alive (this one always is: it is running).
    pub async fn is_alive(&self, instance: &str) -> Result<bool, StoreError> {
        if instance == self.me {
            return Ok(true);
        }
        self.client.exists(self.alive_key(instance)).await.map_err(unavailable)
    }

    /// Registered instances whose heartbeat has expired.
    pub async fn dead(&self) -> Result<Vec<String>, StoreError> {
        let all: Vec<String> = self.client.smembers(key(&self.prefix, &["instances"])).await.map_err(unavailable)?;
        let mut dead = Vec::new();
        for instance in all.into_iter().filter(|i| i != &self.me) {
            if !self.is_alive(&instance).await? {
                dead.push(instance);
            }
        }
        Ok(dead)
    }

    /// Claims the clean-up of `dead` for `ttl`; false if another survivor has it.
    pub async fn claim_reap(&self, dead: &str, ttl: Duration) -> Result<bool, StoreError> {
        let claim = key(&self.prefix, &["reap", dead]);
        let ttl = Expiration::PX(ttl.as_millis() as i64);
        let claimed: Option<String> = self
            .client
            .set(claim, self.me.as_str(), Some(ttl), Some(SetOptions::NX), false)
            .await
            .map_err(unavailable)?;
        Ok(claimed.is_some())
    }

    /// Unregisters `dead` once its clean-up is done.
    pub async fn forget(&self, dead: &str) -> Result<(), StoreError> {
        let _: () = self.client.srem(key(&self.prefix, &["instances"]), dead).await.map_err(unavailable)?;
        Ok(())
    }
}

/// The key that exists while `instance` is alive.
pub fn alive_key(prefix: &str, instance: &str) -> String {
    key(prefix, &["inst", instance, "alive"])
}
