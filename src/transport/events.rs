//! Event names (each exists once, here) and the shapes of server-sent payloads.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::domain::{RoomId, UserId};

/// Client -> server: join a room.
pub const JOIN_ROOM: &str = "join-room";
/// Client -> server: leave a room.
pub const LEAVE_ROOM: &str = "leave-room";
/// Both ways: a WebRTC offer.
pub const OFFER: &str = "offer";
/// Both ways: a WebRTC answer.
pub const ANSWER: &str = "answer";
/// Both ways: an ICE candidate.
pub const ICE_CANDIDATE: &str = "ice-candidate";
/// Server -> client: someone joined a room you are in.
pub const USER_JOINED: &str = "user-joined";
/// Server -> client: someone left a room you are in (or disconnected).
pub const USER_LEFT: &str = "user-left";
/// Server -> client: the participants, sent to a joiner.
pub const ROOM_USERS: &str = "room-users";
/// Server -> client, on connect: `{ iceServers, ttlSeconds }` for RTCPeerConnection.
pub const ICE_SERVERS: &str = "ice-servers";
/// Server -> client: a failed event that carried no ack callback.
pub const SIGNALING_ERROR: &str = "signaling-error";

/// The three relayed WebRTC messages; they share one relay path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    /// `offer`, body field `offer`.
    Offer,
    /// `answer`, body field `answer`.
    Answer,
    /// `ice-candidate`, body field `candidate` (may be `null`).
    IceCandidate,
}

impl RelayKind {
    /// The event name, inbound and relayed.
    pub fn event(self) -> &'static str {
        match self {
            RelayKind::Offer => OFFER,
            RelayKind::Answer => ANSWER,
            RelayKind::IceCandidate => ICE_CANDIDATE,
        }
    }

    /// The payload field that carries the body relayed as sent.
    pub fn body_field(self) -> &'static str {
        match self {
            RelayKind::Offer => "offer",
            RelayKind::Answer => "answer",
            RelayKind::IceCandidate => "candidate",
        }
    }

    /// `candidate: null` is the browser's end-of-candidates signal; other bodies need a value.
    pub fn body_may_be_null(self) -> bool {
        self == RelayKind::IceCandidate
    }
}

/// The client events of the default namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `join-room`
    JoinRoom,
    /// `leave-room`
    LeaveRoom,
    /// `offer`, `answer` or `ice-candidate`
    Relay(RelayKind),
    /// `join-approved` / `join-rejected` (a host's answer to a `/dashboard`
    /// join request; true for approved). Beyond contract v1: for a host on `/`.
    Decide(bool),
}

impl ClientEvent {
    /// Every client event, for registering handlers.
    pub const ALL: [ClientEvent; 7] = [
        ClientEvent::JoinRoom,
        ClientEvent::LeaveRoom,
        ClientEvent::Relay(RelayKind::Offer),
        ClientEvent::Relay(RelayKind::Answer),
        ClientEvent::Relay(RelayKind::IceCandidate),
        ClientEvent::Decide(true),
        ClientEvent::Decide(false),
    ];

    /// The event of a wire name, if the contract lists it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.name() == name)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            ClientEvent::JoinRoom => JOIN_ROOM,
            ClientEvent::LeaveRoom => LEAVE_ROOM,
            ClientEvent::Relay(kind) => kind.event(),
            ClientEvent::Decide(true) => "join-approved",
            ClientEvent::Decide(false) => "join-rejected",
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

/// A relayed message: `{ roomId, senderId, <offer|answer|candidate> }`.
pub struct Relayed<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The sender's user id in the room.
    pub sender_id: &'a UserId,
    /// Which message, naming the body field.
    pub kind: RelayKind,
    /// The body exactly as the sender sent it.
    pub body: &'a Value,
}

impl Serialize for Relayed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("roomId", self.room_id)?;
        map.serialize_entry("senderId", self.sender_id)?;
        map.serialize_entry(self.kind.body_field(), self.body)?;
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

    /// `{ ok: true, roomId, users }`
    pub fn joined(room_id: RoomId, users: Vec<UserId>) -> Self {
        Self { users: Some(users), ..Self::room(room_id) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_contract_event_is_found_by_its_wire_name_and_nothing_else() {
        for event in ClientEvent::ALL {
            assert_eq!(ClientEvent::from_name(event.name()), Some(event));
        }
        assert_eq!(ClientEvent::from_name("ice-candidates"), None);
        assert_eq!(ClientEvent::from_name("Offer"), None);
    }

    #[test]
    fn a_relayed_candidate_keeps_its_body_and_field_name() {
        let room = RoomId::parse("r").unwrap();
        let sender = UserId::parse("alice").unwrap();
        let body = json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0"});
        let relayed = Relayed { room_id: &room, sender_id: &sender, kind: RelayKind::IceCandidate, body: &body };
        assert_eq!(
            serde_json::to_value(&relayed).unwrap(),
            json!({"roomId": "r", "senderId": "alice", "candidate": body})
        );
    }

    #[test]
    fn acks_carry_only_what_applies() {
        let room = RoomId::parse("r").unwrap();
        assert_eq!(serde_json::to_value(AckOk::ok()).unwrap(), json!({"ok": true}));
        let users = vec![UserId::parse("a").unwrap()];
        assert_eq!(
            serde_json::to_value(AckOk::joined(room, users)).unwrap(),
            json!({"ok": true, "roomId": "r", "users": ["a"]})
        );
    }
}
