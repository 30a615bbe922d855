//! An instance's heartbeat ([`Heartbeat::beat`], one script), which also
//! tells it what it cannot see otherwise:
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

use fred::types::scripts::Script;

use super::clock::{LUA_NOW, RedisClock};
use super::instances::Instances;
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
