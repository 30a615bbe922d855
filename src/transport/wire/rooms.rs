//! Room events that the default namespace and the directory both send, in
//! the same shape: `host-changed`, `join-request`, `join-approved` and
//! `join-rejected` (a host may be on either).

use serde::Serialize;
use socketioxide::SendError;
use socketioxide::extract::SocketRef;

use crate::core::event::Event;
use crate::domain::{RoomId, UserId};

/// Server -> client: a room's host changed.
pub const HOST_CHANGED: &str = "host-changed";
/// Server -> host: someone asks to join.
pub const JOIN_REQUEST: &str = "join-request";
/// Both ways: a join request approved.
pub const JOIN_APPROVED: &str = "join-approved";
/// Both ways: a join request rejected.
pub const JOIN_REJECTED: &str = "join-rejected";

/// `host-changed { roomId, hostId, host }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostChanged<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The new host.
    pub host_id: &'a UserId,
    /// The new host's display name.
    pub host: &'a str,
}

/// `join-request { roomId, userId, userName }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// Who asks.
    pub user_id: &'a UserId,
    /// Their display name.
    pub user_name: &'a str,
}

/// `join-approved` / `join-rejected { roomId, userId, reason? }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinDecision<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// Who asked.
    pub user_id: &'a UserId,
    /// Why it lapsed without the host (`timeout`, `room-closed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

/// The event name of a decision.
pub fn decision_event(approved: bool) -> &'static str {
    if approved { JOIN_APPROVED } else { JOIN_REJECTED }
}

/// Renders the host events (`host-changed`, `join-request`, the decisions)
/// for a socket.io client; `None` for any other event.
pub fn emit_host_event(socket: &SocketRef, event: &Event) -> Option<Result<(), SendError>> {
    Some(match event {
        Event::HostChanged { room, host_id, host } => {
            socket.emit(HOST_CHANGED, &HostChanged { room_id: room, host_id, host })
        }
        Event::JoinRequest { room, user, user_name } => {
            socket.emit(JOIN_REQUEST, &JoinRequest { room_id: room, user_id: user, user_name })
        }
        Event::JoinDecided { room, user, approved, reason } => {
            let decision = JoinDecision { room_id: room, user_id: user, reason: reason.as_deref() };
            socket.emit(decision_event(*approved), &decision)
        }
        _ => return None,
    })
}
