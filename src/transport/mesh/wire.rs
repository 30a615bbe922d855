//! Seed 000's wire, for both transports: event names, the shapes the
//! server sends ([`shape`]: a core event's name and fields), and their
//! socket.io rendering on `/mesh` ([`emit`]; the raw frames are `raw.rs`'s).
//! The references are `docs/protocol/mesh.md` and `docs/protocol/seed-000.md`.

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::core::event::{ClientView, Event};
use crate::core::link::Undelivered;
use crate::domain::mesh::{ClientId, OrgId};
use crate::domain::now_ms;
use crate::transport::conn::sio::{WireName, delivered};

/// Server -> client, on connect.
pub const WELCOME: &str = "welcome";
/// Both ways: a client is alive (the server answers with its time).
pub const HEARTBEAT: &str = "heartbeat";
/// Client -> server: the client list, now.
pub const REQUEST_CLIENT_LIST: &str = "request-client-list";
/// Both ways: where a client is.
pub const LOCATION_UPDATE: &str = "location-update";
/// Both ways: a message to one client or everyone.
pub const PEER_MESSAGE: &str = "peer-message";
/// Server -> client: the organization's clients.
pub const CLIENT_LIST_UPDATE: &str = "client-list-update";
/// Server -> client: the admin is alive.
pub const ADMIN_HEARTBEAT: &str = "admin-heartbeat";
/// Server -> client: a new admin.
pub const ADMIN_ELECTED: &str = "admin-elected";
/// Server -> client: a temporary admin stepped down.
pub const ADMIN_STEPPED_DOWN: &str = "admin-stepped-down";
/// Server -> client: the instance holding the connection is alive.
pub const SERVER_HEARTBEAT: &str = "server-heartbeat";

/// The client events of `/mesh`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshEvent {
    /// `heartbeat`
    Heartbeat,
    /// `request-client-list`
    RequestClientList,
    /// `location-update { latitude, longitude, accuracy }`
    LocationUpdate,
    /// `peer-message { targetId, message }`
    PeerMessage,
    /// Any other name.
    Unknown(String),
}

impl WireName for MeshEvent {
    fn from_name(name: &str) -> Self {
        match name {
            HEARTBEAT => Self::Heartbeat,
            REQUEST_CLIENT_LIST => Self::RequestClientList,
            LOCATION_UPDATE => Self::LocationUpdate,
            PEER_MESSAGE => Self::PeerMessage,
            other => Self::Unknown(other.chars().take(64).collect()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Heartbeat => HEARTBEAT,
            Self::RequestClientList => REQUEST_CLIENT_LIST,
            Self::LocationUpdate => LOCATION_UPDATE,
            Self::PeerMessage => PEER_MESSAGE,
            Self::Unknown(name) => name,
        }
    }
}

/// A successful answer: `{ ok: true }`, with the server's time for `heartbeat`.
#[derive(Serialize)]
pub struct Answer {
    /// Always true.
    pub ok: bool,
    /// Unix milliseconds, for `heartbeat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

/// `welcome { serverId, serverName, organizationId, timestamp }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome<'a> {
    /// The instance's id.
    pub server_id: &'a str,
    /// Always `switchboard`.
    pub server_name: &'static str,
    /// The client's organization.
    pub organization_id: &'a OrgId,
    /// Unix milliseconds.
    pub timestamp: u64,
}

/// `welcome` for a client of `organization_id` on this instance (`server_id`).
pub fn welcome<'a>(server_id: &'a str, organization_id: &'a OrgId) -> Welcome<'a> {
    Welcome { server_id, server_name: "switchboard", organization_id, timestamp: now_ms() }
}

/// `client-list-update { clients }`
#[derive(Serialize)]
pub struct ClientList<'a> {
    clients: &'a [ClientView],
}

/// `admin-heartbeat { deviceId, timestamp }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminHeartbeat<'a> {
    device_id: &'a ClientId,
    timestamp: u64,
}

