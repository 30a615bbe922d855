//! The `/dashboard` namespace (seed 001): a live room directory pushed to
//! subscribers, channels whose other events are relayed among their
//! subscribers, and the host-approval ("knock") flow.
//!
//! Seed 001's messages become socket.io events of the same name; a payload
//! may wrap its fields in `data` as seed 001's messages do, or give them
//! directly. Rooms are the core's rooms (one registry): a room created here is
//! listed by `/api/rooms` and joinable from `/`, and a room made by a core
//! `join-room` appears in the list here. A seat taken here
//! (`room-created`, `user-joined-room`) is held by this connection and left
//! when it disconnects.
//!
//! Subscriptions are socket.io rooms (`ch:{channel}`), so with the Redis
//! adapter they work across instances. Each instance sends the room list to
//! its own subscribers: on every change it hears of (its own, and with Redis
//! every instance's through the store's change announcements), and every
//! `ROOM_LIST_INTERVAL_MS` while rooms exist.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::socket::DisconnectReason;
use tracing::{debug, info, warn};

use super::auth::Authenticated;
use super::deliver::deliver_any;
use super::error::SignalError;
use super::payload::{PayloadError, fields, id, text};
use super::serial::Serial;
use crate::domain::now_ms;
use crate::domain::room::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::domain::{ConnId, Request, RoomId, RoomMeta, UserId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::rooms::{LeaveOutcome, RoomSnapshot};

/// The namespace's path.
pub const NAMESPACE: &str = "/dashboard";
/// The channel whose subscribers get `server-room-list`.
pub const ROOMS_CHANNEL: &str = "webrtc-dashboard-rooms";
/// Longest channel name.
const MAX_CHANNEL_CHARS: usize = 64;
/// Channels one connection may subscribe to.
const MAX_CHANNELS: usize = 32;
/// Event names only the server sends: a relay may not forge them.
const RESERVED: [&str; 12] = [
    "server-room-list",
    "client_count",
    "pong",
    "join-request",
    "join-approved",
    "join-rejected",
    "host-changed",
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "signaling-error",
];
/// Rooms in one `server-room-list` at most.
const MAX_LISTED: usize = 1000;

/// One `/dashboard` connection.
pub struct DashConn<A: Adapter> {
    id: ConnId,
    state: AppState,
    events: Arc<Serial<A>>,
    /// The seats this connection holds (room, user), for reconciling the
    /// store after an outage and for `MAX_ROOMS_PER_CONNECTION`.
    seats: std::sync::Mutex<Vec<(RoomId, UserId)>>,
    /// Counted against `MAX_CONNECTIONS_PER_IP` while the connection lives.
    _slot: crate::state::AddressSlot,
}

/// Connect middleware: attaches the handlers before the CONNECT ack.
pub async fn attach<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
) -> Result<(), super::error::ConnectRefused> {
    let parts = socket.req_parts();
    let ip = super::address::of(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
    let Some(slot) = state.limits.slot(ip, state.config.max_connections_per_ip) else {
        warn!(?ip, "dashboard connection refused: too many from this address");
        return Err(super::error::ConnectRefused::TooManyConnections);
    };
    let conn = Arc::new(DashConn {
        id: ConnId::new(socket.id.as_str()),
        events: Arc::new(Serial::new(&state)),
        seats: Default::default(),
        _slot: slot,
        state,
    });
    super::serial::attach(&socket, conn.clone(), conn.state.reach());
    Ok(())
}

/// Connect handler: everyone is told the new client count.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>) {
    info!(conn_id = %socket.id, "dashboard connected");
    client_count(&io, None).await;
}

/// `client_count { count, timestamp }` to every dashboard client, cluster-wide
/// (`leaving`, a connection being cleaned up, is not counted).
async fn client_count<A: Adapter>(io: &SocketIo<A>, leaving: Option<socketioxide::socket::Sid>) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    let count = match tokio::time::timeout(Duration::from_secs(2), ns.clone().fetch_sockets()).await {
        Ok(Ok(sockets)) => sockets.iter().filter(|s| Some(s.data().id) != leaving).count(),
        _ => ns.clone().sockets().iter().filter(|s| Some(s.id) != leaving).count(),
    };
    if let Err(e) = ns.emit("client_count", &json!({ "count": count, "timestamp": now_ms() })).await {
        debug!(error = %e, "client_count not sent");
    }
}

fn channel_room(channel: &str) -> String {
    format!("ch:{channel}")
}

