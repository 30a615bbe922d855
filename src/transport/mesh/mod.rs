//! The `/mesh` namespace (seed 000): organization mesh coordination with a
//! temporary admin elected by capability priority, over the core's mesh
//! ([`crate::core::mesh`]); the reference is `docs/protocol/mesh.md`.
//!
//! Clients identify in the handshake query (as seed 000) or auth:
//! `organizationId`, `clientId`, `clientName`, `capabilities` (comma list).
//! With `JWT_SECRET` set the client id must be the token's user, and the
//! token's `organizationId` and `capabilities` claims bound what it may join
//! and declare: both are required (a token without one is refused, the claim
//! named), unless `MESH_OPEN_WITH_JWT=true` makes them optional again.
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

pub mod wire;

use std::sync::Arc;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::wire::{Answer, MeshEvent, Welcome};
use crate::core::Core;
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::core::mesh::{Member, Recipient};
use crate::domain::mesh::{self, ClientId, Location, MeshClient, OrgId};
use crate::domain::room::MAX_NAME_CHARS;
use crate::domain::{ConnId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::{Admitted, Credential, Handshake, admit};
use crate::transport::conn::auth::TokenScope;
use crate::transport::conn::sio::{self, Abandoned, Conn, Handle, Namespace, public_id};
use crate::transport::wire::error::{Refused, SignalError};
use crate::transport::wire::payload::{PayloadError, fields};

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
    let Identity { org, id, name, capabilities } = identity(&handshake, &admitted, open).inspect_err(|why| {
        info!(conn_id = %conn, reason = %why, "mesh connection refused");
    })?;
    let now = now_ms();
    let instance = state.core.instance.to_string();
    let client = MeshClient { id, name, capabilities, joined_at: now, last_seen: now, instance, conn };
    let (member, replaced) = state.core.mesh().join(org, client).await?;
    if let Some(old) = replaced {
        sio::hand_off(&socket, old);
    }
    sio::attach(&socket, &state, admitted, MeshConn { member });
    Ok(())
}

/// Who a mesh client says it is.
struct Identity {
    org: OrgId,
    id: ClientId,
    name: String,
    capabilities: Vec<String>,
}

/// The handshake's organization and client, within the token's bounds (its
/// scope claims required unless `open`, `MESH_OPEN_WITH_JWT`).
fn identity(handshake: &Handshake<'_>, admitted: &Admitted, open: bool) -> Result<Identity, Refused> {
    let org = handshake.field("organizationId").ok_or(Refused::Missing("organizationId"))?;
    let org = OrgId::parse(&org).map_err(|e| Refused::Invalid("organizationId", e.to_string()))?;
    let id = handshake.field("clientId").ok_or(Refused::Missing("clientId"))?;
    let id = ClientId::parse(&id).map_err(|e| Refused::Invalid("clientId", e.to_string()))?;
    let capabilities = handshake.field("capabilities").unwrap_or_default();
    let capabilities =
        mesh::parse_capabilities(&capabilities).map_err(|e| Refused::Invalid("capabilities", e.to_string()))?;
    let name = handshake.field("clientName").unwrap_or_else(|| id.as_str().to_owned());
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        let rule = format!("must be at most {MAX_NAME_CHARS} characters, without control characters");
        return Err(Refused::Invalid("clientName", rule));
    }
    if let Some(user) = &admitted.user
        && user.as_str() != id.as_str()
    {
        return Err(Refused::NotTokenUser("clientId", user.as_str().to_owned()));
    }
    if let Some(TokenScope(scope)) = &admitted.scope {
        let scope = scope.clone()?;
        if let Some(claim) = scope.missing_claim().filter(|_| !open) {
            return Err(Refused::MissingClaim(claim));
        }
        if !scope.allows_organization(org.as_str()) {
            return Err(Refused::OrganizationNotAllowed(org.as_str().to_owned()));
        }
        if let Some(cap) = scope.forbidden_capability(&capabilities) {
            return Err(Refused::CapabilityNotAllowed(cap.to_owned()));
        }
    }
    Ok(Identity { org, id, name, capabilities })
}

/// Connect handler: welcome, the older connection turned out, the new list,
/// and a main admin takes the seat.
async fn connected(socket: SocketRef, State(state): State<AppState>) {
    let Some(conn) = socket.extensions.get::<Arc<Conn<MeshConn>>>() else { return };
    let member = &conn.ns.member;
    let welcome = Welcome {
        server_id: &state.core.instance,
        server_name: "switchboard",
        organization_id: &member.org,
        timestamp: now_ms(),
    };
    let _ = socket.emit(wire::WELCOME, &welcome);
    state.core.mesh().connected(member, sio::take_hand_off::<MeshClient>(&socket)).await;
}

/// `location-update { latitude, longitude, accuracy }`
fn location(data: Option<Value>) -> Result<Location, PayloadError> {
    let map = fields(data)?;
    let number =
        |f: &'static str| map.get(f).and_then(Value::as_f64).ok_or(PayloadError::Invalid(f, "must be a number".into()));
    let (latitude, longitude, accuracy) = (number("latitude")?, number("longitude")?, number("accuracy")?);
    Location::new(latitude, longitude, accuracy).map_err(|e| PayloadError::Invalid("location", e.to_string()))
}

/// `peer-message { targetId, message }`: `broadcast` or a client id.
fn peer_message(data: Option<Value>) -> Result<(Recipient, Value), PayloadError> {
    let mut map = fields(data)?;
    let to = match map.get("targetId") {
        Some(Value::String(t)) if t == "broadcast" => Recipient::Everyone,
        Some(Value::String(t)) => {
            Recipient::Client(ClientId::parse(t).map_err(|e| PayloadError::Invalid("targetId", e.to_string()))?)
        }
        None => return Err(PayloadError::Missing("targetId")),
        Some(_) => return Err(PayloadError::NotAString("targetId")),
    };
    let message = map.remove("message").ok_or(PayloadError::Missing("message"))?;
    Ok((to, message))
}

impl Namespace for MeshConn {
    const PATH: &'static str = PATH;
    type Event = MeshEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &MeshEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        let (mesh, member) = (conn.core.mesh(), &*self.member);
        mesh.seen(member);
        match event {
            MeshEvent::Heartbeat => return Ok(Answer { ok: true, timestamp: Some(mesh.heartbeat(member).await?) }),
            MeshEvent::RequestClientList => mesh.client_list(&member.org, Some(conn.id())).await,
            MeshEvent::LocationUpdate => mesh.location(member, location(data)?).await?,
            MeshEvent::PeerMessage => {
                let (to, message) = peer_message(data)?;
                mesh.message(member, to, message).await?;
            }
            MeshEvent::Unknown(name) => return Err(SignalError::UnknownEvent(name.clone())),
        }
        Ok(Answer { ok: true, timestamp: None })
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
