//! `AppState`: what the transport's handlers and routes share: the core,
//! the configuration, and the transport's own counters (connections for
//! `/health` and shutdown, per-address limits).
//!
//! Cheap to clone (all `Arc`s). It holds no connection handles: the core's
//! courier reaches connections by id through weak references, so nothing
//! here can keep a closed connection alive. Must not import `transport`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::Notify;

use crate::config::Config;
use crate::core::Core;
use crate::domain::net::limit_key;
use crate::domain::rate::KeyedLimits;

/// Shared server state.
#[derive(Clone)]
pub struct AppState {
    /// The start-up configuration (the core's).
    pub config: Arc<Config>,
    /// The protocol-neutral core.
    pub core: Arc<Core>,
    /// Connection counters.
    pub stats: Arc<Stats>,
    /// Per-address counters for connection and REST limits.
    pub limits: Arc<AddressLimits>,
}

impl AppState {
    /// State over `core` with fresh counters.
    pub fn new(core: Arc<Core>) -> Self {
        let stats = Stats {
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            all: AtomicUsize::new(0),
            idle: Notify::new(),
            closing: AtomicBool::new(false),
        };
        Self { config: core.config.clone(), core, stats: Arc::new(stats), limits: Arc::default() }
    }
}

/// Connection counters: `/health` shows the default namespace's, shutdown
/// waits for all.
pub struct Stats {
    started: Instant,
    connections: AtomicUsize,
    all: AtomicUsize,
    /// Woken when the last connection has been cleaned up (for shutdown).
    idle: Notify,
    /// True once the server shuts down: a raw connection opened after that closes at once (1001).
    closing: AtomicBool,
}

impl Stats {
    /// Seconds since start-up.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Connections on the default namespace of this instance.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a connection in (`default_ns`: of the default namespace).
    pub fn connected(&self, default_ns: bool) {
        if default_ns {
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
        self.all.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a connection out, after its clean-up has run.
    pub fn disconnected(&self, default_ns: bool) {
        if default_ns {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
        if self.all.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Shutdown has begun.
    pub fn shut_down(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Whether the server is shutting down.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Connections of every namespace and protocol on this instance.
    pub fn all(&self) -> usize {
        self.all.load(Ordering::Acquire)
    }

    /// Completes once no connection is left (each one's clean-up has run).
    pub async fn all_disconnected(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.all() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Per-client-address state: open connections, REST buckets, and the
/// allowance for wrong worker keys.
#[derive(Default)]
pub struct AddressLimits {
    connections: DashMap<IpAddr, usize>,
    rest: KeyedLimits<IpAddr>,
    key_failures: KeyedLimits<IpAddr>,
}

/// Wrong worker keys an address may try: a burst of this many...
pub const KEY_FAILURE_BURST: u32 = 5;
/// ...then one every this many seconds.
pub const KEY_FAILURE_REFILL_SECONDS: u32 = 5;

/// A connection counted against its address's limit until dropped.
pub struct AddressSlot {
    limits: Arc<AddressLimits>,
    ip: Option<IpAddr>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.limits.disconnected(ip);
        }
    }
}

impl AddressLimits {
    /// Counts a connection from `ip` (if known) in until the slot is dropped;
    /// `None` if `ip` already has `max`.
    pub fn slot(self: &Arc<Self>, ip: Option<IpAddr>, max: usize) -> Option<AddressSlot> {
        if let Some(ip) = ip
            && !self.try_connect(ip, max)
        {
            return None;
        }
        Some(AddressSlot { limits: self.clone(), ip })
    }

    /// Counts a connection from `ip` in, unless `ip` already has `max`.
    pub fn try_connect(&self, ip: IpAddr, max: usize) -> bool {
        let mut count = self.connections.entry(limit_key(ip)).or_default();
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    /// Counts a connection from `ip` out.
    pub fn disconnected(&self, ip: IpAddr) {
        if let Entry::Occupied(mut count) = self.connections.entry(limit_key(ip)) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    /// Whether `ip` may try a worker key now (its wrong guesses are within
    /// [`KEY_FAILURE_BURST`], refilled one per [`KEY_FAILURE_REFILL_SECONDS`]).
    pub fn may_try_key(&self, ip: IpAddr, now: Instant) -> bool {
        self.key_failures.wait(&limit_key(ip), now).is_zero()
    }

    /// `ip` tried a wrong worker key at `now`.
    pub fn key_failed(&self, ip: IpAddr, now: Instant) {
        let (rate, burst) = (1.0 / f64::from(KEY_FAILURE_REFILL_SECONDS), f64::from(KEY_FAILURE_BURST));
        let _ = self.key_failures.take(&limit_key(ip), now, rate, burst);
    }

    /// A REST request from `ip` at `now`: `Err(wait)` when over the limit.
    pub fn rest_request(&self, ip: IpAddr, now: Instant, (rate, burst): (u32, u32)) -> Result<(), Duration> {
        self.rest.take(&limit_key(ip), now, f64::from(rate), f64::from(burst))
    }
}