fn request_room(room: &RoomId, user: &UserId) -> String {
    format!("req:{room}:{user}")
}

fn channel(map: &Map<String, Value>) -> Result<String, PayloadError> {
    let raw = text(map, "channel", MAX_CHANNEL_CHARS)?.ok_or(PayloadError::Missing("channel"))?;
    let ok = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(raw).ok_or_else(|| {
        PayloadError::Invalid(
            "channel",
            format!("must be 1 to {MAX_CHANNEL_CHARS} letters, digits, '-', '_', '.' or ':'"),
        )
    })
}

/// A room as `server-room-list` and `/dashboard/health` show it.
pub fn room_json(room: &RoomSnapshot) -> Value {
    let name_of = |u: &UserId| room.meta.as_ref().map_or_else(|| u.as_str().to_owned(), |m| m.name_of(u));
    let participants: Vec<Value> = room.participants.iter().map(|u| json!({ "id": u, "name": name_of(u) })).collect();
    let created = crate::domain::unix_ms(room.created_at);
    let mut out = json!({
        "id": room.id,
        "createdAt": created,
        "participants": participants,
        "participantCount": room.participants.len(),
    });
    if let Some(m) = &room.meta {
        out["name"] = json!(m.name);
        out["description"] = json!(m.description);
        out["host"] = json!(m.host);
        out["hostId"] = json!(m.host_id);
        out["requiresApproval"] = json!(m.requires_approval);
    }
    out
}

/// Every room (up to [`MAX_LISTED`]) as `server-room-list` shows them.
pub async fn room_list(state: &AppState) -> Result<(usize, Vec<Value>), StoreError> {
    let page = state.store.list(0, MAX_LISTED).await?;
    Ok((page.total, page.rooms.iter().map(room_json).collect()))
}

/// Sends `server-room-list` to this instance's subscribers of the rooms
/// channel; whether a list went out (false: no subscriber here, or no list).
async fn push_list<A: Adapter>(io: &SocketIo<A>, state: &AppState) -> bool {
    let Some(ns) = io.of(NAMESPACE) else { return false };
    if ns.clone().local().to(channel_room(ROOMS_CHANNEL)).sockets().is_empty() {
        return false;
    }
    let (_, rooms) = match room_list(state).await {
        Ok(list) => list,
        // A background push, not a client's request: the upkeep task reports outages.
        Err(e) => {
            debug!(error = %e, "server-room-list not sent: the store is unavailable");
            return false;
        }
    };
    let list = json!({ "channel": ROOMS_CHANNEL, "rooms": rooms, "timestamp": now_ms() });
    match ns.local().to(channel_room(ROOMS_CHANNEL)).emit("server-room-list", &list).await {
        Ok(()) => true,
        Err(e) => {
            debug!(error = %e, "server-room-list not sent");
            false
        }
    }
}

