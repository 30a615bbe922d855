//! The `/dashboard` namespace (seed 001): a live room directory pushed to
//! subscribers, channels whose other events are relayed among their
//! subscribers, and the host-approval ("knock") flow; the reference is
//! `docs/protocol/dashboard.md`.
//!
//! Rooms are the core's rooms (one registry): a room created here is listed
//! by `/api/rooms` and joinable from `/`, and a room made by a `join-room`
//! on `/` appears in the list here. A seat taken here (`room-created`,
//! `user-joined-room`) is held by this connection and left when it
//! disconnects; peers on `/` are not told of this namespace's joins and
//! departures (no `user-joined` / `user-left`), as before the redesign.
//! Subscriptions are core groups, so they work across instances and
//! protocols.
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

pub mod ops;
pub mod payload;
pub mod raw;
pub mod rest;
pub mod wire;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::wire::{Answer, DashEvent};
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::core::rooms::Actor;
use crate::domain::{UserId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::sio::{self, Conn, Namespace, public_id};
use crate::transport::wire::error::SignalError;

/// The namespace's path.
pub const PATH: &str = "/dashboard";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(sio::token_admission::<Dashboard>));
}

/// One directory connection: the user its token names (with `JWT_SECRET` set).
pub struct Dashboard {
    token_user: Option<UserId>,
}

impl From<&Admitted> for Dashboard {
    fn from(admitted: &Admitted) -> Self {
        Dashboard { token_user: admitted.user.clone() }
    }
}

/// Connect handler: everyone is told the new client count.
async fn connected(socket: SocketRef, State(state): State<AppState>) {
    let conn = public_id(socket.ns(), socket.id.as_str());
    info!(conn_id = %conn, "dashboard connected");
    state.core.directory().joined(&conn);
}

impl Dashboard {
    fn actor<'a>(&'a self, conn: &'a Conn<Self>) -> Actor<'a> {
        Actor { conn: conn.id(), token_user: self.token_user.as_ref(), announced: false }
    }
}

/// Any other event names a channel: it goes to that channel's other subscribers.
async fn relay(conn: &Conn<Dashboard>, name: &str, data: Option<Value>) -> Result<Answer, SignalError> {
    let unknown = || SignalError::UnknownEvent(name.chars().take(64).collect());
    match data {
        Some(Value::Object(map)) if map.contains_key("channel") => {
            ops::not_forged(name)?;
            ops::relay(&conn.core, conn.id(), name, Value::Object(map)).await
        }
        _ => Err(unknown()),
    }
}

impl Namespace for Dashboard {
    const PATH: &'static str = PATH;
    type Event = DashEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &DashEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        let (core, by) = (&conn.core, self.actor(conn));
        match event {
            DashEvent::Subscribe => ops::subscribe(core, conn.id(), payload::channel_of(data)?).await,
            DashEvent::Unsubscribe => Ok(ops::unsubscribe(core, conn.id(), payload::channel_of(data)?)),
            DashEvent::Ping => {
                let timestamp = now_ms();
                if let Some(socket) = conn.socket() {
                    let _ = socket.emit(wire::PONG, &wire::Stamped { count: None, timestamp });
                }
                Ok(Answer::pong(timestamp))
            }
            DashEvent::RoomCreated => ops::create(core, by, data).await,
            DashEvent::UserJoinedRoom => ops::join(core, by, data).await,
            DashEvent::UserLeftRoom => ops::leave(core, by, data).await,
            DashEvent::RoomListRequest => ops::list(core, conn.id()).await,
            DashEvent::JoinRequest => ops::request(core, by, data).await,
            DashEvent::Decide(approve) => ops::decide(core, by, data, *approve).await,
            DashEvent::Channel(name) => relay(conn, name, data).await,
        }
    }

    async fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) {
        let core = &conn.core;
        core.rooms().leave_all(conn.id(), false).await;
        info!(conn_id = %conn.id(), ?reason, "dashboard disconnected");
        core.directory().left(conn.id());
    }

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }
}
