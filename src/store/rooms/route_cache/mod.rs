//! Cluster mode's cache of rooms for relay routing.
//!
//! Without it every relay asks Redis whether sender and target share the room
//! (a round trip and a decode per relay): measured, Redis mode's relay knee
//! was Node's (40,000/s on one core), and 80,000/s with routes cached.
//!
//! Correctness rests on three rules:
//! - **Every change is announced.** The store's compare-and-set script
//!   publishes the room id when it writes a room, and every instance drops its
//!   copy when the announcement arrives; the writing instance drops its own at
//!   once. A copy can therefore be stale only for the time an announcement
//!   takes to arrive (well under a millisecond on a LAN).
//! - **Nothing read before an announcement is kept after it.** Each room hashes
//!   to one of [`SHARDS`] generation counters, bumped by every announcement.
//!   A reader notes the generation before it reads Redis and keeps what it read
//!   only if the generation has not moved, checked again after inserting (so an
//!   announcement landing in between removes it).
//! - **No cache without announcements.** The cache is used only while the
//!   subscription is up and the store's heartbeat succeeds; losing either
//!   empties it (announcements may have been missed), and becoming usable again
//!   starts empty. During a Redis outage relays therefore get `unavailable`.
//! - **No cache across a pause.** A copy is served only until half the
//!   instance's TTL after the last successful heartbeat. An instance that
//!   was stopped (`kill -STOP`, a VM pause) or starved for longer reads its
//!   socket's backlog in no set order: the relay may come before the
//!   announcements, and survivors may have taken it for dead and removed its
//!   participants. Until its next heartbeat it therefore asks Redis.
//! - **No cache across a stall, however brief.** A task ticks every
//!   [`TICK`]; a copy is served only if the last tick is at most [`STALL`]
//!   old. After a stall (the process stopped, or starved of CPU) the relays
//!   read first in the backlog therefore ask Redis; the ticker, once it runs,
//!   drops every copy and keeps the cache off until a token it publishes on
//!   the announcement channel comes back to it: announcements arrive in the
//!   order Redis sent them, so every one sent before the stall has been
//!   applied by then. (Without this, a relay sent after a rejoin on another
//!   instance was acked could go to the replaced connection.)
//!
//! Only positive answers are served from the cache: a relay whose sender or
//! target is not in the cached room asks Redis, so a user who has just joined
//! on another instance is never refused because of a stale copy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::{ConnId, Room, RoomId, Route, UserId};

/// Generation counters; rooms hash onto them.
pub const SHARDS: usize = 64;

/// How often the stall ticker ticks.
pub const TICK: Duration = Duration::from_millis(25);

/// A gap between ticks longer than this is a stall.
pub const STALL: Duration = Duration::from_millis(150);

/// Rooms as last read from Redis, dropped when a change is announced.
pub struct RouteCache {
    rooms: DashMap<RoomId, Room>,
    generations: [AtomicU64; SHARDS],
    /// Announcements are being received.
    subscribed: AtomicBool,
    /// Until when (ms on [`monotonic_ms`]'s clock) the last heartbeat vouches for copies.
    fresh_until: AtomicU64,
    /// When the stall ticker last ticked (ms on [`monotonic_ms`]'s clock).
    ticked: AtomicU64,
    /// The sync token published after a stall and not yet heard back (0: none).
    awaited: AtomicU64,
    /// Time the tests made pass without waiting ([`RouteCache::skip`]).
    #[cfg(test)]
    skipped: AtomicU64,
}

/// Milliseconds since this process first asked: a clock that counts a pause too.
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Default for RouteCache {
    fn default() -> Self {
        Self {
            rooms: DashMap::new(),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            subscribed: AtomicBool::new(false),
            fresh_until: AtomicU64::new(0),
            ticked: AtomicU64::new(monotonic_ms()),
            #[cfg(test)]
            skipped: AtomicU64::new(0),
            awaited: AtomicU64::new(0),
        }
    }
}

