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

pub mod payload;
pub mod rest;
pub mod wire;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::wire::{Answer, DashEvent, RESERVED};
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::core::rooms::Actor;
use crate::domain::{Request, UserId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::sio::{self, Conn, Namespace, public_id};
use crate::transport::wire::error::SignalError;
use crate::transport::wire::payload::PayloadError;

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

    /// Any other event names a channel: it goes to that channel's other subscribers.
    async fn relay(&self, conn: &Conn<Self>, name: &str, data: Option<Value>) -> Result<Answer, SignalError> {
        let unknown = || SignalError::UnknownEvent(name.chars().take(64).collect());
        let Some(Value::Object(map)) = &data else { return Err(unknown()) };
        if RESERVED.contains(&name) {
            return Err(PayloadError::Invalid("event", format!("{name:?} is sent by the server only")).into());
        }
        let channel = payload::channel(map).map_err(|_| unknown())?;
        let payload = data.unwrap_or_default();
        conn.core.directory().relay(conn.id(), &channel, name.to_owned(), payload).await?;
        Ok(Answer::channel(channel))
    }
}

impl Namespace for Dashboard {
    const PATH: &'static str = PATH;
    type Event = DashEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &DashEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        let (core, by) = (&conn.core, self.actor(conn));
        match event {
            DashEvent::Subscribe => {
                let channel = payload::channel_of(data)?;
                core.directory().subscribe(conn.id(), &channel).await?;
                Ok(Answer::channel(channel))
            }
            DashEvent::Unsubscribe => {
                let channel = payload::channel_of(data)?;
                core.directory().unsubscribe(conn.id(), &channel);
                Ok(Answer::channel(channel))
            }
            DashEvent::Ping => {
                let timestamp = now_ms();
                if let Some(socket) = conn.socket() {
                    let _ = socket.emit(wire::PONG, &wire::Stamped { count: None, timestamp });
                }
                Ok(Answer::pong(timestamp))
            }
            DashEvent::RoomCreated => {
                let (room, meta) = payload::creation(data)?;
                core.rooms().create(by, &room, meta).await?;
                Ok(Answer::room(room, None))
            }
            DashEvent::UserJoinedRoom => {
                let (room, user, name) = payload::joiner(data)?;
                let out = core.rooms().join(by, &room, &user).await?;
                if let Some(name) = name {
                    core.rooms().name(&room, &user, &name).await?;
                }
                info!(conn_id = %conn.id(), room_id = %room, user_id = %user, "dashboard user joined room");
                Ok(Answer::room(room, Some(out.users)))
            }
            DashEvent::UserLeftRoom => {
                let room = payload::room_id(data)?;
                core.rooms().leave(by, &room).await?;
                Ok(Answer::room(room, None))
            }
            DashEvent::RoomListRequest => {
                let (total, list) = core.directory().list("room-list-request").await?;
                let _ = core.courier.send(conn.id(), &list).await;
                Ok(Answer::listed(total))
            }
            DashEvent::JoinRequest => {
                let (room, user, name) = payload::joiner(data)?;
                let name = name.unwrap_or_else(|| user.as_str().to_owned());
                let status = match core.rooms().request(by, &room, &user, &name).await? {
                    Request::Approved => "approved",
                    Request::Pending | Request::StillPending => "pending",
                };
                Ok(Answer::status(status))
            }
            DashEvent::Decide(approve) => {
                let (room, user) = crate::transport::wire::payload::room_and_user(data)?;
                core.rooms().decide(by, &room, &user, *approve).await?;
                Ok(Answer::decided(room, user))
            }
            DashEvent::Channel(name) => self.relay(conn, name, data).await,
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
