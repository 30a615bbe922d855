//! The default namespace `/`: rooms signaling as contract v1 describes it
//! (`docs/protocol/rooms.md`), over the core's rooms. Its REST routes
//! (`/api/rooms`, `/api/ice-servers`) are in [`rest`].
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

pub mod payload;
pub mod rest;
pub mod wire;

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::{info, warn};

use self::wire::{AckOk, ClientEvent};
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::core::rooms::{Actor, Relayed};
use crate::domain::UserId;
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::admission::Handshake;
use crate::transport::conn::sio::{self, Conn, Namespace, public_id};
use crate::transport::wire::error::SignalError;

/// The namespace's path.
pub const PATH: &str = "/";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(sio::token_admission::<Rooms>));
}

/// One connection's state: the user its token names (with `JWT_SECRET` set).
pub struct Rooms {
    token_user: Option<UserId>,
}

impl From<&Admitted> for Rooms {
    fn from(admitted: &Admitted) -> Self {
        Rooms { token_user: admitted.user.clone() }
    }
}

/// Connect handler (after the ack): logs the connection and sends it the
/// ICE servers. The TURN username names the token's `sub` with `JWT_SECRET`
/// set; otherwise the user from the handshake (`auth.userId`, or a `userId`
/// query parameter) when there is one.
async fn connected(socket: SocketRef, State(state): State<AppState>, TryData(auth): TryData<Value>) {
    let (transport, conn_id) = (socket.transport_type(), public_id(socket.ns(), socket.id.as_str()));
    info!(%conn_id, ?transport, protocol = ?socket.protocol(), "connected");
    let user = match &state.config.jwt {
        // A client-supplied userId must not get credentials in another user's name.
        Some(_) => socket.extensions.get::<Arc<Conn<Rooms>>>().and_then(|c| c.ns.token_user.clone()),
        None => handshake_user(&socket, auth.ok()),
    };
    let servers = state.config.ice.servers_for(user.as_ref(), SystemTime::now());
    if let Err(err) = socket.emit(wire::ICE_SERVERS, &servers) {
        warn!(%conn_id, %err, "ice-servers not delivered");
    }
}

fn handshake_user(socket: &SocketRef, auth: Option<Value>) -> Option<UserId> {
    let handshake = Handshake { parts: socket.req_parts(), auth: auth.as_ref() };
    handshake.field("userId").and_then(|raw| UserId::parse(&raw).ok())
}

/// Whether a connection closed without meaning to (its transport closed or
/// failed, or it stopped answering pings): its seats are then held for the
/// grace. A DISCONNECT packet, a kick or a shutdown is a departure.
fn abrupt(reason: DisconnectReason) -> bool {
    use DisconnectReason::*;
    matches!(reason, TransportClose | TransportError | HeartbeatTimeout | MultipleHttpPollingError | PacketParsingError)
}

impl Rooms {
    fn actor<'a>(&'a self, conn: &'a Conn<Self>) -> Actor<'a> {
        Actor { conn: conn.id(), token_user: self.token_user.as_ref(), announced: true }
    }
}

impl Namespace for Rooms {
    const PATH: &'static str = PATH;
    type Event = ClientEvent;
    type Answer = AckOk;

    async fn handle(&self, conn: &Conn<Self>, event: &ClientEvent, data: Option<Value>) -> Result<AckOk, SignalError> {
        let rooms = conn.core.rooms();
        let by = self.actor(conn);
        match event {
            ClientEvent::JoinRoom => {
                let req = payload::join(data)?;
                let out = rooms.join(by, &req.room, &req.user).await?;
                Ok(AckOk::joined(req.room, out.users))
            }
            ClientEvent::LeaveRoom => {
                let req = payload::leave(data)?;
                rooms.leave(by, &req.room).await?;
                Ok(AckOk::room(req.room))
            }
            ClientEvent::Relay(kind) => {
                let req = payload::relay(*kind, data)?;
                match rooms.relay(by, &req.room, &req.target, *kind, req.body).await? {
                    Relayed::Delivered => Ok(AckOk::ok()),
                    Relayed::Kept => Ok(AckOk::queued()),
                }
            }
            ClientEvent::Decide(approve) => {
                let (room, user) = crate::transport::wire::payload::room_and_user(data)?;
                rooms.decide(by, &room, &user, *approve).await?;
                Ok(AckOk::ok())
            }
            ClientEvent::Unknown(name) => Err(SignalError::UnknownEvent(name.clone())),
        }
    }

    fn closing(&self, conn: &Conn<Self>, _reason: DisconnectReason) {
        conn.core.rooms().closing(conn.id());
    }

    async fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) {
        if abrupt(reason) {
            conn.core.rooms().hold_all(conn.id()).await;
        } else {
            conn.core.rooms().left_on_purpose(conn.id()).await;
        }
        info!(conn_id = %conn.id(), ?reason, "disconnected");
    }

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }
}