/// `admin-elected { organizationId, deviceId, adminId, priority, temporary, timestamp }`:
/// the admin is named `deviceId` as in `admin-heartbeat`, `adminId` kept as an alias.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminElected<'a> {
    organization_id: &'a OrgId,
    device_id: &'a ClientId,
    admin_id: &'a ClientId,
    priority: u32,
    temporary: bool,
    timestamp: u64,
}

/// `admin-stepped-down { adminId, reason, timestamp }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSteppedDown<'a> {
    admin_id: &'a ClientId,
    reason: &'a str,
    timestamp: u64,
}

/// `server-heartbeat { timestamp, clientCount }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerHeartbeat {
    timestamp: u64,
    client_count: usize,
}

/// `location-update { clientId, latitude, longitude, accuracy, timestamp }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationUpdate<'a> {
    client_id: &'a ClientId,
    latitude: f64,
    longitude: f64,
    accuracy: f64,
    timestamp: u64,
}

/// `peer-message { fromId, fromName, message, timestamp }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerMessage<'a> {
    from_id: &'a ClientId,
    from_name: &'a str,
    message: &'a Value,
    timestamp: u64,
}

/// What a core event carries to a mesh client, whichever transport frames it.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Out<'a> {
    /// `client-list-update`
    ClientList(ClientList<'a>),
    /// `admin-heartbeat`
    AdminHeartbeat(AdminHeartbeat<'a>),
    /// `admin-elected`
    AdminElected(AdminElected<'a>),
    /// `admin-stepped-down`
    AdminSteppedDown(AdminSteppedDown<'a>),
    /// `server-heartbeat`
    ServerHeartbeat(ServerHeartbeat),
    /// `location-update`
    LocationUpdate(LocationUpdate<'a>),
    /// `peer-message`
    PeerMessage(PeerMessage<'a>),
}

/// A core event as a mesh event: its name and fields; `None` for one the mesh does not carry.
pub fn shape(event: &Event) -> Option<(&'static str, Out<'_>)> {
    Some(match event {
        Event::ClientList { clients } => (CLIENT_LIST_UPDATE, Out::ClientList(ClientList { clients })),
        Event::AdminHeartbeat { admin, timestamp } => {
            (ADMIN_HEARTBEAT, Out::AdminHeartbeat(AdminHeartbeat { device_id: admin, timestamp: *timestamp }))
        }
        Event::AdminElected { org, admin, priority, temporary, timestamp } => (
            ADMIN_ELECTED,
            Out::AdminElected(AdminElected {
                organization_id: org,
                device_id: admin,
                admin_id: admin,
                priority: *priority,
                temporary: *temporary,
                timestamp: *timestamp,
            }),
        ),
        Event::AdminSteppedDown { admin, reason, timestamp } => (
            ADMIN_STEPPED_DOWN,
            Out::AdminSteppedDown(AdminSteppedDown { admin_id: admin, reason, timestamp: *timestamp }),
        ),
        Event::ServerHeartbeat { timestamp, client_count } => (
            SERVER_HEARTBEAT,
            Out::ServerHeartbeat(ServerHeartbeat { timestamp: *timestamp, client_count: *client_count }),
        ),
        Event::LocationUpdate { client, latitude, longitude, accuracy, timestamp } => (
            LOCATION_UPDATE,
            Out::LocationUpdate(LocationUpdate {
                client_id: client,
                latitude: *latitude,
                longitude: *longitude,
                accuracy: *accuracy,
                timestamp: *timestamp,
            }),
        ),
        Event::PeerMessage { from, from_name, message, timestamp } => {
            (PEER_MESSAGE, Out::PeerMessage(PeerMessage { from_id: from, from_name, message, timestamp: *timestamp }))
        }
        _ => return None,
    })
}

/// Renders a core event for a socket.io mesh client.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    let (name, out) = shape(event).ok_or(Undelivered::Gone)?;
    delivered(socket.emit(name, &out))
}
