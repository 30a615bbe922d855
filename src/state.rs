//! `AppState`: what socket handlers and REST routes share.
//!
//! Cheap to clone (all `Arc`s). It holds no socket handles: connections are
//! reached through socketioxide by id, so nothing here can keep a closed
//! socket alive.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use tokio::sync::Notify;

use crate::cluster::lease::{Lease, Solo};
use crate::config::Config;
use crate::domain::ConnId;
use crate::domain::presence::DeviceId;
use crate::domain::rate::KeyedLimits;
use crate::metrics::Metrics;
use crate::store::StoreFailure;
use crate::store::devices::Devices;
use crate::store::mesh::MeshStore;
use crate::store::mesh::memory::MemoryMesh;
use crate::store::rooms::RoomStore;
use crate::store::workers::WorkerStore;
use crate::store::workers::memory::MemoryWorkers;
use crate::transport::error::report_store_failure;

/// Shared server state.
#[derive(Clone)]
pub struct AppState {
    /// The start-up configuration.
    pub config: Arc<Config>,
    /// Room state (memory or Redis).
    pub store: Arc<dyn RoomStore>,
    /// Live counters for `/health`.
    pub stats: Arc<Stats>,
    /// In cluster mode, whether Redis answers (kept by the upkeep task).
    redis_up: Option<Arc<AtomicBool>>,
    /// Per-address counters for connection and REST limits.
    pub limits: Arc<AddressLimits>,
    /// Device presence and queued signals (seed 004).
    pub devices: Devices,
    /// The leader lease.
    pub lease: Arc<dyn Lease>,
    /// The `/devices` connections of this instance, by device.
    pub mailboxes: Arc<Mailboxes>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// This instance's id in the cluster (`local` without Redis).
    pub instance: Arc<str>,
    /// Woken when rooms change, so `/dashboard` subscribers get the new list.
    pub directory: Arc<Notify>,
    /// Mesh clients and admin seats (seed 000).
    pub mesh: Arc<dyn MeshStore>,
    /// The worker pool (seed 002).
    pub workers: Arc<dyn WorkerStore>,
    /// The ring over the healthy workers, and bootstrap counts.
    pub ring: Arc<crate::transport::workers::RingCache>,
    /// Whether this instance is the cluster's leader (it runs the cluster-wide jobs).
    pub leader: Arc<AtomicBool>,
}

/// The `/devices` connections of this instance: each device's connection and
/// the signal that wakes its delivery when mail arrives.
#[derive(Default)]
pub struct Mailboxes(DashMap<DeviceId, (ConnId, Arc<Notify>)>);

impl Mailboxes {
    /// Records `conn` as `device`'s connection here.
    pub fn open(&self, device: DeviceId, conn: ConnId, wake: Arc<Notify>) {
        self.0.insert(device, (conn, wake));
    }

    /// Forgets `device`'s connection if it is still `conn`.
    pub fn close(&self, device: &DeviceId, conn: &ConnId) {
        self.0.remove_if(device, |_, (c, _)| c == conn);
    }

    /// Wakes `device`'s delivery, if it is connected here.
    pub fn wake(&self, device: &DeviceId) {
        if let Some(entry) = self.0.get(device) {
            entry.1.notify_one();
        }
    }

    /// Wakes every delivery here (wake-ups were missed).
    pub fn wake_all(&self) {
        for entry in self.0.iter() {
            entry.1.notify_one();
        }
    }
}

impl AppState {
    /// `None` without Redis; otherwise whether Redis answered last time.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis_up.as_ref().map(|up| up.load(Ordering::Relaxed))
    }

    /// Logs a store call that failed, once per outage (see
    /// [`report_store_failure`]), and hands the error back for `?` to map.
    pub fn reported<E: StoreFailure>(&self, e: E, during: &'static str) -> E {
        report_store_failure(&e, self.redis_up(), during);
        e
    }

    /// The same state over other device, mesh and worker stores, for instance `instance`.
    pub fn with_stores(
        mut self,
        devices: Devices,
        lease: Arc<dyn Lease>,
        mesh: Arc<dyn MeshStore>,
        workers: Arc<dyn WorkerStore>,
        instance: &str,
    ) -> Self {
        self.devices = devices;
        self.lease = lease;
        self.mesh = mesh;
        self.workers = workers;
        self.instance = Arc::from(instance);
        self
    }

    /// Records whether Redis answers.
    pub fn set_redis_up(&self, up: bool) {
        if let Some(flag) = &self.redis_up {
            flag.store(up, Ordering::Relaxed);
        }
    }

    /// Where connections can be: this instance, or a Redis cluster.
    pub fn reach(&self) -> crate::transport::deliver::Reach {
        use crate::transport::deliver::Reach;
        match self.config.redis_url {
            Some(_) => Reach::Cluster(self.config.redis_timeout),
            None => Reach::Local,
        }
    }

    /// State over `store` with fresh counters.
    pub fn new(config: Config, store: Arc<dyn RoomStore>) -> Self {
        let stats = Arc::new(Stats { started: Instant::now(), connections: AtomicUsize::new(0), idle: Notify::new() });
        let redis_up = config.redis_url.as_ref().map(|_| Arc::new(AtomicBool::new(true)));
        Self {
            redis_up,
            limits: Arc::new(AddressLimits::default()),
            devices: Devices::memory(),
            lease: Arc::new(Solo),
            mailboxes: Arc::default(),
            metrics: Arc::default(),
            instance: Arc::from("local"),
            directory: Arc::new(Notify::new()),
            mesh: Arc::new(MemoryMesh::new()),
            workers: Arc::new(MemoryWorkers::default()),
            ring: Arc::default(),
            leader: Arc::default(),
            config: Arc::new(config),
            store,
            stats,
        }
    }
}

/// Counters reported by `/health`.
pub struct Stats {
    started: Instant,
    connections: AtomicUsize,
    /// Woken when the last connection has been cleaned up (for shutdown).
    idle: Notify,
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

    /// Counts a connection in.
    pub fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection out, after its clean-up has run.
    pub fn disconnected(&self) {
        if self.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Completes once no connection is left (each one's clean-up has run).
    pub async fn all_disconnected(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.connections() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Per-client-address state: open connections and REST buckets.
#[derive(Default)]
pub struct AddressLimits {
    connections: DashMap<IpAddr, usize>,
    rest: KeyedLimits<IpAddr>,
}

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
        let mut count = self.connections.entry(ip).or_default();
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    /// Counts a connection from `ip` out.
    pub fn disconnected(&self, ip: IpAddr) {
        if let Entry::Occupied(mut count) = self.connections.entry(ip) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    /// A REST request from `ip` at `now`: `Err(wait)` when over the limit.
    pub fn rest_request(&self, ip: IpAddr, now: Instant, (rate, burst): (u32, u32)) -> Result<(), Duration> {
        self.rest.take(&ip, now, f64::from(rate), f64::from(burst))
    }
}
