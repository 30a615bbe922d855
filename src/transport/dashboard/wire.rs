//! The directory namespace's wire (seed 001): event names, the answers, and
//! how each core event is rendered ([`emit`]). The reference is
//! `docs/protocol/dashboard.md`.

use serde::Serialize;
use socketioxide::extract::SocketRef;

use crate::core::directory::ROOMS_CHANNEL;
use crate::core::event::{Event, RoomView};
use crate::core::link::Undelivered;
use crate::domain::{RoomId, UserId};
use crate::transport::conn::sio::{WireName, delivered};
use crate::transport::wire::rooms;

/// Client -> server: subscribe to a channel.
pub const SUBSCRIBE: &str = "subscribe";
/// Client -> server: end a subscription.
pub const UNSUBSCRIBE: &str = "unsubscribe";
/// Client -> server: `pong` comes back.
pub const PING: &str = "ping";
/// Server -> client: the answer to `ping`.
pub const PONG: &str = "pong";
/// Client -> server: create a room with metadata, seated as its host.
pub const ROOM_CREATED: &str = "room-created";
/// Client -> server: join a room.
pub const USER_JOINED_ROOM: &str = "user-joined-room";
/// Client -> server: leave a room.
pub const USER_LEFT_ROOM: &str = "user-left-room";
/// Client -> server: the room list, now.
pub const ROOM_LIST_REQUEST: &str = "room-list-request";
/// Server -> client: the room list.
pub const SERVER_ROOM_LIST: &str = "server-room-list";
/// Server -> client: how many directory clients are connected.
pub const CLIENT_COUNT: &str = "client_count";
/// The raw protocol's error frame (not in seed 001).
pub const ERROR: &str = "error";
/// Seed 001's channel of join requests and their answers.
pub const ACCESS_CHANNEL: &str = "webrtc-dashboard-access";
/// Event names only the server sends: a relay may not forge them.
pub const RESERVED: [&str; 13] = [
    ERROR,
    SERVER_ROOM_LIST,
    CLIENT_COUNT,
    PONG,
    rooms::JOIN_REQUEST,
    rooms::JOIN_APPROVED,
    rooms::JOIN_REJECTED,
    rooms::HOST_CHANGED,
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    crate::transport::conn::sio::SIGNALING_ERROR,
];

/// The client events of the directory namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashEvent {
    /// `subscribe { channel }`
    Subscribe,
    /// `unsubscribe { channel }`
    Unsubscribe,
    /// `ping`
    Ping,
    /// `room-created { id, hostId, name?, description?, host?, requiresApproval? }`
    RoomCreated,
    /// `user-joined-room { roomId, userId, userName? }`
    UserJoinedRoom,
    /// `user-left-room { roomId }`
    UserLeftRoom,
    /// `room-list-request`
    RoomListRequest,
    /// `join-request { roomId, userId, userName? }`
    JoinRequest,
    /// `join-approved` / `join-rejected { roomId, userId }` (true: approved)
    Decide(bool),
    /// Any other name: an event for a channel's subscribers.
    Channel(String),
}

impl WireName for DashEvent {
    fn from_name(name: &str) -> Self {
        match name {
            SUBSCRIBE => Self::Subscribe,
            UNSUBSCRIBE => Self::Unsubscribe,
            PING => Self::Ping,
            ROOM_CREATED => Self::RoomCreated,
            USER_JOINED_ROOM => Self::UserJoinedRoom,
            USER_LEFT_ROOM => Self::UserLeftRoom,
            ROOM_LIST_REQUEST => Self::RoomListRequest,
            rooms::JOIN_REQUEST => Self::JoinRequest,
            rooms::JOIN_APPROVED => Self::Decide(true),
            rooms::JOIN_REJECTED => Self::Decide(false),
            other => Self::Channel(other.to_owned()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Subscribe => SUBSCRIBE,
            Self::Unsubscribe => UNSUBSCRIBE,
            Self::Ping => PING,
            Self::RoomCreated => ROOM_CREATED,
            Self::UserJoinedRoom => USER_JOINED_ROOM,
            Self::UserLeftRoom => USER_LEFT_ROOM,
            Self::RoomListRequest => ROOM_LIST_REQUEST,
            Self::JoinRequest => rooms::JOIN_REQUEST,
            Self::Decide(approved) => rooms::decision_event(*approved),
            Self::Channel(name) => name,
        }
    }
}

/// A successful answer: `{ ok: true }` and the fields of the event.
#[derive(Serialize, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_id: Option<RoomId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<UserId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

impl Answer {
    fn ok() -> Self {
        Self { ok: true, ..Self::default() }
    }

    /// `{ ok, channel }`
    pub fn channel(channel: String) -> Self {
        Self { channel: Some(channel), ..Self::ok() }
    }

    /// `{ ok, timestamp }`
    pub fn pong(timestamp: u64) -> Self {
        Self { timestamp: Some(timestamp), ..Self::ok() }
    }

    /// `{ ok, roomId }`, with `users` when given.
    pub fn room(room: RoomId, users: Option<Vec<UserId>>) -> Self {
        Self { room_id: Some(room), users, ..Self::ok() }
    }

    /// `{ ok, roomId, userId }`
    pub fn decided(room: RoomId, user: UserId) -> Self {
        Self { room_id: Some(room), user_id: Some(user), ..Self::ok() }
    }

    /// `{ ok, total }`
    pub fn listed(total: usize) -> Self {
        Self { total: Some(total), ..Self::ok() }
    }

    /// `{ ok, status }`: `approved` or `pending`.
    pub fn status(status: &'static str) -> Self {
        Self { status: Some(status), ..Self::ok() }
    }
}

/// `server-room-list { channel, rooms, timestamp }`
#[derive(Serialize)]
pub struct RoomList<'a> {
    /// Always the rooms channel.
    pub channel: &'a str,
    /// The rooms.
    pub rooms: &'a [RoomView],
    /// When it was made, Unix milliseconds.
    pub timestamp: u64,
}

/// `client_count { count, timestamp }` and `pong { timestamp }`.
#[derive(Serialize)]
pub struct Stamped {
    /// The count, for `client_count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Unix milliseconds.
    pub timestamp: u64,
}

/// Renders a core event for a directory client.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    delivered(match event {
        Event::RoomList { rooms, timestamp } => {
            socket.emit(SERVER_ROOM_LIST, &RoomList { channel: ROOMS_CHANNEL, rooms, timestamp: *timestamp })
        }
        Event::ClientCount { count, timestamp } => {
            socket.emit(CLIENT_COUNT, &Stamped { count: Some(*count), timestamp: *timestamp })
        }
        Event::ChannelMessage { event, payload } => socket.emit(event.as_str(), payload),
        other => match rooms::emit_host_event(socket, other) {
            Some(sent) => sent,
            None => return Err(Undelivered::Gone),
        },
    })
}
