//! Seed 001's operations, shared by both of its transports (the socket.io
//! namespace `/dashboard` and the raw WebSocket of [`super::raw`]): each
//! parses its payload with [`super::payload`], calls the core, and returns
//! the socket.io answer (the raw protocol has no acks and drops it). One
//! directory, one set of channel subscriptions, one room registry.

use std::sync::Arc;

use serde_json::Value;
use tracing::info;

use super::payload;
use super::wire::{Answer, RESERVED};
use crate::core::Core;
use crate::core::rooms::Actor;
use crate::domain::{ConnId, Request};
use crate::transport::wire::error::SignalError;
use crate::transport::wire::payload::PayloadError;

/// `subscribe { channel }`
pub async fn subscribe(core: &Arc<Core>, conn: &ConnId, channel: String) -> Result<Answer, SignalError> {
    core.directory().subscribe(conn, &channel).await?;
    Ok(Answer::channel(channel))
}

/// `unsubscribe { channel }`
pub fn unsubscribe(core: &Arc<Core>, conn: &ConnId, channel: String) -> Answer {
    core.directory().unsubscribe(conn, &channel);
    Answer::channel(channel)
}

/// `room-created { id, hostId, ... }`: the room, its host seated on the sender.
pub async fn create(core: &Arc<Core>, by: Actor<'_>, data: Option<Value>) -> Result<Answer, SignalError> {
    let (room, meta) = payload::creation(data)?;
    core.rooms().create(by, &room, meta).await?;
    Ok(Answer::room(room, None))
}

/// `user-joined-room { roomId, userId, userName? }`
pub async fn join(core: &Arc<Core>, by: Actor<'_>, data: Option<Value>) -> Result<Answer, SignalError> {
    let (room, user, name) = payload::joiner(data)?;
    let out = core.rooms().join(by, &room, &user).await?;
    if let Some(name) = name {
        core.rooms().name(&room, &user, &name).await?;
    }
    info!(conn_id = %by.conn, room_id = %room, user_id = %user, "dashboard user joined room");
    Ok(Answer::room(room, Some(out.users)))
}

/// `user-left-room { roomId, userId? }`: the named user's seat (the
/// sender's own, or anyone's for the room's host), else the sender's own.
pub async fn leave(core: &Arc<Core>, by: Actor<'_>, data: Option<Value>) -> Result<Answer, SignalError> {
    let (room, user) = payload::leaver(data)?;
    match &user {
        Some(user) => core.rooms().remove(by, &room, user).await?,
        None => core.rooms().leave(by, &room).await?,
    }
    Ok(Answer::room(room, None))
}

/// `room-list-request`: `server-room-list` to the sender.
pub async fn list(core: &Arc<Core>, conn: &ConnId) -> Result<Answer, SignalError> {
    let (total, list) = core.directory().list("room-list-request").await?;
    let _ = core.courier.send(conn, &list).await;
    Ok(Answer::listed(total))
}

/// `join-request { roomId, userId, userName? }`: the host is asked (or the
/// sender is approved at once).
pub async fn request(core: &Arc<Core>, by: Actor<'_>, data: Option<Value>) -> Result<Answer, SignalError> {
    let (room, user, name) = payload::joiner(data)?;
    let name = name.unwrap_or_else(|| user.as_str().to_owned());
    let status = match core.rooms().request(by, &room, &user, &name).await? {
        Request::Approved => "approved",
        Request::Pending | Request::StillPending => "pending",
    };
    Ok(Answer::status(status))
}

/// `join-approved` / `join-rejected { roomId, userId }` from the host.
pub async fn decide(
    core: &Arc<Core>,
    by: Actor<'_>,
    data: Option<Value>,
    approve: bool,
) -> Result<Answer, SignalError> {
    let (room, user) = crate::transport::wire::payload::room_and_user(data)?;
    core.rooms().decide(by, &room, &user, approve).await?;
    Ok(Answer::decided(room, user))
}

/// Whether `payload` names a room that requires the host's approval: then
/// an approval message is the server's to carry, not a channel relay.
pub async fn names_approval_room(core: &Arc<Core>, payload: &Value) -> Result<bool, SignalError> {
    let Some(room) = payload::named_room(payload) else { return Ok(false) };
    let room = core.rooms().get(&room).await?;
    Ok(room.and_then(|r| r.meta).is_some_and(|m| m.requires_approval))
}

/// A client's event name for a channel relay: not one the server sends.
pub fn not_forged(name: &str) -> Result<(), SignalError> {
    if RESERVED.contains(&name) {
        return Err(PayloadError::Invalid("event", format!("{name:?} is sent by the server only")).into());
    }
    Ok(())
}

/// Any other event: `payload` (an object with a `channel`) goes, as sent,
/// to that channel's other subscribers; the sender must be subscribed.
pub async fn relay(core: &Arc<Core>, conn: &ConnId, name: &str, payload: Value) -> Result<Answer, SignalError> {
    let Value::Object(map) = &payload else { return Err(PayloadError::NotAnObject.into()) };
    let channel = payload::channel(map)?;
    core.directory().relay(conn, &channel, name.to_owned(), payload).await?;
    Ok(Answer::channel(channel))
}
