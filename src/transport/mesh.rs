//! The `/mesh` namespace (seed 000): organization mesh coordination with a
//! temporary admin elected by capability priority.
//!
//! Clients identify in the handshake query (as seed 000) or auth:
//! `organizationId`, `clientId`, `clientName`, `capabilities` (comma list).
//! Organizations are isolated: each is a socket.io room (`org:{id}`), and no
//! event crosses. A client id connecting again turns its older connection out.
//!
//! The admin seat is a lease in the mesh store, renewed by the instance that
//! holds the admin's connection. Each instance ticks ([`run`]): it drops its
//! clients silent for `CLIENT_TIMEOUT`, renews seats it holds, and when an
//! organization's seat has been empty for `ELECTION_DELAY` the instance
//! holding the winner's connection claims it and everyone gets
//! `admin-elected`. Every instance computes the same winner from the same
//! store, and a claim only takes an empty seat, so there is one admin per
//! organization. If the admin's instance dies, its lease (`ELECTION_DELAY`
//! long) runs out and a new admin is elected within twice `ELECTION_DELAY`
//! plus a tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use tracing::{debug, info, warn};

use super::auth::{Authenticated, TokenScope};
use super::error::{ConnectRefused, SignalError};
use super::payload::{PayloadError, fields};
use super::serial::Serial;
use crate::domain::mesh::{self, ClientId, Location, OrgId};
use crate::domain::mesh::{AdminSeat, MeshClient};
use crate::domain::now_ms;
use crate::state::AppState;

/// The namespace's path.
pub const NAMESPACE: &str = "/mesh";
const VIEW_LOCATION: &str = "location.view";

/// One `/mesh` connection.
pub struct MeshConn<A: Adapter> {
    org: OrgId,
    client: MeshClient,
    state: AppState,
    events: Arc<Serial<A>>,
    /// Last heartbeat or event (Unix ms), for the stale-client check.
    last_seen: AtomicU64,
    _slot: crate::state::AddressSlot,
}

fn org_room(org: &OrgId) -> String {
    format!("org:{org}")
}

fn client_room(org: &OrgId, client: &ClientId) -> String {
    format!("org:{org}:client:{client}")
}

fn viewers_room(org: &OrgId) -> String {
    format!("org:{org}:{VIEW_LOCATION}")
}

/// Connect middleware: identifies the client and attaches its handlers.
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), ConnectRefused> {
    let auth = auth.ok();
    let parts = socket.req_parts();
    let query = parts.uri.query();
    let field = |name| super::query::handshake(auth.as_ref(), query, name);
    let refuse = |why: String| {
        info!(conn_id = %socket.id, reason = %why, "mesh connection refused");
        ConnectRefused::Mesh(why)
    };
    let org = field("organizationId").ok_or_else(|| refuse("organizationId is required".into()))?;
    let org = OrgId::parse(&org).map_err(|e| refuse(format!("organizationId {e}")))?;
    let id = field("clientId").ok_or_else(|| refuse("clientId is required".into()))?;
    let id = ClientId::parse(&id).map_err(|e| refuse(format!("clientId {e}")))?;
    let capabilities =
        mesh::parse_capabilities(&field("capabilities").unwrap_or_default()).map_err(|e| refuse(e.to_string()))?;
    let name = field("clientName").unwrap_or_else(|| id.as_str().to_owned());
    if name.chars().count() > crate::domain::room::MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(refuse("clientName must be at most 100 characters, without control characters".into()));
    }
    if let Some(Authenticated(sub)) = socket.extensions.get::<Authenticated>()
        && sub.as_str() != id.as_str()
    {
        return Err(refuse(format!("this token may only connect as clientId {:?}", sub.as_str())));
    }
    if let Some(TokenScope(scope)) = socket.extensions.get::<TokenScope>() {
        let scope = scope.map_err(|e| refuse(e.to_string()))?;
        if !scope.allows_organization(org.as_str()) {
            return Err(refuse(format!("this token may not join organizationId {:?}", org.as_str())));
        }
        if let Some(cap) = scope.forbidden_capability(&capabilities) {
            return Err(refuse(format!("this token may not declare the capability {cap:?}")));
        }
    }
    let ip = super::address::of(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
    let Some(slot) = state.limits.slot(ip, state.config.max_connections_per_ip) else {
        warn!(?ip, "mesh connection refused: too many from this address");
        return Err(ConnectRefused::TooManyConnections);
    };
    let now = now_ms();
    let client = MeshClient {
        id,
        name,
        capabilities,
        joined_at: now,
        last_seen: now,
        instance: state.instance.to_string(),
        conn: crate::domain::ConnId::new(socket.id.as_str()),
    };
    let old = state.mesh.join(&org, client.clone()).await.map_err(|e| {
        drop(state.reported(e, "mesh connect"));
        ConnectRefused::Unavailable
    })?;
    let conn = Arc::new(MeshConn {
        org: org.clone(),
        client,
        events: Arc::new(Serial::new(&state)),
        last_seen: AtomicU64::new(now),
        _slot: slot,
        state,
    });
    socket.join(org_room(&org));
    socket.join(client_room(&org, &conn.client.id));
    if conn.client.capabilities.iter().any(|c| c == VIEW_LOCATION) {
        socket.join(viewers_room(&org));
    }
    super::serial::attach(&socket, conn.clone(), conn.state.reach());
    if let Some(old) = old.filter(|old| old.conn != conn.client.conn) {
        // The same client on a new connection: the older one goes, wherever it is.
        socket.extensions.insert(Replaced(old));
    }
    Ok(())
}

