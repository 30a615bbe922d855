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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::UserId;
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

/// A presence announcement, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    /// The network announced in.
    pub network: NetworkId,
    /// The announcing device.
    pub device: DeviceId,
    /// The user the device belongs to (the token's `sub`, or the device id when open).
    pub user: UserId,
    /// Where the device can be reached.
    pub signal_address: SignalAddress,
    /// Its capabilities, without duplicates, in the order announced.
    pub capabilities: Vec<Capability>,
}

/// A device as the registry knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// Its owner.
    pub user: UserId,
    /// Its network.
    pub network: NetworkId,
    /// Where it can be reached.
    pub signal_address: SignalAddress,
    /// Capabilities, including `coordinator` once promoted.
    pub capabilities: Vec<Capability>,
    /// Whether it coordinates its network (announced, or promoted while online).
    pub coordinator: bool,
    /// Its last announcement.
    pub last_seen: SystemTime,
    /// Online: announced within the presence TTL (the sweep turns this off).
    pub online: bool,
    /// Its first announcement.
    pub created_at: SystemTime,
}

/// Why an announcement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The device id is held by another user's live record.
    #[error("this device id belongs to another user")]
    OwnedByAnotherUser,
}

impl Device {
    /// The record after `announcement` at `now`, given the current one.
    /// A device moves to the network it announces in; a promotion survives
    /// re-announcements while the device stays online.
    pub fn announce(current: Option<&Device>, a: Announcement, now: SystemTime) -> Result<Device, AnnounceError> {
        if let Some(d) = current
            && d.user != a.user
        {
            return Err(AnnounceError::OwnedByAnotherUser);
        }
        let kept_promotion = current.is_some_and(|d| d.online && d.coordinator && d.network == a.network);
        let mut capabilities = Vec::with_capacity(a.capabilities.len() + 1);
        for c in a.capabilities {
            if !capabilities.contains(&c) {
                capabilities.push(c);
            }
        }
        if kept_promotion && !capabilities.contains(&Capability::Coordinator) {
            capabilities.push(Capability::Coordinator);
        }
        let coordinator = capabilities.contains(&Capability::Coordinator);
        Ok(Device {
            id: a.device,
            user: a.user,
            network: a.network,
            signal_address: a.signal_address,
            capabilities,
            coordinator,
            last_seen: now,
            online: true,
            created_at: current.map_or(now, |d| d.created_at),
        })
    }

    /// Whether the sweep at `now` should mark it offline (not announced for `ttl`).
    pub fn is_stale(&self, now: SystemTime, ttl: Duration) -> bool {
        self.online && self.last_seen + ttl <= now
    }

    /// Whether its record is past [`RETENTION`] and may be deleted.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.last_seen + RETENTION <= now
    }

    /// Whether it may be promoted: online, not a coordinator, able to relay or store.
    pub fn can_be_promoted(&self) -> bool {
        self.online
            && !self.coordinator
            && self.capabilities.iter().any(|c| matches!(c, Capability::Relay | Capability::Store))
    }

    /// Marks it offline; an offline device is no coordinator by promotion.
    pub fn go_offline(&mut self) {
        self.online = false;
    }

    /// Makes it a coordinator.
    pub fn promote(&mut self) {
        self.coordinator = true;
        if !self.capabilities.contains(&Capability::Coordinator) {
            self.capabilities.push(Capability::Coordinator);
        }
    }
}

