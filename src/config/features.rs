//! The settings of the seed systems' features, each under its seed's
//! variable names: presence and queued signals (004), worker routing (002),
//! mesh coordination (000). Read by [`super::Config::from_lookup`].

use std::time::Duration;

use super::Secret;
use crate::domain::queue::QueueBudget;

/// Presence and queued signaling, with seed 004's variable names.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceConfig {
    /// `DEVICE_TTL_MINUTES`: a device is online for this long after its last
    /// announcement (default 10; decimals allowed, 0.01 to 60).
    pub device_ttl: Duration,
    /// `MIN_COORDINATORS_PER_NETWORK`: online coordinators each network should
    /// have (default 2; 0 turns promotion off).
    pub min_coordinators: usize,
    /// `PRESENCE_CLEANUP_INTERVAL`: milliseconds between presence sweeps (default 300 000).
    pub cleanup_interval: Duration,
    /// `COORDINATOR_CHECK_INTERVAL`: milliseconds between promotion checks (default 600 000).
    pub coordinator_interval: Duration,
    /// `RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`: announcements one
    /// device may make (default 12 a minute); past it `429`.
    pub announce_limit: (u32, Duration),
    /// `SIGNALING_TTL_HOURS`: how long a signal waits for its device before it
    /// expires and its sender is told (default 1; decimals allowed, 0.0001 to 168).
    pub signal_ttl: Duration,
    /// `SIGNAL_EXPIRY_INTERVAL`: milliseconds between checks for expired signals (default 60 000).
    pub expiry_interval: Duration,
    /// `SIGNAL_ACK_TIMEOUT_MS`: how long a device has to ack a pushed signal
    /// before it is pushed again on the same connection (default 10 000).
    pub ack_timeout: Duration,
    /// `JOB_LEASE_MS`: in a cluster, the jobs run on the instance holding this
    /// lease; it passes to another within this long of its holder dying (default 30 000).
    pub job_lease: Duration,
    /// `DEVICE_QUEUE_MAX_BYTES` (default 1 MiB), `DEVICE_SENDER_MAX_BYTES`
    /// (default 4 MiB), `DEVICE_QUEUES_MAX_BYTES` (default 256 MiB): bytes of
    /// signal bodies that may wait per receiving device, per sending user and
    /// in all (the instance, or the cluster with Redis); 1 000 signals per device.
    pub queue_budget: QueueBudget,
    /// `DEVICE_NETWORK_CLAIM`: the name of a token claim listing the networks
    /// (a string, a comma list, or an array of strings) a token may announce
    /// into, list and signal within; others get `403 forbidden`. Unset
    /// (default), every network is open to every token, as in seed 004. Needs
    /// `JWT_SECRET`; 1 to 64 of `A-Z a-z 0-9 _ - . :`, not a registered claim.
    pub network_claim: Option<String>,
}

/// Worker routing, with seed 002's variable names.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// `WORKER_KEY`: the key workers present; unset, no worker is admitted.
    pub key: Option<Secret>,
    /// `WORKER_HEALTH_TIMEOUT`: a worker silent this long (ms) leaves the ring (default 1 000).
    pub health_timeout: Duration,
    /// `WORKER_RETENTION_MS`: a worker silent this long (ms) is forgotten by
    /// the leader, no longer listed by `GET /workers`, as the records left by
    /// a front server that died (default 600 000, at least
    /// `WORKER_HEALTH_TIMEOUT`).
    pub retention: Duration,
    /// `CONSISTENT_HASH_REPLICAS`: virtual nodes per worker (default 150, 1 to 1 000).
    pub replicas: usize,
}

/// Mesh coordination, with seed 000's variable names (milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct MeshConfig {
    /// `HEARTBEAT_INTERVAL`: between `server-heartbeat`s and `admin-heartbeat`s (default 10 000).
    pub heartbeat_interval: Duration,
    /// `CLIENT_TIMEOUT`: a client silent this long is dropped (default 30 000).
    pub client_timeout: Duration,
    /// `ELECTION_DELAY`: an election runs this long after the admin seat
    /// empties; also the admin lease (default 2 000).
    pub election_delay: Duration,
    /// `MESH_OPEN_WITH_JWT`: with `JWT_SECRET` set, `/mesh` requires the
    /// token's `organizationId` and `capabilities` claims unless this is
    /// `true`, which makes them optional again: a token without them joins any
    /// organization with any capabilities (default `false`; no effect without JWT).
    pub open_with_jwt: bool,
}
