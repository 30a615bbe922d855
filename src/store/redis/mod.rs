//! The Redis toolkit every Redis engine of [`crate::store`] builds on: key
//! names, the mapping of Redis failures to [`StoreError`], JSON encoding with
//! corruption reports, the hash compare-and-set script, instance liveness
//! ([`instances`]), the heartbeat ([`heartbeat`]) and deadlines on Redis's clock ([`clock`]).
//!
//! Owns no state of its own. Must not import `core`, `transport` or `cluster`:
//! the engines are below everything that uses them.

pub mod clock;
pub mod heartbeat;
pub mod instances;

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::Client;
use fred::types::scripts::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

pub use crate::domain::unix_ms as millis;

/// How often a compare-and-set change retries after losing a race.
pub const MAX_ATTEMPTS: usize = 64;

/// Compare-and-set of one hash field: KEYS[1] the hash; ARGV: the field, the
/// value expected (as read), the new value ('' deletes). 1 if it matched.
const HASH_CAS: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"#;

/// `{prefix}:part:part...`: every key and channel of the Redis engines.
///
/// The prefix in braces is a Redis Cluster hash tag: every key of a
/// deployment hashes to one slot, so each script's keys (declared in full)
/// sit on one node and switchboard runs unchanged on a Redis Cluster. (It
/// does not spread one deployment over the cluster's nodes; `REDIS_PREFIX`
/// deployments sharing a cluster land on their own slots.)
pub fn key(prefix: &str, parts: &[&str]) -> String {
    let mut key = format!("{{{prefix}}}");
    for part in parts {
        key.push(':');
        key.push_str(part);
    }
    key
}

/// A Redis failure: the store is unavailable (the cause is for the logs only).
pub fn unavailable(e: fred::error::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Unix milliseconds back to a time.
pub fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// `value` as JSON.
pub fn encode(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The value stored at `key` as `raw`, through `convert`, or why it is corrupt.
pub fn decode<J: DeserializeOwned, T>(
    key: &str,
    raw: &str,
    convert: impl FnOnce(J) -> Result<T, String>,
) -> Result<T, StoreError> {
    let json = serde_json::from_str(raw).map_err(|e| e.to_string());
    json.and_then(convert).map_err(|why| StoreError::Unavailable(format!("{key} in Redis is corrupt: {why}")))
}

/// `raw` parsed by a domain rule, or why not (for [`decode`]'s conversions).
pub fn valid<T, E: Display>(raw: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, String> {
    parse(raw).map_err(|e| format!("{raw:?}: {e}"))
}

/// Compare-and-set on the fields of hashes (records kept as JSON by id).
pub struct HashCas {
    client: Client,
    script: Script,
}

impl HashCas {
    /// Compare-and-set through `client`.
    pub fn new(client: Client) -> Self {
        Self { client, script: Script::from_lua(HASH_CAS) }
    }

    /// Replaces `field`'s value `read` in the hash `key` by `next` ('' deletes)
    /// unless it changed meanwhile; whether it did.
    pub async fn swap(&self, key: &str, field: &str, read: String, next: String) -> Result<bool, StoreError> {
        let args = vec![field.to_owned(), read, next];
        let keys = vec![key.to_owned()];
        let done: i64 = self.script.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(done == 1)
    }
}