/// The client's older connection, to turn out once this one is connected.
#[derive(Clone)]
struct Replaced(MeshClient);

/// Connect handler: welcome, the older connection turned out, the new list,
/// and a main admin takes the seat.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>) {
    let Some(conn) = socket.extensions.get::<Arc<MeshConn<A>>>() else { return };
    let (org, state) = (&conn.org, &conn.state);
    info!(conn_id = %socket.id, org_id = %org, client_id = %conn.client.id, "mesh client connected");
    let welcome = json!({
        "serverId": state.instance.as_ref(),
        "serverName": "switchboard",
        "organizationId": org,
        "timestamp": now_ms(),
    });
    let _ = socket.emit("welcome", &welcome);
    if let Some(Replaced(old)) = socket.extensions.get::<Replaced>() {
        super::deliver::turn_out(&io, NAMESPACE, state.reach(), old.conn.as_str()).await;
    }
    client_list(&io, state, org, None).await;
    if let Ok(Some(seat)) = state.mesh.admin(org).await {
        let _ = socket.emit("admin-heartbeat", &json!({ "deviceId": seat.client, "timestamp": now_ms() }));
    }
    if conn.client.candidate().is_main_admin() {
        take_seat(&io, state, org, &conn.client, true).await;
    }
}

/// `client-list-update` to the organization (or to one socket, `to`).
async fn client_list<A: Adapter>(io: &SocketIo<A>, state: &AppState, org: &OrgId, to: Option<&SocketRef<A>>) {
    let clients = match state.mesh.clients(org).await {
        Ok(clients) => clients,
        Err(e) => return drop(state.reported(e, "client-list-update")),
    };
    let list: Vec<Value> = clients
        .iter()
        .map(|c| json!({ "id": c.id, "name": c.name, "capabilities": c.capabilities, "lastSeen": c.last_seen }))
        .collect();
    let update = json!({ "clients": list });
    match to {
        Some(socket) => drop(socket.emit("client-list-update", &update)),
        None => {
            if let Some(ns) = io.of(NAMESPACE) {
                let _ = ns.to(org_room(org)).emit("client-list-update", &update).await;
            }
        }
    }
}

/// Claims the admin seat for `client` (held for this instance) and tells the
/// organization; a main admin replaces a temporary one, who is told it stepped down.
async fn take_seat<A: Adapter>(io: &SocketIo<A>, state: &AppState, org: &OrgId, client: &MeshClient, main: bool) {
    let seat = AdminSeat { client: client.id.clone(), instance: state.instance.to_string(), main };
    let before = state.mesh.admin(org).await.ok().flatten();
    match state.mesh.claim_admin(org, &seat, state.config.mesh.election_delay).await {
        Ok(true) if before.as_ref() != Some(&seat) => {
            let Some(ns) = io.of(NAMESPACE) else { return };
            if let Some(old) = before {
                let down = json!({ "adminId": old.client, "reason": "main-admin-returned", "timestamp": now_ms() });
                let _ = ns.clone().to(org_room(org)).emit("admin-stepped-down", &down).await;
                info!(org_id = %org, admin_id = %old.client, "temporary admin stepped down for a main admin");
            }
            let elected = json!({
                "organizationId": org,
                "adminId": client.id,
                "priority": client.candidate().priority(),
                "temporary": !main,
                "timestamp": now_ms(),
            });
            let _ = ns.to(org_room(org)).emit("admin-elected", &elected).await;
            info!(org_id = %org, admin_id = %client.id, main, "admin elected");
        }
        Ok(_) => {}
        Err(e) => drop(state.reported(e, "admin election")),
    }
}