/// Keeps subscribers' room lists current: on every change (coalesced), and
/// every `ROOM_LIST_INTERVAL_MS` while rooms exist. Runs until aborted.
pub async fn keep_lists<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let mut every = tokio::time::interval(state.config.room_list_interval);
    let store_changed = state.store.changed();
    loop {
        tokio::select! {
            _ = state.directory.notified() => {
                push_list(&io, &state).await;
            }
            _ = async { store_changed.as_ref()?.notified().await; Some(()) }, if store_changed.is_some() => {
                push_list(&io, &state).await;
            }
            _ = every.tick() => {
                let rooms_exist = state.store.count().await.is_ok_and(|n| n > 0);
                let sent = rooms_exist && push_list(&io, &state).await;
                state.metrics.room_list_tick(sent);
            }
        }
        // Changes that came in a burst go out as one list.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells a room's participants its host changed, and every subscriber the new list.
pub async fn host_changed<A: Adapter>(io: &SocketIo<A>, state: &AppState, out: &LeaveOutcome) {
    let Some(host) = &out.new_host else { return };
    let name = match state.store.room(&out.room).await {
        Ok(Some(room)) => room.meta.map_or_else(|| host.as_str().to_owned(), |m| m.host),
        _ => host.as_str().to_owned(),
    };
    let event = json!({ "roomId": out.room, "hostId": host, "host": name });
    for peer in &out.peers {
        if let Err(e) = deliver_any(io, state.reach(), peer, "host-changed", &event).await {
            debug!(conn_id = %peer, code = e.code(), "host-changed not delivered");
        }
    }
    info!(room_id = %out.room, host_id = %host, "room host changed");
}

/// An event's ack: `{ ok: true, ...fields }`.
#[derive(Serialize)]
pub struct Ack {
    ok: bool,
    #[serde(flatten)]
    fields: Value,
}

fn ok(fields: Value) -> Ack {
    Ack { ok: true, fields }
}

impl<A: Adapter> super::serial::Handler<A> for DashConn<A> {
    type Answer = Ack;

    fn serial(&self) -> &Arc<Serial<A>> {
        &self.events
    }

    async fn handle(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> Result<Ack, SignalError> {
        match name {
            "subscribe" => self.subscribe(socket, payload).await,
            "unsubscribe" => {
                let channel = channel(&fields(payload)?)?;
                socket.leave(channel_room(&channel));
                Ok(ok(json!({ "channel": channel })))
            }
            "ping" => {
                let pong = json!({ "timestamp": now_ms() });
                let _ = socket.emit("pong", &pong);
                Ok(ok(pong))
            }
            "room-created" => self.create(socket, payload).await,
            "user-joined-room" => self.join(socket, payload).await,
            "user-left-room" => self.leave(io, payload).await,
            "room-list-request" => {
                let (total, rooms) =
                    room_list(&self.state).await.map_err(|e| self.state.reported(e, "room-list-request"))?;
                let list = json!({ "channel": ROOMS_CHANNEL, "rooms": rooms, "timestamp": now_ms() });
                let _ = socket.emit("server-room-list", &list);
                Ok(ok(json!({ "total": total })))
            }
            "join-request" => self.request(socket, io, payload).await,
            "join-approved" => self.decide(io, payload, true).await,
            "join-rejected" => self.decide(io, payload, false).await,
            _ => self.relay(socket, name, payload).await,
        }
    }

    async fn disconnect(&self, socket: &SocketRef<A>, io: &SocketIo<A>, reason: DisconnectReason) {
        match self.state.store.leave_all(&self.id).await {
            Ok(left) => {
                for out in &left {
                    host_changed(io, &self.state, out).await;
                }
                if !left.is_empty() {
                    self.state.directory.notify_one();
                }
            }
            Err(e) => drop(self.state.reported(e, "dashboard disconnect")),
        }
        info!(conn_id = %socket.id, ?reason, "dashboard disconnected");
        client_count(io, Some(socket.id)).await;
    }
}

impl<A: Adapter> DashConn<A> {
    async fn subscribe(&self, socket: &SocketRef<A>, payload: Option<Value>) -> Result<Ack, SignalError> {
        let channel = channel(&fields(payload)?)?;
        // The socket's own rooms say what it is subscribed to.
        let rooms = socket.rooms();
        let subscribed = rooms.iter().filter(|r| r.starts_with("ch:")).count();
        if !rooms.iter().any(|r| **r == channel_room(&channel)) && subscribed >= MAX_CHANNELS {
            return Err(SignalError::TooManyRooms(MAX_CHANNELS));
        }
        socket.join(channel_room(&channel));
        if channel == ROOMS_CHANNEL {
            // The list at once, not at the next change or tick.
            let (_, rooms) = room_list(&self.state).await.map_err(|e| self.state.reported(e, "subscribe"))?;
            let _ =
                socket.emit("server-room-list", &json!({ "channel": channel, "rooms": rooms, "timestamp": now_ms() }));
        }
        Ok(ok(json!({ "channel": channel })))
    }

    /// `MAX_ROOMS_PER_CONNECTION`, as on `/`.
    fn room_limit(&self, room: &RoomId) -> Result<(), SignalError> {
        let seats = self.seats.lock().unwrap_or_else(|p| p.into_inner());
        let max = self.state.config.max_rooms_per_connection;
        if !seats.iter().any(|(r, _)| r == room) && seats.len() >= max {
            return Err(SignalError::TooManyRooms(max));
        }
        Ok(())
    }

    fn remember(&self, room: &RoomId, user: &UserId) {
        let mut seats = self.seats.lock().unwrap_or_else(|p| p.into_inner());
        seats.retain(|(r, _)| r != room);
        seats.push((room.clone(), user.clone()));
    }

    /// With JWT on, `user` must be the token's user.
    fn check_user(&self, socket: &SocketRef<A>, user: &UserId) -> Result<(), SignalError> {
        match socket.extensions.get::<Authenticated>() {
            Some(Authenticated(sub)) if &sub != user => Err(SignalError::Unauthorized(sub)),
            _ => Ok(()),
        }
    }

    async fn create(&self, socket: &SocketRef<A>, payload: Option<Value>) -> Result<Ack, SignalError> {
        let map = fields(payload)?;
        let room = id(&map, "id", RoomId::parse)?;
        let host_id = id(&map, "hostId", UserId::parse)?;
        self.check_user(socket, &host_id)?;
        let meta = RoomMeta {
            name: text(&map, "name", MAX_NAME_CHARS)?.unwrap_or_else(|| room.as_str().to_owned()),
            description: text(&map, "description", MAX_DESCRIPTION_CHARS)?.unwrap_or_default(),
            host: text(&map, "host", MAX_NAME_CHARS)?.unwrap_or_else(|| host_id.as_str().to_owned()),
            requires_approval: match map.get("requiresApproval") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(PayloadError::Invalid("requiresApproval", "must be true or false".into()).into()),
            },
            host_id: host_id.clone(),
            approved: vec![],
            names: vec![],
            requests: vec![],
        };
        let state = &self.state;
        self.room_limit(&room)?;
        state.store.create(&room, meta, &self.id).await.map_err(|e| state.reported(e, "room-created"))?;
        self.remember(&room, &host_id);
        state.directory.notify_one();
        info!(conn_id = %self.id, room_id = %room, host_id = %host_id, "room created");
        Ok(ok(json!({ "roomId": room })))
    }

    async fn join(&self, socket: &SocketRef<A>, payload: Option<Value>) -> Result<Ack, SignalError> {
        let map = fields(payload)?;
        let room = id(&map, "roomId", RoomId::parse)?;
        let user = id(&map, "userId", UserId::parse)?;
        let name = text(&map, "userName", MAX_NAME_CHARS)?;
        self.check_user(socket, &user)?;
        let state = &self.state;
        self.room_limit(&room)?;
        let out = state
            .store
            .join(&room, &user, &self.id, state.config.max_room_size)
            .await
            .map_err(|e| state.reported(e, "user-joined-room"))?;
        self.remember(&room, &user);
        if let Some(name) = name {
            state.store.name_user(&room, &user, &name).await.map_err(|e| state.reported(e, "user-joined-room"))?;
        }
        state.directory.notify_one();
        info!(conn_id = %self.id, room_id = %room, user_id = %user, "dashboard user joined room");
        Ok(ok(json!({ "roomId": room, "users": out.users })))
    }

    async fn leave(&self, io: &SocketIo<A>, payload: Option<Value>) -> Result<Ack, SignalError> {
        let map = fields(payload)?;
        let room = id(&map, "roomId", RoomId::parse)?;
        let state = &self.state;
        let out = state.store.leave(&room, &self.id).await.map_err(|e| state.reported(e, "user-left-room"))?;
        self.seats.lock().unwrap_or_else(|p| p.into_inner()).retain(|(r, _)| r != &room);
        let out = out.ok_or(crate::domain::RoomError::NotInRoom)?;
        host_changed(io, state, &out).await;
        state.directory.notify_one();
        Ok(ok(json!({ "roomId": room })))
    }

    async fn request(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        payload: Option<Value>,
    ) -> Result<Ack, SignalError> {
        let map = fields(payload)?;
        let room = id(&map, "roomId", RoomId::parse)?;
        let user = id(&map, "userId", UserId::parse)?;
        let name = text(&map, "userName", MAX_NAME_CHARS)?.unwrap_or_else(|| user.as_str().to_owned());
        self.check_user(socket, &user)?;
        let state = &self.state;
        let timeout = state.config.join_request_timeout;
        let now = now_ms();
        let request = state.store.request(&room, &user, now, now + timeout.as_millis() as u64).await;
        let decision = json!({ "roomId": room, "userId": user });
        if request.map_err(|e| state.reported(e, "join-request"))? == Request::Approved {
            let _ = socket.emit("join-approved", &decision);
            return Ok(ok(json!({ "status": "approved" })));
        }
        // The decision reaches this connection through this room, from any instance.
        socket.join(request_room(&room, &user));
        // Armed before anything can fail, so a request never waits for good.
        let (timer_io, timer_state, timer_room, timer_user) = (io.clone(), state.clone(), room.clone(), user.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            expire(&timer_io, &timer_state, &timer_room, &timer_user).await;
        });
        let host = state.store.room(&room).await.map_err(|e| state.reported(e, "join-request"))?;
        let host = host.and_then(|r| r.host_conn).ok_or(crate::domain::RoomError::NoSuchRoom)?;
        let ask = json!({ "roomId": room, "userId": user, "userName": name });
        deliver_any(io, state.reach(), &host, "join-request", &ask).await?;
        info!(conn_id = %self.id, room_id = %room, user_id = %user, "join request sent to the host");
        Ok(ok(json!({ "status": "pending" })))
    }

    async fn decide(&self, io: &SocketIo<A>, payload: Option<Value>, approve: bool) -> Result<Ack, SignalError> {
        decide(io, &self.state, &self.id, payload, approve).await
    }

    /// Any other event names a channel: it goes to that channel's other subscribers.
    async fn relay(&self, socket: &SocketRef<A>, name: &str, payload: Option<Value>) -> Result<Ack, SignalError> {
        let map = match &payload {
            Some(Value::Object(map)) => map,
            _ => return Err(SignalError::UnknownEvent(name.chars().take(64).collect())),
        };
        if RESERVED.contains(&name) {
            return Err(PayloadError::Invalid("event", format!("{name:?} is sent by the server only")).into());
        }
        let channel = channel(map).map_err(|_| SignalError::UnknownEvent(name.chars().take(64).collect()))?;
        if !socket.rooms().iter().any(|r| **r == channel_room(&channel)) {
            return Err(crate::domain::RoomError::NotInRoom.into());
        }
        match tokio::time::timeout(Duration::from_secs(2), socket.to(channel_room(&channel)).emit(name, &payload)).await
        {
            Ok(Ok(())) => Ok(ok(json!({ "channel": channel }))),
            _ => Err(SignalError::Unavailable),
        }
    }
}

