//! The leader lease: one holder at a time, cluster-wide, renewed by its
//! holder; when the holder stops renewing, another instance takes it after
//! the TTL. The holder is the cluster's leader (seed 002's leader election)
//! and runs the cluster-wide jobs. Alone ([`Solo`]) an instance always holds it.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use crate::store::StoreError;
use crate::store::redis::{key, unavailable};

/// A named lease held by one holder at a time.
#[async_trait]
pub trait Lease: Send + Sync + 'static {
    /// Takes or renews the lease `name` for `holder` for `ttl`; whether
    /// `holder` holds it now.
    async fn hold(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;
}

/// One process: it always holds its own leases.
pub struct Solo;

#[async_trait]
impl Lease for Solo {
    async fn hold(&self, _name: &str, _holder: &str, _ttl: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// Takes a free lease or renews one's own; 1 if `holder` holds it now.
/// KEYS: lease. ARGV: holder, TTL in ms.
const HOLD: &str = r#"
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

/// Leases in Redis: `p:d:lease:{name}`, the holder, expiring with the lease.
pub struct RedisLease {
    client: Client,
    prefix: String,
    hold: Script,
}

impl RedisLease {
    /// Leases over `client` (connected), keys under `prefix`.
    pub fn new(client: Client, prefix: &str) -> Self {
        Self { client, prefix: prefix.to_owned(), hold: Script::from_lua(HOLD) }
    }
}

#[async_trait]
impl Lease for RedisLease {
    async fn hold(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        // Under `d` (devices) since the lease was first the presence jobs' own.
        let keys = vec![key(&self.prefix, &["d", "lease", name])];
        let args = vec![holder.to_owned(), ttl.as_millis().max(1).to_string()];
        let held: i64 = self.hold.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(held == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisProcess;

    async fn lease(redis: &RedisProcess) -> (RedisLease, Client) {
        let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        (RedisLease::new(client.clone(), "test"), client)
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_is_renewed_by_it_and_taken_over_after_its_ttl() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let ((a, client), (b, _)) = (lease(&redis).await, lease(&redis).await);
        let short = Duration::from_millis(200);
        assert!(a.hold("sweep", "instance-a", short).await.unwrap());
        assert!(!b.hold("sweep", "instance-b", short).await.unwrap(), "held by a");
        assert!(b.hold("promote", "instance-b", short).await.unwrap(), "another lease is another lock");
        assert!(a.hold("sweep", "instance-a", Duration::from_secs(30)).await.unwrap(), "renewed by its holder");
        let left: i64 = client.pttl("{test}:d:lease:sweep").await.unwrap();
        assert!(left > 1_000, "the renewal extended it: {left} ms left");

        assert!(a.hold("sweep", "instance-a", short).await.unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !b.hold("sweep", "instance-b", short).await.unwrap() {
            assert!(tokio::time::Instant::now() < deadline, "never taken over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!a.hold("sweep", "instance-a", short).await.unwrap(), "a lost it to b");
    }

    #[tokio::test]
    async fn a_lease_outlives_a_restart_of_its_holder_until_its_ttl() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let (before, _) = lease(&redis).await;
        assert!(before.hold("sweep", "instance-a", Duration::from_secs(30)).await.unwrap());
        drop(before);
        let (after, _) = lease(&redis).await;
        assert!(!after.hold("sweep", "instance-a2", Duration::from_secs(30)).await.unwrap(), "held until it expires");
        assert!(after.hold("sweep", "instance-a", Duration::from_secs(30)).await.unwrap(), "and renewed by its holder");
    }

    #[tokio::test]
    async fn alone_an_instance_always_holds_its_leases() {
        assert!(Solo.hold("leader", "local", Duration::from_secs(1)).await.unwrap());
    }
}