impl<A: Adapter> super::serial::Handler<A> for MeshConn<A> {
    type Answer = Value;

    fn serial(&self) -> &Arc<Serial<A>> {
        &self.events
    }

    async fn handle(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> Result<Value, SignalError> {
        let now = now_ms();
        self.last_seen.store(now, Ordering::Relaxed);
        let state = &self.state;
        match name {
            "heartbeat" => {
                state
                    .mesh
                    .touch(&self.org, &self.client.id, &self.client.conn, now)
                    .await
                    .map_err(|e| state.reported(e, "heartbeat"))?;
                Ok(json!({ "ok": true, "timestamp": now }))
            }
            "request-client-list" => {
                client_list(io, state, &self.org, Some(socket)).await;
                Ok(json!({ "ok": true }))
            }
            "location-update" => {
                let map = fields(payload)?;
                let number = |f: &'static str| {
                    map.get(f).and_then(Value::as_f64).ok_or(PayloadError::Invalid(f, "must be a number".into()))
                };
                let (lat, lon, acc) = (number("latitude")?, number("longitude")?, number("accuracy")?);
                let at = Location::new(lat, lon, acc).map_err(|e| PayloadError::Invalid("location", e.to_string()))?;
                let update = json!({
                    "clientId": self.client.id,
                    "latitude": at.latitude,
                    "longitude": at.longitude,
                    "accuracy": at.accuracy,
                    "timestamp": now,
                });
                let ns = io.of(NAMESPACE).ok_or(SignalError::Unavailable)?;
                ns.to(viewers_room(&self.org))
                    .except(socket.id)
                    .emit("location-update", &update)
                    .await
                    .map_err(|_| SignalError::Unavailable)?;
                Ok(json!({ "ok": true }))
            }
            "peer-message" => {
                let mut map = fields(payload)?;
                let target = match map.get("targetId") {
                    Some(Value::String(t)) => t.clone(),
                    None => return Err(PayloadError::Missing("targetId").into()),
                    Some(_) => return Err(PayloadError::NotAString("targetId").into()),
                };
                let message = map.remove("message").ok_or(PayloadError::Missing("message"))?;
                let out = json!({ "fromId": self.client.id, "fromName": self.client.name, "message": message, "timestamp": now });
                let ns = io.of(NAMESPACE).ok_or(SignalError::Unavailable)?;
                let room = if target == "broadcast" {
                    org_room(&self.org)
                } else {
                    let to = ClientId::parse(&target).map_err(|e| PayloadError::Invalid("targetId", e.to_string()))?;
                    let known = state.mesh.clients(&self.org).await.map_err(|e| state.reported(e, "peer-message"))?;
                    if !known.iter().any(|c| c.id == to) {
                        return Err(crate::domain::RoomError::TargetNotFound.into());
                    }
                    client_room(&self.org, &to)
                };
                ns.to(room).except(socket.id).emit("peer-message", &out).await.map_err(|_| SignalError::Unavailable)?;
                Ok(json!({ "ok": true }))
            }
            _ => Err(SignalError::UnknownEvent(name.chars().take(64).collect())),
        }
    }

    async fn disconnect(&self, socket: &SocketRef<A>, io: &SocketIo<A>, reason: DisconnectReason) {
        let state = &self.state;
        match state.mesh.leave(&self.org, &self.client.id, &self.client.conn).await {
            Ok(true) => {
                if let Ok(true) = state.mesh.release_admin(&self.org, &self.client.id).await {
                    info!(org_id = %self.org, admin_id = %self.client.id, "the admin left: an election follows");
                }
                client_list(io, state, &self.org, None).await;
            }
            Ok(false) => {}
            Err(e) => drop(state.reported(e, "mesh disconnect")),
        }
        info!(conn_id = %socket.id, org_id = %self.org, client_id = %self.client.id, ?reason, "mesh client disconnected");
    }
}