/// The devices to promote in one network so that `min` online coordinators
/// exist: exactly the number missing, earliest first (by first announcement,
/// then id), among devices that can be promoted.
pub fn promotions(network: &[Device], min: usize) -> Vec<DeviceId> {
    let online_coordinators = network.iter().filter(|d| d.online && d.coordinator).count();
    let missing = min.saturating_sub(online_coordinators);
    let mut candidates: Vec<&Device> = network.iter().filter(|d| d.can_be_promoted()).collect();
    candidates.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    candidates.into_iter().take(missing).map(|d| d.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn announcement(device: &str, user: &str, caps: &[&str]) -> Announcement {
        Announcement {
            network: NetworkId::parse("home").unwrap(),
            device: DeviceId::parse(device).unwrap(),
            user: UserId::parse(user).unwrap(),
            signal_address: SignalAddress::parse(&format!("wss://signal.example/{device}")).unwrap(),
            capabilities: caps.iter().map(|c| Capability::parse(c).unwrap()).collect(),
        }
    }

    fn device(id: &str, created: u64, caps: &[&str]) -> Device {
        Device::announce(None, announcement(id, "u", caps), t(created)).unwrap()
    }

    #[test]
    fn network_ids_are_one_to_fifty_letters_or_digits() {
        assert!(NetworkId::parse("home42").is_ok());
        assert!(NetworkId::parse(&"n".repeat(50)).is_ok());
        for bad in ["", &"n".repeat(51), "home-net", "höme", "a b"] {
            assert_eq!(NetworkId::parse(bad), Err(PresenceError::NetworkId), "{bad:?}");
        }
    }

    #[test]
    fn device_ids_match_the_seed_pattern_within_one_hundred_characters() {
        assert!(DeviceId::parse("peer_alice_1642684800").is_ok());
        assert!(DeviceId::parse(&format!("peer_{}", "a".repeat(95))).is_ok());
        for bad in ["peer_", "alice", "peer-alice", "peer_al ice", "PEER_alice", &format!("peer_{}", "a".repeat(96))] {
            assert_eq!(DeviceId::parse(bad), Err(PresenceError::DeviceId), "{bad:?}");
        }
    }

    #[test]
    fn signal_addresses_are_websocket_urls_with_a_host() {
        for good in ["wss://signal.example/peer_a", "ws://10.0.0.2:8080/signaling?x=1", "wss://u@h.example"] {
            assert!(SignalAddress::parse(good).is_ok(), "{good}");
        }
        for bad in ["https://signal.example", "wss://", "wss:///path", "wss://:80/x", "wss://a b", "ws://h\n", "signal"]
        {
            assert_eq!(SignalAddress::parse(bad), Err(PresenceError::SignalAddress), "{bad:?}");
        }
        assert!(SignalAddress::parse(&format!("wss://h/{}", "p".repeat(MAX_SIGNAL_ADDRESS))).is_err());
    }

    #[test]
    fn capabilities_are_relay_store_or_coordinator() {
        assert_eq!(Capability::parse("store"), Ok(Capability::Store));
        assert_eq!(Capability::parse("admin"), Err(PresenceError::Capability("admin".into())));
    }

    #[test]
    fn an_announcement_upserts_keeps_the_first_sighting_and_dedups_capabilities() {
        let first = Device::announce(None, announcement("peer_a", "alice", &["relay", "relay"]), t(0)).unwrap();
        assert_eq!(
            (first.online, first.coordinator, first.capabilities.clone()),
            (true, false, vec![Capability::Relay])
        );
        let again = Device::announce(Some(&first), announcement("peer_a", "alice", &["coordinator"]), t(60)).unwrap();
        assert_eq!((again.created_at, again.last_seen, again.coordinator), (t(0), t(60), true));
    }

    #[test]
    fn another_user_cannot_take_a_device_id() {
        let mine = device("peer_a", 0, &[]);
        let err = Device::announce(Some(&mine), announcement("peer_a", "mallory", &[]), t(1));
        assert_eq!(err, Err(AnnounceError::OwnedByAnotherUser));
    }

    #[test]
    fn a_device_goes_stale_after_the_ttl_and_is_deleted_after_retention() {
        let d = device("peer_a", 0, &[]);
        let ttl = Duration::from_secs(600);
        assert!(!d.is_stale(t(599), ttl));
        assert!(d.is_stale(t(600), ttl));
        assert!(!d.is_expired(t(3599)));
        assert!(d.is_expired(t(3600)));
    }

    #[test]
    fn promotion_fills_exactly_the_missing_seats_earliest_first() {
        let mut net = vec![
            device("peer_late", 30, &["store"]),
            device("peer_early", 10, &["relay"]),
            device("peer_mid", 20, &["relay", "store"]),
            device("peer_plain", 0, &[]),
        ];
        assert_eq!(
            promotions(&net, 2),
            vec![DeviceId::parse("peer_early").unwrap(), DeviceId::parse("peer_mid").unwrap()]
        );
        net[1].promote();
        assert_eq!(promotions(&net, 2), vec![DeviceId::parse("peer_mid").unwrap()], "one seat left");
        net[2].promote();
        assert!(promotions(&net, 2).is_empty());
        net[1].go_offline();
        assert_eq!(
            promotions(&net, 2),
            vec![DeviceId::parse("peer_late").unwrap()],
            "an offline coordinator does not count"
        );
        assert!(promotions(&[device("peer_plain", 0, &[])], 2).is_empty(), "no capable device");
    }

    #[test]
    fn a_promotion_survives_reannouncements_while_online() {
        let mut d = device("peer_a", 0, &["relay"]);
        d.promote();
        let again = Device::announce(Some(&d), announcement("peer_a", "u", &["relay"]), t(60)).unwrap();
        assert!(again.coordinator);
        d.go_offline();
        let back = Device::announce(Some(&d), announcement("peer_a", "u", &["relay"]), t(9000)).unwrap();
        assert!(!back.coordinator, "promotion ended when it went offline");
    }
}
