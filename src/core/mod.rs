//! The protocol-neutral core: every operation a client's connection can ask
//! for (take a seat, leave, relay, ask to join and decide, queue a device
//! signal and confirm it, join an organization and hold its admin seat,
//! register a worker and route to it), and the background work that keeps
//! state right (cluster upkeep, the leader's jobs, elections, room lists).
//!
//! The core reaches connections only through [`link::Link`] handles kept by
//! the [`courier::Courier`], so a socket.io client and a raw-WebSocket client
//! of the same feature meet in the same room, organization or queue, locally
//! and across instances. It knows nothing of socket.io or HTTP.
//!
//! [`Core`] holds the state; each feature's operations are a view over it
//! ([`Core::rooms`], [`Core::devices`], [`Core::mesh`], [`Core::workers`],
//! [`Core::directory`], [`Core::peerjs`], [`Core::topics`]). Must not import `transport`.

pub mod courier;
pub mod devices;
pub mod directory;
pub mod error;
pub mod event;
pub mod groups;
pub mod health;
pub mod jobs;
pub mod link;
pub mod mesh;
pub mod peerjs;
pub mod rooms;
pub mod tally;
pub mod topics;
pub mod upkeep;
pub mod workers;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::cluster::bus::Bus;
use crate::cluster::lease::{Lease, Solo};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::devices::Devices;
use crate::store::mesh::MeshStore;
use crate::store::mesh::memory::MemoryMesh;
use crate::store::peerjs::PeerStore;
use crate::store::peerjs::memory::MemoryPeers;
use crate::store::rooms::RoomStore;
use crate::store::rooms::memory::MemoryStore;
use crate::store::workers::WorkerStore;
use crate::store::workers::memory::MemoryWorkers;

pub use error::CoreError;

/// The state engines the core works on.
pub struct Stores {
    /// Rooms and seats.
    pub rooms: Arc<dyn RoomStore>,
    /// Presence, queues, device connections.
    pub devices: Devices,
    /// Mesh clients and admin seats.
    pub mesh: Arc<dyn MeshStore>,
    /// The worker pool.
    pub workers: Arc<dyn WorkerStore>,
    /// PeerJS ids and queues.
    pub peers: Arc<dyn PeerStore>,
    /// The leader lease.
    pub lease: Arc<dyn Lease>,
}

impl Stores {
    /// The memory engines (one instance).
    pub fn memory() -> Self {
        Self {
            rooms: Arc::new(MemoryStore::new()),
            devices: Devices::memory(),
            mesh: Arc::new(MemoryMesh::new()),
            workers: Arc::new(MemoryWorkers::default()),
            peers: Arc::new(MemoryPeers::new()),
            lease: Arc::new(Solo),
        }
    }
}

/// The core's state: configuration, stores, delivery, and each feature's
/// local bookkeeping.
pub struct Core {
    /// The start-up configuration.
    pub config: Arc<Config>,
    /// This instance's id in the cluster (`local` alone).
    pub instance: Arc<str>,
    /// Delivery to connections, here and across the cluster.
    pub courier: Courier,
    /// Whether Redis answers; how store failures are logged.
    pub health: health::Health,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether this instance is the cluster's leader (it runs the cluster-wide jobs).
    pub leader: jobs::Leadership,
    /// The state engines.
    pub stores: Stores,
    seats: rooms::seats::SeatBook,
    /// Held connections by when their grace ends; the bound on clean-ups.
    pub graces: rooms::grace::Graces,
    /// Woken when rooms change here, so directory lists go out.
    rooms_changed: Notify,
    /// Woken when this instance's directory clients come or go, so the count goes out (coalesced).
    directory_changed: Notify,
    /// New join requests per room, so nobody can flood a host.
    join_requests: crate::domain::rate::KeyedLimits<crate::domain::RoomId>,
    mailboxes: devices::mailbox::Mailboxes,
    mesh_members: mesh::Members,
    ring: workers::RingCache,
    peers: peerjs::Registry,
}

pub use courier::Courier;

impl Core {
    /// The core of instance `instance` over `stores`; `bus` in a cluster.
    pub fn new(config: Arc<Config>, stores: Stores, instance: &str, bus: Option<Bus>) -> Self {
        let instance: Arc<str> = Arc::from(instance);
        let clustered = bus.is_some();
        Self {
            courier: Courier::new(instance.clone(), bus),
            health: health::Health::new(clustered),
            metrics: Arc::default(),
            leader: jobs::Leadership::default(),
            seats: Default::default(),
            graces: Default::default(),
            rooms_changed: Notify::new(),
            directory_changed: Notify::new(),
            join_requests: Default::default(),
            mailboxes: Default::default(),
            mesh_members: Default::default(),
            ring: Default::default(),
            peers: Default::default(),
            instance,
            stores,
            config,
        }
    }

    /// Rooms: seats, relays, approval.
    pub fn rooms(self: &Arc<Self>) -> rooms::Rooms<'_> {
        rooms::Rooms(self)
    }

    /// The live room directory and client counts.
    pub fn directory(self: &Arc<Self>) -> directory::Directory<'_> {
        directory::Directory(self)
    }

    /// Publish/subscribe topics (y-webrtc).
    pub fn topics(self: &Arc<Self>) -> topics::Topics<'_> {
        topics::Topics(self)
    }

    /// Device presence and store-and-forward signals.
    pub fn devices(self: &Arc<Self>) -> devices::DeviceSignals<'_> {
        devices::DeviceSignals(self)
    }

    /// Organization mesh and admin elections.
    pub fn mesh(self: &Arc<Self>) -> mesh::Mesh<'_> {
        mesh::Mesh(self)
    }

    /// PeerJS ids, forwarding and queues.
    pub fn peerjs(self: &Arc<Self>) -> peerjs::PeerJs<'_> {
        peerjs::PeerJs(self)
    }

    /// Worker pool, ring and routing.
    pub fn workers(self: &Arc<Self>) -> workers::Workers<'_> {
        workers::Workers(self)
    }

    /// Logs a store failure once per outage and hands it back (see [`health::Health::reported`]).
    pub fn reported<E: crate::store::StoreFailure>(&self, e: E, during: &'static str) -> E {
        self.health.reported(e, during)
    }
}
