//! State behind traits, one folder per kind: [`rooms`], [`devices`]
//! (presence, queued signals, device connections), [`mesh`], [`peerjs`] and [`workers`].
//! Each folder holds its trait(s), a memory engine (one instance, the
//! default), a Redis engine (a cluster of instances) and one test suite that
//! every engine passes unchanged. [`redis`] is the toolkit the Redis engines
//! share.
//!
//! Engines apply the rules of [`crate::domain`]; none re-implements them.
//! Must not import `core`, `transport`, `cluster` or `state`: stores are below
//! everything that uses them.

pub mod devices;
pub mod mesh;
pub mod peerjs;
pub mod redis;
pub mod rooms;
pub mod workers;

/// Why a store could not do its work (rules are reported by each kind's own
/// error where they apply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached, or holds corrupt data; the cause
    /// is for the logs only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// What a cluster heartbeat found that an instance could not see otherwise
/// (see [`redis::instances`]); either way its live connections' state must
/// be put back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapse {
    /// Redis lost its data: everything this instance had written is gone.
    DataLost,
    /// This instance's heartbeat had expired: it may have been taken for
    /// dead and its seats removed.
    TakenForDead,
}

/// An error that may be the backing store's unavailability, which is logged
/// once per outage rather than once per request.
pub trait StoreFailure {
    /// The cause, if the store could not be reached (or held corrupt data).
    fn unavailable(&self) -> Option<&str>;
}

impl StoreFailure for StoreError {
    fn unavailable(&self) -> Option<&str> {
        let StoreError::Unavailable(cause) = self;
        Some(cause)
    }
}

impl StoreFailure for rooms::RoomStoreError {
    fn unavailable(&self) -> Option<&str> {
        match self {
            rooms::RoomStoreError::Store(e) => e.unavailable(),
            rooms::RoomStoreError::Rule(_) => None,
        }
    }
}

impl StoreFailure for devices::AnnounceFailure {
    fn unavailable(&self) -> Option<&str> {
        match self {
            devices::AnnounceFailure::Store(e) => e.unavailable(),
            devices::AnnounceFailure::Rule(_) => None,
        }
    }
}

impl StoreFailure for devices::EnqueueFailure {
    fn unavailable(&self) -> Option<&str> {
        match self {
            devices::EnqueueFailure::Store(e) => e.unavailable(),
            devices::EnqueueFailure::Full(_) => None,
        }
    }
}
