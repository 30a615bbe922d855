//! Deadlines on Redis's own clock, so a write whose answer came too late to
//! be waited for never takes effect later.
//!
//! A command that times out here (`REDIS_TIMEOUT_MS`) may still be executed
//! by Redis afterwards: a paused Redis (`CLIENT PAUSE WRITE`, as in a
//! failover) or a busy one (`DEBUG SLEEP`, a slow script) runs it when it
//! resumes. The client was answered `unavailable` by then, and a seat it was
//! refused, or a relay it will retry, must not appear. So every write script
//! carries a deadline, half the timeout after it was sent, in Redis's clock:
//! the script compares it with `TIME` and does nothing once it has passed.
//! Half the timeout leaves the other half for the answer to travel back, so
//! a write that takes effect is answered before this side gives up.
//!
//! The offset between this host's clock and Redis's is measured on every
//! heartbeat (`TIME` in the heartbeat script, halfway through the round
//! trip), so hosts whose clocks differ by more than a timeout still agree.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::now_ms;

/// The offset to Redis's clock and the command timeout.
#[derive(Debug)]
pub struct RedisClock {
    timeout: Duration,
    /// Redis's Unix ms minus this host's, as last measured.
    offset_ms: AtomicI64,
}

impl RedisClock {
    /// A clock for commands that time out after `timeout`; offset 0 until measured.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, offset_ms: AtomicI64::new(0) }
    }

    /// Redis's time now (Unix ms), as estimated here.
    pub fn now(&self) -> u64 {
        (now_ms() as i64 + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// The moment (Redis's Unix ms) after which a write sent now must not take effect.
    pub fn deadline(&self) -> u64 {
        self.now() + (self.timeout / 2).as_millis() as u64
    }

    /// Records Redis's time `redis_ms`, read by a command sent at `sent_ms`
    /// and answered at `answered_ms` (this host's Unix ms).
    pub fn measured(&self, redis_ms: u64, sent_ms: u64, answered_ms: u64) {
        let midway = sent_ms + answered_ms.saturating_sub(sent_ms) / 2;
        self.offset_ms.store(redis_ms as i64 - midway as i64, Ordering::Relaxed);
    }
}

/// Lua that sets `now` to Redis's Unix ms: the first line of every script
/// that checks a deadline or reports Redis's time.
pub const LUA_NOW: &str =
    "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_half_the_timeout_ahead_on_redis_s_clock() {
        let clock = RedisClock::new(Duration::from_millis(2_000));
        let here = now_ms();
        // Redis's clock runs 10 s ahead of this host's; the read took 4 ms.
        clock.measured(here + 10_000, here - 4, here);
        let deadline = clock.deadline();
        let expected = here + 10_000 + 2 + 1_000;
        assert!(deadline.abs_diff(expected) < 50, "deadline {deadline}, expected about {expected}");
    }
}