impl RouteCache {
    /// Where a relay from `from` to `to` in `room` goes, if the cached copy says
    /// both are there. `None`: not cached, cache unusable, or a negative answer.
    pub fn route(&self, room: &RoomId, from: &ConnId, to: &UserId) -> Option<Route> {
        if !self.usable() {
            return None;
        }
        self.rooms.get(room)?.route(from, to).ok()
    }

    /// The generation to note before reading `room` from Redis.
    pub fn generation(&self, room: &RoomId) -> u64 {
        self.counter(room).load(Ordering::SeqCst)
    }

    /// Keeps `value`, read after [`generation`](Self::generation) returned
    /// `seen`, unless an announcement for its shard came in meanwhile.
    pub fn offer(&self, room: &RoomId, value: Room, seen: u64) {
        if !self.usable() || self.generation(room) != seen {
            return;
        }
        self.rooms.insert(room.clone(), value);
        if !self.usable() || self.generation(room) != seen {
            self.rooms.remove(room);
        }
    }

    /// A change to `room` was announced (or made here): drop its copy.
    pub fn invalidate(&self, room: &RoomId) {
        self.counter(room).fetch_add(1, Ordering::SeqCst);
        self.rooms.remove(room);
    }

    /// Whether the subscription to announcements is up. Either way the cache
    /// is emptied: down, announcements may be missed; up, some may have been.
    pub fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Ordering::SeqCst);
        self.clear();
    }

    /// A heartbeat reached Redis: copies may be served for `window` from now
    /// (read anew if the cache was unusable).
    pub fn beat_succeeded(&self, window: Duration) {
        let was = self.usable();
        self.fresh_until.store(self.now() + window.as_millis() as u64, Ordering::SeqCst);
        if !was {
            self.clear();
        }
    }

    /// A heartbeat failed: nothing is served, and the copies go.
    pub fn beat_failed(&self) {
        self.fresh_until.store(0, Ordering::SeqCst);
        self.clear();
    }

    /// Drops every copy, and anything being read now.
    pub fn clear(&self) {
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        self.rooms.clear();
    }

    /// How many rooms are cached.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room is cached.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Whether copies are kept and served: subscribed, a recent heartbeat
    /// reached Redis, no stall since the last tick, none being caught up on.
    pub fn usable(&self) -> bool {
        let now = self.now();
        self.subscribed.load(Ordering::SeqCst)
            && now < self.fresh_until.load(Ordering::SeqCst)
            && now.saturating_sub(self.ticked.load(Ordering::SeqCst)) <= STALL.as_millis() as u64
            && self.awaited.load(Ordering::SeqCst) == 0
    }

    /// The stall ticker's tick. After a stall the copies go, and the cache
    /// stays off until the token returned here (to be published on the
    /// announcement channel) is [`heard`](Self::heard); also returned while
    /// an earlier token is still awaited (`resend`: publish it again).
    pub fn tick(&self, resend: bool) -> Option<u64> {
        let now = self.now();
        let gap = now.saturating_sub(self.ticked.swap(now, Ordering::SeqCst));
        if gap > STALL.as_millis() as u64 {
            let token = now.max(1);
            self.awaited.store(token, Ordering::SeqCst);
            self.clear();
            return Some(token);
        }
        let awaited = self.awaited.load(Ordering::SeqCst);
        (resend && awaited != 0).then_some(awaited)
    }

    /// A sync token came back on the announcement channel: if it is the one
    /// awaited, everything announced before the stall has been applied.
    pub fn heard(&self, token: u64) {
        if self.awaited.compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            self.clear();
        }
    }

    /// Now, on [`monotonic_ms`]'s clock.
    fn now(&self) -> u64 {
        let now = monotonic_ms();
        #[cfg(test)]
        let now = now + self.skipped.load(Ordering::SeqCst);
        now
    }

    /// Makes `by` pass for this cache (tests: a pause without waiting one out).
    #[cfg(test)]
    pub fn skip(&self, by: Duration) {
        self.skipped.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    fn counter(&self, room: &RoomId) -> &AtomicU64 {
        // FNV-1a: stable and cheap; only the spread over shards matters.
        let hash = room
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        &self.generations[(hash % SHARDS as u64) as usize]
    }
}

#[cfg(test)]
mod tests;
