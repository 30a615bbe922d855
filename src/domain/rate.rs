//! Rate limiting as plain arithmetic on instants the caller passes in, so the
//! rules are tested without sleeping.
//!
//! [`TokenBucket`]: `rate` tokens a second up to `burst`; each event takes one.
//! [`Limiter`]: a bucket plus abuse detection. A connection whose events keep
//! being refused (`abuse_threshold` refusals within [`ABUSE_WINDOW`]) is
//! flooding on purpose, and is told so by being disconnected.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A log line throttled to one a second: a `static` at the line's site.
pub struct OncePerSecond(AtomicU64);

impl OncePerSecond {
    /// Nothing written yet.
    pub const fn new() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }

    /// Whether the line may be written at `now_ms` (Unix milliseconds).
    pub fn ready(&self, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        self.0.swap(second, Ordering::Relaxed) != second
    }
}

impl Default for OncePerSecond {
    fn default() -> Self {
        Self::new()
    }
}

/// The window in which refusals are counted towards disconnection.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: `burst` tokens, refilled at `rate` a second.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { rate, burst, tokens: burst, last: now }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely by `now` (nothing to remember).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// How long until a token is available at `now` (zero if one is).
    pub fn wait_time(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if tokens >= 1.0 { Duration::ZERO } else { Duration::from_secs_f64((1.0 - tokens) / self.rate) }
    }
}

/// What to do with one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Refuse it with `rate-limited`.
    Refuse,
    /// Refuse it and disconnect: sustained abuse.
    Disconnect,
}

/// Per-connection limiter: a bucket and a count of recent refusals.
#[derive(Debug, Clone)]
pub struct Limiter {
    bucket: TokenBucket,
    abuse_threshold: u32,
    refused: u32,
    window_start: Instant,
}

impl Limiter {
    /// `rate` events a second, bursts of `burst`, disconnect after
    /// `abuse_threshold` refusals within [`ABUSE_WINDOW`].
    pub fn new(rate: f64, burst: f64, abuse_threshold: u32, now: Instant) -> Self {
        Self { bucket: TokenBucket::new(rate, burst, now), abuse_threshold, refused: 0, window_start: now }
    }

    /// The verdict on an event arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.try_take(now) {
            return Verdict::Allow;
        }
        if now.saturating_duration_since(self.window_start) >= ABUSE_WINDOW {
            self.window_start = now;
            self.refused = 0;
        }
        self.refused += 1;
        if self.refused >= self.abuse_threshold { Verdict::Disconnect } else { Verdict::Refuse }
    }
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// One token bucket per key (an address, a device), idle ones forgotten.
pub struct KeyedLimits<K: Eq + Hash>(DashMap<K, TokenBucket>);

impl<K: Eq + Hash> Default for KeyedLimits<K> {
    fn default() -> Self {
        Self(DashMap::new())
    }
}

impl<K: Eq + Hash + Clone> KeyedLimits<K> {
    /// One request for `key` at `now`, `rate` a second after a burst of `burst`:
    /// `Err(wait)` when over the limit.
    pub fn take(&self, key: &K, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        if self.0.len() > MAX_BUCKETS {
            // Idle keys have full buckets again; forgetting them changes nothing.
            self.0.retain(|_, bucket| !bucket.is_full(now));
        }
        let mut bucket = self.0.entry(key.clone()).or_insert_with(|| TokenBucket::new(rate, burst, now));
        if bucket.try_take(now) { Ok(()) } else { Err(bucket.wait_time(now)) }
    }

    /// How long until `key` has a token at `now` (zero: it has one), without taking it.
    pub fn wait(&self, key: &K, now: Instant) -> Duration {
        self.0.get(key).map_or(Duration::ZERO, |bucket| bucket.wait_time(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_a_burst_then_refuses() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, t0);
        assert!((0..5).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        assert_eq!(bucket.wait_time(t0), Duration::from_millis(100));
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_past_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, t0);
        (0..5).for_each(|_| assert!(bucket.try_take(t0)));
        let t1 = t0 + Duration::from_millis(250); // 2.5 tokens
        assert!(bucket.try_take(t1) && bucket.try_take(t1));
        assert!(!bucket.try_take(t1));
        let much_later = t1 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| bucket.try_take(much_later)).count(), 5);
    }

    #[test]
    fn time_going_backwards_gives_nothing_back() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(10.0, 1.0, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0 - Duration::from_secs(5)));
    }

    #[test]
    fn sustained_refusals_within_the_window_disconnect() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(1.0, 2.0, 3, t0);
        assert_eq!((limiter.check(t0), limiter.check(t0)), (Verdict::Allow, Verdict::Allow));
        assert_eq!((limiter.check(t0), limiter.check(t0)), (Verdict::Refuse, Verdict::Refuse));
        assert_eq!(limiter.check(t0), Verdict::Disconnect);
    }

    #[test]
    fn refusals_spread_over_windows_do_not_disconnect() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(0.001, 1.0, 3, t0);
        assert_eq!(limiter.check(t0), Verdict::Allow);
        let mut now = t0;
        for _ in 0..10 {
            assert_eq!(limiter.check(now), Verdict::Refuse);
            assert_eq!(limiter.check(now), Verdict::Refuse);
            now += ABUSE_WINDOW; // a new window: the count starts again
        }
    }
}
