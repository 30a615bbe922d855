//! Store-and-forward signaling between devices (seed 004): a signal for a
//! device that is not connected waits in its queue until the device takes it,
//! or until it expires and its sender is told.
//!
//! Seed 004's sketch deleted queued messages as it returned them, so a
//! response lost on the way lost the messages. Here a queue can also be read
//! without removing (`peek`) and cleared only up to what the device confirms
//! (`ack_up_to`); each signal has an id, increasing per queue, for that.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::UserId;
use super::presence::{Device, DeviceId};
use super::queue::SignalBody;

/// What a signal carries, as seed 004 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignalKind {
    /// An SDP offer.
    #[serde(rename = "offer")]
    Offer,
    /// An SDP answer.
    #[serde(rename = "answer")]
    Answer,
    /// An ICE candidate.
    #[serde(rename = "ice-candidate")]
    IceCandidate,
}

impl SignalKind {
    /// Parses `offer`, `answer` or `ice-candidate`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "offer" => Some(Self::Offer),
            "answer" => Some(Self::Answer),
            "ice-candidate" => Some(Self::IceCandidate),
            _ => None,
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::IceCandidate => "ice-candidate",
        }
    }
}

/// A signal to send: validated, not yet queued.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Offer, answer or candidate.
    pub kind: SignalKind,
    /// The sending device.
    pub from: DeviceId,
    /// The sending device's user, whose sender budget the signal counts against.
    pub sender_user: UserId,
    /// The receiving device.
    pub to: DeviceId,
    /// The receiving device's owner when it was queued: only that user ever
    /// reads it (a device id taken over later does not bring its queue along).
    pub owner: UserId,
    /// The body, relayed as sent (any JSON value, kept as its text).
    pub data: SignalBody,
}

/// A signal in a device's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    /// Increasing per receiving device; the device confirms up to an id.
    pub id: u64,
    /// The signal.
    pub signal: Outgoing,
    /// When it was queued.
    pub queued_at: SystemTime,
}

impl Queued {
    /// Whether it has waited `ttl` or longer at `now`.
    pub fn is_expired(&self, now: SystemTime, ttl: Duration) -> bool {
        self.queued_at + ttl <= now
    }
}

/// The notice a sender gets when its queued signal expired.
#[derive(Clone, Debug, PartialEq)]
pub struct Expired {
    /// The sender to tell.
    pub sender: DeviceId,
    /// The sender's user when it sent it: only that user reads the notice.
    pub sender_user: UserId,
    /// The device that never took it.
    pub to: DeviceId,
    /// What it was.
    pub kind: SignalKind,
    /// When it was queued.
    pub queued_at: SystemTime,
}

/// Why a signal cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The sender has no live record: it must announce itself first.
    #[error("announce this device (POST /network/{{networkId}}/announce) before signaling")]
    SenderNotAnnounced,
    /// No live record of the receiver in the sender's network.
    #[error("no device with that id in this device's network")]
    TargetNotFound,
}

/// Checks that a signal from `from` to `to` stays within one network at
/// `now`. Networks are isolated: a device of another network is as unknown
/// as one that never announced. A record counts until its retention ends, so
/// a device that went offline can still be signaled (the signal waits).
pub fn check_route(from: Option<&Device>, to: Option<&Device>, now: SystemTime) -> Result<(), RouteError> {
    let from = from.filter(|d| !d.is_expired(now)).ok_or(RouteError::SenderNotAnnounced)?;
    match to.filter(|d| !d.is_expired(now)) {
        Some(to) if to.network == from.network => Ok(()),
        _ => Err(RouteError::TargetNotFound),
    }
}

/// An expiry notice waiting for its sender to connect.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Increasing per sender; the sender confirms each.
    pub id: u64,
    /// What expired.
    pub expired: Expired,
}

impl Notice {
    /// Whether it waited [`NOTICE_RETENTION`] past its signal's expiry (after
    /// `ttl`) at `now`, and is dropped unread.
    pub fn is_past_retention(&self, now: SystemTime, ttl: Duration) -> bool {
        self.expired.queued_at + ttl + NOTICE_RETENTION <= now
    }
}

/// How long an expiry notice waits for its sender after the signal expired.
pub const NOTICE_RETENTION: Duration = Duration::from_secs(3600);

impl From<&Queued> for Expired {
    fn from(q: &Queued) -> Self {
        let s = &q.signal;
        Self {
            sender: s.from.clone(),
            sender_user: s.sender_user.clone(),
            to: s.to.clone(),
            kind: s.kind,
            queued_at: q.queued_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_and_print_as_their_wire_names() {
        for kind in [SignalKind::Offer, SignalKind::Answer, SignalKind::IceCandidate] {
            assert_eq!(SignalKind::parse(kind.name()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        assert_eq!(SignalKind::parse("candidate"), None);
    }

    #[test]
    fn a_queued_signal_expires_after_the_ttl_and_names_its_sender() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let q = Queued {
            id: 1,
            signal: Outgoing {
                kind: SignalKind::Offer,
                from: DeviceId::parse("peer_a").unwrap(),
                sender_user: crate::domain::UserId::parse("alice").unwrap(),
                to: DeviceId::parse("peer_b").unwrap(),
                owner: crate::domain::UserId::parse("bob").unwrap(),
                data: SignalBody::from_value(&serde_json::json!({"sdp": "v=0"})),
            },
            queued_at: at,
        };
        let ttl = Duration::from_secs(3600);
        assert!(!q.is_expired(at + Duration::from_secs(3599), ttl));
        assert!(q.is_expired(at + ttl, ttl));
        let notice = Expired::from(&q);
        assert_eq!((notice.sender.as_str(), notice.to.as_str(), notice.queued_at), ("peer_a", "peer_b", at));
    }

    #[test]
    fn a_signal_stays_within_one_network_and_needs_an_announced_sender() {
        use crate::domain::UserId;
        use crate::domain::presence::{Announcement, NetworkId, RETENTION, SignalAddress};
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let device = |id: &str, network: &str| {
            let a = Announcement {
                network: NetworkId::parse(network).unwrap(),
                device: DeviceId::parse(id).unwrap(),
                user: UserId::parse(id).unwrap(),
                signal_address: SignalAddress::parse("wss://x.example").unwrap(),
                capabilities: vec![],
            };
            Device::announce(None, a, at).unwrap()
        };
        let (a, b, c) = (device("peer_a", "home"), device("peer_b", "home"), device("peer_c", "work"));
        assert_eq!(check_route(Some(&a), Some(&b), at), Ok(()));
        assert_eq!(check_route(Some(&a), Some(&c), at), Err(RouteError::TargetNotFound), "another network");
        assert_eq!(check_route(Some(&a), None, at), Err(RouteError::TargetNotFound));
        assert_eq!(check_route(None, Some(&b), at), Err(RouteError::SenderNotAnnounced));
        let later = at + RETENTION;
        assert_eq!(check_route(Some(&a), Some(&b), later), Err(RouteError::SenderNotAnnounced), "records expire");
    }
}
