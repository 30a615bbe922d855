//! Seed 001's own wire protocol over a raw WebSocket, at `/` (an upgrade
//! without `organizationId`; with one it is seed 000's) and at
//! `/dashboard/ws`; the reference is `docs/protocol/seed-001.md`.
//!
//! Frames are JSON text `{type, channel, data}` both ways, as seed 001's
//! tables have them. Every operation is the `/dashboard` namespace's
//! ([`super::ops`]): one directory, one set of channel subscriptions (core
//! groups), one room registry, so a raw client and a socket.io client meet,
//! on one instance or across a cluster. A relay carries the original
//! message; a socket.io event relayed to a raw client arrives as its payload
//! with `type` set to the event's name.
//!
//! Approval messages (`join-request`, `join-approved`, `join-rejected`) are
//! relays among the channel's subscribers, as in seed 001, unless they name
//! a room that requires approval: then the server carries them (the host
//! is asked, the joiner told, the join then allowed) and they are not
//! relayed, so nobody gets one twice. A refused frame gets
//! `{type: "error", data: {code, message, event?}}`; the connection stays.

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::wire::{self, ACCESS_CHANNEL, DashEvent, RoomList, Stamped};
use super::{ops, payload};
use crate::core::directory::ROOMS_CHANNEL;
use crate::core::event::Event;
use crate::core::rooms::Actor;
use crate::domain::{ConnId, UserId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::raw::{self, Data, Protocol, RawConn, Typed, Work};
use crate::transport::conn::sio::WireName;
use crate::transport::wire::error::{Refused, SignalError};
use crate::transport::wire::payload::{PayloadError, text};
use crate::transport::wire::rooms::{self, HostChanged, JoinDecision, JoinRequest};

/// The endpoint of the dashboard feature.
pub const PATH: &str = "/dashboard/ws";
/// Longest `type`.
const MAX_TYPE_CHARS: usize = 64;

/// The route of the upgrade, `/dashboard/ws`.
pub fn routes(_: &AppState) -> axum::Router<AppState> {
    axum::Router::new().route(PATH, axum::routing::get(ws))
}

/// `GET /dashboard/ws`: the WebSocket upgrade.
pub async fn ws(State(state): State<AppState>, request: Request) -> Response {
    raw::upgrade::<DashSocket>(&state, request, Ok(()))
}

/// An upgrade at `/` that seed 001 answers.
pub fn at_root(state: &AppState, request: Request) -> Response {
    raw::upgrade::<DashSocket>(state, request, Ok(()))
}

/// Every upgrade at `/` that an earlier entry (seed 000, with
/// `organizationId`) did not claim is seed 001's.
pub fn claims(_query: Option<&str>) -> bool {
    true
}

/// One seed-001 connection: the user its token names (with `JWT_SECRET` set).
pub struct DashSocket {
    token_user: Option<UserId>,
}

/// `{channel, data}`
#[derive(Serialize)]
struct Channeled<'a, T: Serialize> {
    channel: &'a str,
    data: T,
}

/// `{code, message, event?}`, the data of an error frame.
#[derive(Serialize)]
struct Refusal<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
}

fn error_frame<'a>(e: &SignalError, event: Option<&'a str>) -> Typed<'a, Data<Refusal<'a>>> {
    let data = Refusal { code: e.code(), message: e.to_string(), event };
    Typed { kind: wire::ERROR, body: Data { data } }
}

/// `{type, channel: "webrtc-dashboard-access", data}`
fn access<T: Serialize>(kind: &str, data: T) -> serde_json::Result<String> {
    serde_json::to_string(&Typed { kind, body: Channeled { channel: ACCESS_CHANNEL, data } })
}

impl Protocol for DashSocket {
    const NAME: &'static str = "seed-001";
    type Ask = ();

    async fn open(_: &AppState, admitted: &Admitted, _: (), _: &ConnId) -> Result<Self, Refused> {
        Ok(Self { token_user: admitted.user.clone() })
    }

    fn start(conn: &std::sync::Arc<RawConn<Self>>) -> Option<Work> {
        info!(conn_id = %conn.id(), "dashboard connected (raw)");
        conn.core.directory().joined(conn.id());
        None
    }

    async fn handle(&self, conn: &RawConn<Self>, frame: &str) {
        let outcome = match parse(frame) {
            Ok((kind, frame)) => self.dispatch(conn, &kind, frame).await.map_err(|e| (e, Some(kind))),
            Err(e) => Err((e.into(), None)),
        };
        if let Err((e, kind)) = outcome {
            let _ = conn.send(&error_frame(&e, kind.as_deref()));
        }
    }

    fn refused(&self, conn: &RawConn<Self>, why: &SignalError) {
        let _ = conn.send(&error_frame(why, None));
    }

    async fn closed(&self, conn: &RawConn<Self>) {
        let core = &conn.core;
        core.rooms().leave_all(conn.id(), false).await;
        info!(conn_id = %conn.id(), "dashboard disconnected (raw)");
        core.directory().left(conn.id());
    }