/// The periodic work of this instance: stale clients, admin seats,
/// elections and heartbeats. Runs until aborted.
pub async fn run<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let config = state.config.mesh.clone();
    let tick = (config.heartbeat_interval.min(config.election_delay).min(config.client_timeout) / 4)
        .max(Duration::from_millis(50));
    let mut ticks = tokio::time::interval(tick);
    let mut empty_since: HashMap<OrgId, Instant> = HashMap::new();
    let mut last_heartbeat = Instant::now();
    loop {
        ticks.tick().await;
        let Some(ns) = io.of(NAMESPACE) else { continue };
        let now = now_ms();
        let heartbeat = last_heartbeat.elapsed() >= config.heartbeat_interval;
        if heartbeat {
            last_heartbeat = Instant::now();
        }
        let mut orgs: HashMap<OrgId, Vec<Arc<MeshConn<A>>>> = HashMap::new();
        for socket in ns.clone().sockets() {
            let Some(conn) = socket.extensions.get::<Arc<MeshConn<A>>>() else { continue };
            if mesh::is_stale(conn.last_seen.load(Ordering::Relaxed), now, config.client_timeout.as_millis() as u64) {
                info!(org_id = %conn.org, client_id = %conn.client.id, "mesh client silent past CLIENT_TIMEOUT: dropped");
                let _ = socket.disconnect();
                continue;
            }
            orgs.entry(conn.org.clone()).or_default().push(conn);
        }
        empty_since.retain(|org, _| orgs.contains_key(org));
        for (org, local) in &orgs {
            seat_upkeep(&io, &state, org, local, &mut empty_since).await;
            if heartbeat {
                heartbeats(&io, &state, org).await;
            }
        }
    }
}

/// Renews a seat this instance holds, or elects when the seat stayed empty for `ELECTION_DELAY`.
async fn seat_upkeep<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    org: &OrgId,
    local: &[Arc<MeshConn<A>>],
    empty_since: &mut HashMap<OrgId, Instant>,
) {
    let delay = state.config.mesh.election_delay;
    match state.mesh.admin(org).await {
        Ok(Some(seat)) => {
            empty_since.remove(org);
            if *seat.instance == *state.instance && local.iter().any(|c| c.client.id == seat.client) {
                let _ = state.mesh.renew_admin(org, &seat, delay).await;
            }
        }
        Ok(None) => {
            let since = *empty_since.entry(org.clone()).or_insert_with(Instant::now);
            if since.elapsed() < delay {
                return;
            }
            let clients = match state.mesh.clients(org).await {
                Ok(clients) => clients,
                Err(e) => return drop(state.reported(e, "admin election")),
            };
            let candidates: Vec<_> = clients.iter().map(MeshClient::candidate).collect();
            let Some(winner) = mesh::elect(&candidates) else { return };
            // Only the instance holding the winner's connection claims the seat.
            if let Some(conn) = local.iter().find(|c| c.client.id == winner.id) {
                take_seat(io, state, org, &conn.client, winner.is_main_admin()).await;
            }
        }
        Err(e) => drop(state.reported(e, "admin seat")),
    }
}

/// `server-heartbeat` to this instance's clients of `org`, and
/// `admin-heartbeat` to the organization from the admin's instance.
async fn heartbeats<A: Adapter>(io: &SocketIo<A>, state: &AppState, org: &OrgId) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    let count = state.mesh.clients(org).await.map(|c| c.len()).unwrap_or(0);
    let beat = json!({ "timestamp": now_ms(), "clientCount": count });
    let _ = ns.clone().local().to(org_room(org)).emit("server-heartbeat", &beat).await;
    if let Ok(Some(seat)) = state.mesh.admin(org).await
        && *seat.instance == *state.instance
    {
        let beat = json!({ "deviceId": seat.client, "timestamp": now_ms() });
        if let Err(e) = ns.to(org_room(org)).emit("admin-heartbeat", &beat).await {
            debug!(error = %e, "admin-heartbeat not sent");
        }
    }
}
