//! The `/mesh` namespace's wire (seed 000): event names, the shapes the
//! server sends, and how each core event is rendered ([`emit`]). The
//! reference is `docs/protocol/mesh.md`.

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::core::event::{ClientView, Event};
use crate::core::link::Undelivered;
use crate::domain::mesh::{ClientId, OrgId};
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

#[derive(Serialize)]
struct ClientList<'a> {
    clients: &'a [ClientView],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminHeartbeat<'a> {
    device_id: &'a ClientId,
    timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminElected<'a> {
    organization_id: &'a OrgId,
    admin_id: &'a ClientId,
    priority: u32,
    temporary: bool,
    timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminSteppedDown<'a> {
    admin_id: &'a ClientId,
    reason: &'a str,
    timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerHeartbeat {
    timestamp: u64,
    client_count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationUpdate<'a> {
    client_id: &'a ClientId,
    latitude: f64,
    longitude: f64,
    accuracy: f64,
    timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerMessage<'a> {
    from_id: &'a ClientId,
    from_name: &'a str,
    message: &'a Value,
    timestamp: u64,
}

/// Renders a core event for a mesh client.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    delivered(match event {
        Event::ClientList { clients } => socket.emit(CLIENT_LIST_UPDATE, &ClientList { clients }),
        Event::AdminHeartbeat { admin, timestamp } => {
            socket.emit(ADMIN_HEARTBEAT, &AdminHeartbeat { device_id: admin, timestamp: *timestamp })
        }
        Event::AdminElected { org, admin, priority, temporary, timestamp } => socket.emit(
            ADMIN_ELECTED,
            &AdminElected {
                organization_id: org,
                admin_id: admin,
                priority: *priority,
                temporary: *temporary,
                timestamp: *timestamp,
            },
        ),
        Event::AdminSteppedDown { admin, reason, timestamp } => {
            socket.emit(ADMIN_STEPPED_DOWN, &AdminSteppedDown { admin_id: admin, reason, timestamp: *timestamp })
        }
        Event::ServerHeartbeat { timestamp, client_count } => {
            socket.emit(SERVER_HEARTBEAT, &ServerHeartbeat { timestamp: *timestamp, client_count: *client_count })
        }
        Event::LocationUpdate { client, latitude, longitude, accuracy, timestamp } => socket.emit(
            LOCATION_UPDATE,
            &LocationUpdate {
                client_id: client,
                latitude: *latitude,
                longitude: *longitude,
                accuracy: *accuracy,
                timestamp: *timestamp,
            },
        ),
        Event::PeerMessage { from, from_name, message, timestamp } => {
            socket.emit(PEER_MESSAGE, &PeerMessage { from_id: from, from_name, message, timestamp: *timestamp })
        }
        _ => return Err(Undelivered::Gone),
    })
}
