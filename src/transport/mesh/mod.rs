//! The `/mesh` namespace (seed 000): organization mesh coordination with a
//! temporary admin elected by capability priority, over the core's mesh
//! ([`crate::core::mesh`]); the reference is `docs/protocol/mesh.md`. Seed
//! 000's own raw WebSocket at `/` is [`raw`]; both transports share the
//! identity rule ([`identity`]), the payload parsing ([`payload`]), the
//! event shapes ([`wire`]) and the operations ([`act`]).
//!
//! Clients identify in the handshake query (as seed 000) or auth:
//! `organizationId`, `clientId`, `clientName`, `capabilities` (comma list),
//! within the token's bounds with `JWT_SECRET` set ([`identity`]).
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

pub mod identity;
pub mod payload;
pub mod raw;
pub mod wire;

use std::sync::Arc;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::identity::Identity;
use self::wire::{Answer, MeshEvent};
use crate::core::Core;
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::core::mesh::Member;
use crate::domain::ConnId;
use crate::domain::mesh::MeshClient;
use crate::state::AppState;
use crate::transport::conn::admission::{Credential, Handshake, admit};
use crate::transport::conn::sio::{self, Abandoned, Conn, Handle, Namespace, public_id};
use crate::transport::wire::error::{Refused, SignalError};

/// The namespace's path.
pub const PATH: &str = "/mesh";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(admission));
}

/// One mesh connection: its member record.
pub struct MeshConn {
    member: Arc<Member>,
}

/// Connect middleware: admission, the client's identity, then it joins its organization.
async fn admission(
    Handle(socket): Handle,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let auth = auth.ok();
    let handshake = Handshake { parts: socket.req_parts(), auth: auth.as_ref() };
    let admitted = admit(&state, &handshake, Credential::Token)?;
    let open = state.config.mesh.open_with_jwt;
    let conn = public_id(socket.ns(), socket.id.as_str());
    let field = |name: &str| handshake.field(name);
    let identity = Identity::read(field, &admitted, open).inspect_err(|why| {
        info!(conn_id = %conn, reason = %why, "mesh connection refused");
    })?;
    let (member, replaced) = identity.join(&state, conn).await?;
    if let Some(old) = replaced {
        sio::hand_off(&socket, old);
    }
    sio::attach(&socket, &state, admitted, MeshConn { member });
    Ok(())
}

/// Connect handler: welcome, the older connection turned out, the new list,
/// and a main admin takes the seat.
async fn connected(socket: SocketRef, State(state): State<AppState>) {
    let Some(conn) = socket.extensions.get::<Arc<Conn<MeshConn>>>() else { return };
    let member = &conn.ns.member;
    let welcome = wire::welcome(&state.core.instance, &member.org);
    let _ = socket.emit(wire::WELCOME, &welcome);
    state.core.mesh().connected(member, sio::take_hand_off::<MeshClient>(&socket)).await;
}

/// One client event, whichever transport: the core operation it asks for
/// (the server's time for `heartbeat`).
async fn act(
    core: &Arc<Core>,
    member: &Member,
    event: &MeshEvent,
    data: Option<Value>,
) -> Result<Option<u64>, SignalError> {
    let mesh = core.mesh();
    mesh.seen(member);
    match event {
        MeshEvent::Heartbeat => return Ok(Some(mesh.heartbeat(member).await?)),
        MeshEvent::RequestClientList => mesh.client_list(&member.org, Some(member.conn())).await,
        MeshEvent::LocationUpdate => mesh.location(member, payload::location(data)?).await?,
        MeshEvent::PeerMessage => {
            let (to, message) = payload::peer_message(data)?;
            mesh.message(member, to, message).await?;
        }
        MeshEvent::Unknown(name) => return Err(SignalError::UnknownEvent(name.clone())),
    }
    Ok(None)
}

impl Namespace for MeshConn {
    const PATH: &'static str = PATH;
    type Event = MeshEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &MeshEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        let timestamp = act(&conn.core, &self.member, event, data).await?;
        Ok(Answer { ok: true, timestamp })
    }

    async fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) {
        let member = &self.member;
        conn.core.mesh().leave(member).await;
        info!(conn_id = %conn.id(), org_id = %member.org, client_id = %member.client.id, ?reason, "mesh client disconnected");
    }

    fn abandoned(&self, _: &ConnId, core: &Arc<Core>) -> Option<Abandoned> {
        let (core, member) = (core.clone(), self.member.clone());
        Some(Box::pin(async move { core.mesh().leave(&member).await }))
    }

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }
}
