//! A device's record and the rules over many: announcing, going stale,
//! promotion, lookup by user, and the figures `/metrics` shows.

use std::time::{Duration, SystemTime};

use super::{Capability, DeviceId, NetworkId, RETENTION, SignalAddress};
use crate::domain::UserId;

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

/// The answer to "where is this user's device in this network?".
#[derive(Clone, Debug, PartialEq)]
pub enum PeerLookup {
    /// An online device of the user (the most recently seen).
    Online(Device),
    /// None online: when the user was last seen, if ever, and the network's
    /// coordinators seen within the last hour, for fallback routing.
    Offline {
        /// The user's last announcement in this network, if the record is kept.
        last_seen: Option<SystemTime>,
        /// Coordinator devices seen within [`RETENTION`], most recent first.
        last_coordinators: Vec<DeviceId>,
    },
}

/// Where `user` is among the devices of one network at `now` (expired
/// records do not count).
pub fn lookup<'a>(
    in_network: impl Iterator<Item = &'a Device>,
    user: &UserId,
    now: SystemTime,
    ttl: Duration,
) -> PeerLookup {
    let in_network: Vec<&Device> = in_network.filter(|d| !d.is_expired(now)).collect();
    let mine: Vec<&Device> = in_network.iter().copied().filter(|d| &d.user == user).collect();
    if let Some(online) =
        mine.iter().filter(|d| d.online && !d.is_stale(now, ttl)).max_by_key(|d| (d.last_seen, d.id.clone()))
    {
        return PeerLookup::Online((*online).clone());
    }
    let mut coordinators: Vec<&Device> = in_network.into_iter().filter(|d| d.coordinator).collect();
    coordinators.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
    PeerLookup::Offline {
        last_seen: mine.iter().map(|d| d.last_seen).max(),
        last_coordinators: coordinators.into_iter().map(|d| d.id.clone()).collect(),
    }
}

/// Presence figures for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresenceStats {
    /// Online devices.
    pub active_devices: usize,
    /// Networks with at least one online device.
    pub active_networks: usize,
    /// Online coordinators per network with online devices.
    pub coordinators: Vec<(NetworkId, usize)>,
}

/// [`PresenceStats`] over every device record.
pub fn stats<'a>(devices: impl Iterator<Item = &'a Device>) -> PresenceStats {
    let mut networks: std::collections::BTreeMap<NetworkId, usize> = Default::default();
    let mut active_devices = 0;
    for d in devices.filter(|d| d.online) {
        active_devices += 1;
        *networks.entry(d.network.clone()).or_default() += usize::from(d.coordinator);
    }
    PresenceStats { active_devices, active_networks: networks.len(), coordinators: networks.into_iter().collect() }
}

/// Orders devices by first announcement, then id.
pub fn earliest_first(devices: &mut [Device]) {
    devices.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
}