/// `join-approved` / `join-rejected { roomId, userId }` from the connection
/// `by`, which must hold the room's host seat (on `/dashboard` or `/`): the
/// joiner gets the same event, from any instance.
pub async fn decide<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    by: &ConnId,
    payload: Option<Value>,
    approve: bool,
) -> Result<Ack, SignalError> {
    let map = fields(payload)?;
    let room = id(&map, "roomId", RoomId::parse)?;
    let user = id(&map, "userId", UserId::parse)?;
    let event = if approve { "join-approved" } else { "join-rejected" };
    state.store.decide(&room, by, &user, approve).await.map_err(|e| state.reported(e, event))?;
    info!(room_id = %room, user_id = %user, approve, "join request decided by the host");
    decide_to(io, &room, &user, event, &json!({ "roomId": room, "userId": user })).await;
    Ok(ok(json!({ "roomId": room, "userId": user })))
}

/// A request's deadline passed: rejected if still waiting (`timeout`), or
/// if its room is gone meanwhile (`room-closed`).
async fn expire<A: Adapter>(io: &SocketIo<A>, state: &AppState, room: &RoomId, user: &UserId) {
    let reason = match state.store.expire_request(room, user, now_ms()).await {
        Ok(true) => "timeout",
        Ok(false) if matches!(state.store.room(room).await, Ok(None)) => "room-closed",
        Ok(false) => return,
        Err(e) => return warn!(error = %e, "could not expire a join request"),
    };
    info!(room_id = %room, user_id = %user, reason, "join request expired unanswered: rejected");
    let rejected = json!({ "roomId": room, "userId": user, "reason": reason });
    decide_to(io, room, user, "join-rejected", &rejected).await;
}

/// Sends a decision to the connections waiting on `user`'s request, on any instance.
async fn decide_to<A: Adapter>(io: &SocketIo<A>, room: &RoomId, user: &UserId, event: &str, data: &Value) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    let waiting = request_room(room, user);
    if let Err(e) = ns.clone().to(waiting.clone()).emit(event, data).await {
        debug!(error = %e, "join decision not sent");
    }
    // The request is over: later decisions for it go nowhere.
    let _ = ns.to(waiting).leave(request_room(room, user)).await;
}

/// Every local dashboard connection holding seats, and its seats.
pub fn live_seats<A: Adapter>(io: &SocketIo<A>) -> Vec<(ConnId, Vec<(RoomId, UserId)>)> {
    let Some(ns) = io.of(NAMESPACE) else { return Vec::new() };
    let conns = ns.sockets().into_iter().filter_map(|s| s.extensions.get::<Arc<DashConn<A>>>());
    conns.map(|c| (c.id.clone(), c.seats.lock().unwrap_or_else(|p| p.into_inner()).clone())).collect()
}
