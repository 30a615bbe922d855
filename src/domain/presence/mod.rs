//! Device presence per private network (seed 004): who is online, how to
//! reach them, and which devices coordinate a network.
//!
//! Plain rules over plain values; time is passed in, so the TTL and the sweep
//! are tested without waiting. Where seed 004's sketch does something other
//! than what it means, these rules follow the meaning:
//! - its TTL index deleted a device 10 minutes after it was last seen, while
//!   `GET /network/:id/peer/:userId` offers "coordinators seen in the last
//!   hour" as a fallback. Here a device is online for `DEVICE_TTL_MINUTES`
//!   after its last announcement and its record is kept for [`RETENTION`], so
//!   the fallback has something to return;
//! - its promotion `updateMany(..., { limit })` promotes every candidate
//!   (MongoDB's `updateMany` has no limit). Here exactly the missing number is
//!   promoted, earliest-seen devices first;
//! - a promoted device lost the role at its next announcement (the flag was
//!   recomputed from the announced capabilities). Here a promotion lasts while
//!   the device stays online.
//!
//! Must not import an I/O crate or anything outside `domain` (as all of `domain`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::ids::string_newtype;

/// How long a device's record is kept after it was last seen (for the
/// "last coordinators" fallback), whatever the presence TTL.
pub const RETENTION: Duration = Duration::from_secs(3600);

/// Longest network id (seed 004: alphanumeric, 1 to 50).
pub const MAX_NETWORK_ID: usize = 50;
/// Longest device id (seed 004: `^peer_[A-Za-z0-9_]+$`, at most 100).
pub const MAX_DEVICE_ID: usize = 100;
/// Longest signal address accepted.
pub const MAX_SIGNAL_ADDRESS: usize = 2048;

/// Why a presence value is invalid (the message names the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// `networkId` is not 1 to 50 ASCII letters and digits.
    #[error("must be 1 to {MAX_NETWORK_ID} ASCII letters or digits")]
    NetworkId,
    /// `peerId` / `deviceId` does not match `^peer_[A-Za-z0-9_]+$` within 100 characters.
    #[error("must match ^peer_[A-Za-z0-9_]+$ and be at most {MAX_DEVICE_ID} characters")]
    DeviceId,
    /// `signalAddress` is not a `ws://` or `wss://` URL with a host.
    #[error("must be a ws:// or wss:// URL with a host, at most {MAX_SIGNAL_ADDRESS} characters")]
    SignalAddress,
    /// A capability is not one of relay, store, coordinator.
    #[error("must be one of relay, store, coordinator (got {0:?})")]
    Capability(String),
}

string_newtype!(
    /// A private network's id: 1 to 50 ASCII letters and digits.
    NetworkId
);
string_newtype!(
    /// A device's id (seed 004's `peerId`/`deviceId`): `peer_` then letters, digits, `_`.
    DeviceId
);
string_newtype!(
    /// Where a device can be reached: a `ws://` or `wss://` URL.
    SignalAddress
);
super::ids::deserialize_by_parse!(NetworkId, DeviceId, SignalAddress);

impl NetworkId {
    /// Parses a wire string.
    pub fn parse(raw: &str) -> Result<Self, PresenceError> {
        let ok = (1..=MAX_NETWORK_ID).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(Arc::from(raw))).ok_or(PresenceError::NetworkId)
    }
}

impl DeviceId {
    /// Parses a wire string.
    pub fn parse(raw: &str) -> Result<Self, PresenceError> {
        let rest = raw.strip_prefix("peer_").unwrap_or("");
        let ok = raw.len() <= MAX_DEVICE_ID
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Self(Arc::from(raw))).ok_or(PresenceError::DeviceId)
    }
}

impl SignalAddress {
    /// Parses a wire string: `ws://host[...]` or `wss://host[...]`, no spaces
    /// or control characters.
    pub fn parse(raw: &str) -> Result<Self, PresenceError> {
        let rest = raw.strip_prefix("wss://").or_else(|| raw.strip_prefix("ws://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        let host_ok = host.is_some_and(|h| {
            let h = h.rsplit_once('@').map_or(h, |(_, h)| h);
            !h.is_empty() && !h.starts_with(':')
        });
        let ok =
            host_ok && raw.len() <= MAX_SIGNAL_ADDRESS && !raw.chars().any(|c| c.is_control() || c.is_whitespace());
        ok.then(|| Self(Arc::from(raw))).ok_or(PresenceError::SignalAddress)
    }
}

/// What a device can do for its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Relays traffic for others.
    Relay,
    /// Stores messages for others.
    Store,
    /// Helps others discover peers.
    Coordinator,
}

impl Capability {
    /// Parses `relay`, `store` or `coordinator`.
    pub fn parse(raw: &str) -> Result<Self, PresenceError> {
        match raw {
            "relay" => Ok(Self::Relay),
            "store" => Ok(Self::Store),
            "coordinator" => Ok(Self::Coordinator),
            other => Err(PresenceError::Capability(other.chars().take(40).collect())),
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Store => "store",
            Self::Coordinator => "coordinator",
        }
    }
}

/// The networks a client may announce into, list and signal within: every
/// one (seed 004, and whenever `DEVICE_NETWORK_CLAIM` is unset), or only
/// those its token's claim names. Decided at the edge from the token; the
/// rules only ask it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkAccess {
    /// Every network.
    Any,
    /// Only the networks with these ids (none, for a token without the claim).
    Only(Arc<[String]>),
}

impl NetworkAccess {
    /// Whether `network` is one the client may use.
    pub fn allows(&self, network: &NetworkId) -> bool {
        match self {
            NetworkAccess::Any => true,
            NetworkAccess::Only(ids) => ids.iter().any(|id| id == network.as_str()),
        }
    }
}

mod device;
#[cfg(test)]
mod tests;

pub use device::{
    AnnounceError, Announcement, Device, PeerLookup, PresenceStats, earliest_first, lookup, promotions, stats,
};
