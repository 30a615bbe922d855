//! The default namespace's wire: event names (each exists once, here), the
//! shapes of what the server sends, and how each core event is rendered
//! ([`emit`]). The contract is `docs/protocol/rooms.md`.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use super::payload::body_field;
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::domain::signal::SignalKind;
use crate::domain::{RoomId, UserId};
use crate::transport::conn::sio::{WireName, delivered};
use crate::transport::wire::rooms;

/// Client -> server: join a room.
pub const JOIN_ROOM: &str = "join-room";
/// Client -> server: leave a room.
pub const LEAVE_ROOM: &str = "leave-room";
/// Server -> client: someone joined a room you are in.
pub const USER_JOINED: &str = "user-joined";
/// Server -> client: someone left a room you are in (or disconnected).
pub const USER_LEFT: &str = "user-left";
/// Server -> client: the participants, sent to a joiner.
pub const ROOM_USERS: &str = "room-users";
/// Server -> client: `{ roomId, targetId, count }`, relays you sent to a held
/// seat that were never delivered (its grace ended).
pub const RELAY_EXPIRED: &str = "relay-expired";
/// Server -> client, on connect: `{ iceServers, ttlSeconds }` for RTCPeerConnection.
pub const ICE_SERVERS: &str = "ice-servers";

/// The client events of the default namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `join-room`
    JoinRoom,
    /// `leave-room`
    LeaveRoom,
    /// `offer`, `answer` or `ice-candidate`
    Relay(SignalKind),
    /// `join-approved` / `join-rejected` (a host's answer to a join request;
    /// true for approved). Beyond contract v1: for a host on `/`.
    Decide(bool),
    /// A name the contract does not list.
    Unknown(String),
}

impl ClientEvent {
    /// Every known client event.
    pub const KNOWN: [ClientEvent; 7] = [
        ClientEvent::JoinRoom,
        ClientEvent::LeaveRoom,
        ClientEvent::Relay(SignalKind::Offer),
        ClientEvent::Relay(SignalKind::Answer),
        ClientEvent::Relay(SignalKind::IceCandidate),
        ClientEvent::Decide(true),
        ClientEvent::Decide(false),
    ];
}

impl WireName for ClientEvent {
    fn from_name(name: &str) -> Self {
        Self::KNOWN.into_iter().find(|event| event.name() == name).unwrap_or_else(|| {
            // Bounded: the name is echoed in the answer.
            ClientEvent::Unknown(name.chars().take(64).collect())
        })
    }

    fn name(&self) -> &str {
        match self {
            ClientEvent::JoinRoom => JOIN_ROOM,
            ClientEvent::LeaveRoom => LEAVE_ROOM,
            ClientEvent::Relay(kind) => kind.name(),
            ClientEvent::Decide(approve) => rooms::decision_event(*approve),
            ClientEvent::Unknown(name) => name,
        }
    }
}

/// `user-joined` / `user-left`: `{ roomId, userId }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// Who joined or left.
    pub user_id: &'a UserId,
}

/// `room-users`: `{ roomId, users }`, joiner included, in join order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomUsers<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// Participants in join order.
    pub users: &'a [UserId],
}

/// `relay-expired`: `{ roomId, targetId, count }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayExpired<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The user the relays were for.
    pub target_id: &'a UserId,
    /// How many were not delivered.
    pub count: usize,
}

/// A relayed message: `{ roomId, senderId, <offer|answer|candidate> }`.
pub struct Relayed<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The sender's user id in the room.
    pub sender_id: &'a UserId,
    /// Which message, naming the body field.
    pub kind: SignalKind,
    /// The body exactly as the sender sent it.
    pub body: &'a Value,
}

impl Serialize for Relayed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("roomId", self.room_id)?;
        map.serialize_entry("senderId", self.sender_id)?;
        map.serialize_entry(body_field(self.kind), self.body)?;
        map.end()
    }
}

/// A successful ack: `{ ok: true }`, plus `roomId` and `users` where they apply.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct AckOk {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_id: Option<RoomId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<UserId>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
}

impl AckOk {
    /// `{ ok: true }`
    pub fn ok() -> Self {
        Self { ok: true, ..Self::default() }
    }

    /// `{ ok: true, roomId }`
    pub fn room(room_id: RoomId) -> Self {
        Self { room_id: Some(room_id), ..Self::ok() }
    }

    /// `{ ok: true, queued: true }`: a relay kept for a held seat.
    pub fn queued() -> Self {
        Self { queued: true, ..Self::ok() }
    }

    /// `{ ok: true, roomId, users }`
    pub fn joined(room_id: RoomId, users: Vec<UserId>) -> Self {
        Self { users: Some(users), ..Self::room(room_id) }
    }
}

/// Renders a core event for a client of the default namespace.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    delivered(match event {
        Event::Relay { room, sender, kind, body } => {
            socket.emit(kind.name(), &Relayed { room_id: room, sender_id: sender, kind: *kind, body })
        }
        Event::RoomUsers { room, users } => socket.emit(ROOM_USERS, &RoomUsers { room_id: room, users }),
        Event::UserJoined { room, user } => socket.emit(USER_JOINED, &Presence { room_id: room, user_id: user }),
        Event::UserLeft { room, user } => socket.emit(USER_LEFT, &Presence { room_id: room, user_id: user }),
        Event::RelayExpired { room, target, count } => {
            socket.emit(RELAY_EXPIRED, &RelayExpired { room_id: room, target_id: target, count: *count })
        }
        other => match rooms::emit_host_event(socket, other) {
            Some(sent) => sent,
            None => return Err(Undelivered::Gone),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_contract_event_is_found_by_its_wire_name_and_nothing_else() {
        for event in ClientEvent::KNOWN {
            assert_eq!(ClientEvent::from_name(event.name()), event);
        }
        assert_eq!(ClientEvent::from_name("ice-candidates"), ClientEvent::Unknown("ice-candidates".into()));
        assert_eq!(ClientEvent::from_name("Offer"), ClientEvent::Unknown("Offer".into()));
    }

    #[test]
    fn a_relayed_candidate_keeps_its_body_and_field_name() {
        let room = RoomId::parse("r").unwrap();
        let sender = UserId::parse("alice").unwrap();
        let body = json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0"});
        let relayed = Relayed { room_id: &room, sender_id: &sender, kind: SignalKind::IceCandidate, body: &body };
        assert_eq!(
            serde_json::to_value(&relayed).unwrap(),
            json!({"roomId": "r", "senderId": "alice", "candidate": body})
        );
    }

    #[test]
    fn acks_carry_only_what_applies() {
        let room = RoomId::parse("r").unwrap();
        assert_eq!(serde_json::to_value(AckOk::ok()).unwrap(), json!({"ok": true}));
        assert_eq!(serde_json::to_value(AckOk::queued()).unwrap(), json!({"ok": true, "queued": true}));
        let users = vec![UserId::parse("a").unwrap()];
        assert_eq!(
            serde_json::to_value(AckOk::joined(room, users)).unwrap(),
            json!({"ok": true, "roomId": "r", "users": ["a"]})
        );
    }
}
