//! Why a core operation failed, whatever protocol asked. The transport maps
//! each case to its wire code in one place (`transport/wire/error.rs`).
//! Internal causes (a store that is down) are logged where they happen,
//! never carried here.

use crate::domain::queue::OverBudget;
use crate::domain::signal::RouteError;
use crate::domain::{RoomError, UserId};
use crate::store::StoreError;
use crate::store::devices::{AnnounceFailure, EnqueueFailure};
use crate::store::rooms::RoomStoreError;

use super::courier::DeliveryError;

/// A refused or failed operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A room rule refused it.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// A device signal that leaves its network, or comes from an unannounced device.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The target's outgoing queue is full; nothing was delivered.
    #[error("the target cannot take more messages now; the relay was not delivered")]
    TargetBusy,
    /// The target's connection has closed; nothing was delivered.
    #[error("the target's connection has closed; the relay was not delivered")]
    TargetGone,
    /// The state store or the cluster cannot be reached.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
    /// A device queue budget would be passed (the message names which).
    #[error(transparent)]
    QueueFull(OverBudget),
    /// The connection holds `MAX_ROOMS_PER_CONNECTION` seats already.
    #[error("this connection is in {0} rooms already, the most allowed; leave one first")]
    TooManyRooms(usize),
    /// The connection is subscribed to this many channels already.
    #[error("this connection is subscribed to {0} channels already, the most allowed; unsubscribe from one first")]
    TooManyChannels(usize),
    /// With JWT on, the user named is not the token's.
    #[error("this token may only act as {0:?}")]
    NotYourUser(UserId),
    /// The device id belongs to another user's live record.
    #[error("this device id belongs to another user")]
    DeviceTaken,
    /// The device id's record expired, but signals queued for its old owner still wait.
    #[error("this device id belongs to another user, whose signals still wait for it")]
    DeviceTakenWhileSignalsWait,
    /// More join requests reached this room's host than [`crate::core::rooms::approval::JOIN_REQUESTS_PER_SECOND`]
    /// allows (a burst of [`crate::core::rooms::approval::JOIN_REQUEST_BURST`]); retry after this long.
    #[error("too many join requests to this room's host; retry later")]
    TooManyJoinRequests(std::time::Duration),
    /// A device announced more often than `RATE_LIMIT_MAX_REQUESTS` per window; retry after this long.
    #[error("too many presence announcements from this device; retry later")]
    TooManyAnnouncements(std::time::Duration),
    /// With JWT on, the device was not announced by the token's user (or its record expired).
    #[error("this device was not announced by this token's user: announce it first")]
    NotYourDevice,
    /// With `DEVICE_NETWORK_CLAIM` set, the token's claim does not name this network.
    #[error("this token's network claim does not name network {0:?}")]
    NotInNetwork(String),
    /// A PeerJS id is held under another token.
    #[error("ID is taken")]
    IdTaken,
    /// `PEERJS_CONCURRENT_LIMIT` ids are registered already.
    #[error("Server has reached its concurrent user limit")]
    ConcurrentLimit,
    /// A newer connection holds this connection's identity now.
    #[error("a newer connection holds this identity now; this one is out of date")]
    Replaced,
}

impl From<StoreError> for CoreError {
    fn from(_: StoreError) -> Self {
        CoreError::Unavailable
    }
}

impl From<RoomStoreError> for CoreError {
    fn from(e: RoomStoreError) -> Self {
        match e {
            RoomStoreError::Rule(rule) => CoreError::Room(rule),
            RoomStoreError::Store(_) => CoreError::Unavailable,
        }
    }
}

impl From<AnnounceFailure> for CoreError {
    fn from(e: AnnounceFailure) -> Self {
        match e {
            AnnounceFailure::Rule(_) => CoreError::DeviceTaken,
            AnnounceFailure::Store(_) => CoreError::Unavailable,
        }
    }
}

impl From<EnqueueFailure> for CoreError {
    fn from(e: EnqueueFailure) -> Self {
        match e {
            EnqueueFailure::Full(over) => CoreError::QueueFull(over),
            EnqueueFailure::Store(_) => CoreError::Unavailable,
        }
    }
}

impl From<DeliveryError> for CoreError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Busy => CoreError::TargetBusy,
            DeliveryError::Gone => CoreError::TargetGone,
            DeliveryError::Unavailable => CoreError::Unavailable,
        }
    }
}