    fn render(event: &Event) -> Option<String> {
        match event {
            Event::RoomList { rooms, timestamp } => {
                let body = RoomList { channel: ROOMS_CHANNEL, rooms, timestamp: *timestamp };
                serde_json::to_string(&Typed { kind: wire::SERVER_ROOM_LIST, body })
            }
            Event::ClientCount { count, timestamp } => {
                let body = Stamped { count: Some(*count), timestamp: *timestamp };
                serde_json::to_string(&Typed { kind: wire::CLIENT_COUNT, body })
            }
            Event::ChannelMessage { event, payload } => relayed(event, payload),
            Event::JoinRequest { room, user, user_name } => {
                access(rooms::JOIN_REQUEST, JoinRequest { room_id: room, user_id: user, user_name })
            }
            Event::JoinDecided { room, user, approved, reason } => {
                let data = JoinDecision { room_id: room, user_id: user, reason: reason.as_deref() };
                access(rooms::decision_event(*approved), data)
            }
            Event::HostChanged { room, host_id, host } => {
                let data = HostChanged { room_id: room, host_id, host };
                let body = Channeled { channel: ROOMS_CHANNEL, data };
                serde_json::to_string(&Typed { kind: rooms::HOST_CHANGED, body })
            }
            _ => return None,
        }
        .ok()
    }
}

impl DashSocket {
    /// One frame of type `kind`, through the operations `/dashboard` uses.
    async fn dispatch(&self, conn: &RawConn<Self>, kind: &str, frame: Value) -> Result<(), SignalError> {
        let (core, id) = (&conn.core, conn.id());
        let by = Actor { conn: id, token_user: self.token_user.as_ref(), announced: false };
        let event = DashEvent::from_name(kind);
        let approval = matches!(event, DashEvent::JoinRequest | DashEvent::Decide(_));
        let mediated = approval && ops::names_approval_room(core, &frame).await?;
        let done = match event {
            DashEvent::Subscribe => ops::subscribe(core, id, channel(&frame)?).await?,
            DashEvent::Unsubscribe => ops::unsubscribe(core, id, channel(&frame)?),
            DashEvent::Ping => {
                let _ = conn.send(&Typed { kind: wire::PONG, body: Stamped { count: None, timestamp: now_ms() } });
                return Ok(());
            }
            DashEvent::RoomCreated => ops::create(core, by, Some(frame)).await?,
            DashEvent::UserJoinedRoom => ops::join(core, by, Some(frame)).await?,
            DashEvent::UserLeftRoom => ops::leave(core, by, Some(frame)).await?,
            DashEvent::RoomListRequest => ops::list(core, id).await?,
            DashEvent::JoinRequest if mediated => ops::request(core, by, Some(frame)).await?,
            DashEvent::Decide(approve) if mediated => ops::decide(core, by, Some(frame), approve).await?,
            // Seed 001's approval messages among a channel's subscribers.
            DashEvent::JoinRequest | DashEvent::Decide(_) => ops::relay(core, id, kind, frame).await?,
            DashEvent::Channel(_) => {
                ops::not_forged(kind)?;
                ops::relay(core, id, kind, frame).await?
            }
        };
        drop(done);
        Ok(())
    }
}

/// A client frame: a JSON object with a `type`.
fn parse(frame: &str) -> Result<(String, Value), PayloadError> {
    let value: Value = serde_json::from_str(frame).map_err(|_| PayloadError::NotJson)?;
    let Value::Object(map) = &value else { return Err(PayloadError::NotAnObject) };
    match text(map, "type", MAX_TYPE_CHARS)? {
        Some(kind) if !kind.is_empty() => Ok((kind, value)),
        Some(_) => Err(PayloadError::Invalid("type", "must not be empty".into())),
        None => Err(PayloadError::Missing("type")),
    }
}

/// The frame's top-level `channel`, as seed 001's `subscribe` has it.
fn channel(frame: &Value) -> Result<String, PayloadError> {
    payload::channel(frame.as_object().ok_or(PayloadError::NotAnObject)?)
}

/// A relayed event as a raw frame: the original message, its `type` the
/// event's name (a socket.io sender's payload gets one); a payload that is
/// not an object comes as `data`. Rendered for every recipient, so the
/// payload is copied only when its `type` must change.
fn relayed(event: &str, payload: &Value) -> serde_json::Result<String> {
    match payload {
        // A raw sender's frame: sent on as it came.
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some(event) => serde_json::to_string(payload),
        // A socket.io sender's payload: its fields after the event's name.
        Value::Object(map) if !map.contains_key("type") => serde_json::to_string(&Typed { kind: event, body: map }),
        Value::Object(map) => {
            let mut frame = map.clone();
            frame.insert("type".into(), Value::String(event.to_owned()));
            serde_json::to_string(&frame)
        }
        other => serde_json::to_string(&Typed { kind: event, body: Data { data: other } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_relay_is_the_original_message_with_the_event_s_name_as_its_type() {
        let frame =
            |event: &str, payload: Value| serde_json::from_str::<Value>(&relayed(event, &payload).unwrap()).unwrap();
        let raw = json!({"type": "webrtc-offer", "channel": "c", "data": {"sdp": "v=0"}});
        assert_eq!(frame("webrtc-offer", raw.clone()), raw, "a raw sender's frame, as sent");
        let sio = json!({"channel": "c", "data": 1});
        assert_eq!(frame("note", sio), json!({"type": "note", "channel": "c", "data": 1}));
        assert_eq!(frame("note", json!({"type": "other", "channel": "c"})), json!({"type": "note", "channel": "c"}));
        assert_eq!(frame("note", json!([1, 2])), json!({"type": "note", "data": [1, 2]}));
    }
}
