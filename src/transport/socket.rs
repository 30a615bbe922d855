//! The default namespace `/`: rooms signaling as contract v1 describes it.
//!
//! [`attach`] registers the handlers in a connect middleware, which runs before
//! the CONNECT ack: registering them in the connect handler (spawned after the
//! ack) could miss a client's first events. Each handler only queues its event
//! on the connection's [`Inbox`] (see there for why); the drainer then runs the
//! events one by one ([`super::handlers`]): parse, ask the store, emit, answer.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;
use tracing::{debug, error, info, warn};

use super::address;
use super::auth::{self, AuthError, Authenticated};
use super::error::{AckError, ConnectRefused, SignalError, SignalingErrorEvent};
use super::events::{AckOk, ClientEvent, ICE_SERVERS, SIGNALING_ERROR};
use super::inbox::{Inbox, Push};
use crate::domain::rate::{Limiter, Verdict};
use crate::domain::{ConnId, RoomId, UserId};
use crate::state::AppState;

/// Connect handler: logs the new connection (the handlers are already
/// attached) and sends it the ICE servers. It runs after the CONNECT ack, so
/// emitting here is safe. The TURN username names the token's `sub` with
/// `JWT_SECRET` set; otherwise the user from the handshake (`auth.userId`, or a
/// `userId` query parameter) when there is one.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) {
    let transport = socket.transport_type();
    info!(conn_id = %socket.id, ?transport, protocol = ?socket.protocol(), "connected");
    let user = match &state.config.jwt {
        // A client-supplied userId must not get credentials in another user's name.
        Some(_) => socket.extensions.get::<Authenticated>().map(|Authenticated(sub)| sub),
        None => handshake_user(&socket, auth.ok()),
    };
    let servers = state.config.ice.servers_for(user.as_ref(), SystemTime::now());
    if let Err(err) = socket.emit(ICE_SERVERS, &servers) {
        warn!(conn_id = %socket.id, %err, "ice-servers not delivered");
    }
}

fn handshake_user<A: Adapter>(socket: &SocketRef<A>, auth: Option<Value>) -> Option<UserId> {
    let from_auth = auth.as_ref().and_then(|a| a.get("userId")).and_then(Value::as_str).map(str::to_owned);
    let from_query = || super::query::param(socket.req_parts().uri.query(), "userId").map(str::to_owned);
    from_auth.or_else(from_query).and_then(|raw| UserId::parse(&raw).ok())
}

/// Connect middleware, run before [`attach`]: with `JWT_SECRET` set, only a
/// valid token connects, and the user it names is kept for `join-room`.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), ConnectRefused> {
    let Some(jwt) = &state.config.jwt else { return Ok(()) };
    let parts = socket.req_parts();
    let token = auth::token_from(auth.ok().as_ref(), &parts.headers, parts.uri.query()).ok_or(AuthError::Missing);
    match token.and_then(|token| auth::verify_scoped(&token, jwt)) {
        Ok((user, scope)) => {
            socket.extensions.insert(Authenticated(user));
            socket.extensions.insert(scope);
            Ok(())
        }
        Err(e) => {
            info!(conn_id = %socket.id, reason = %e, "connection refused: not authenticated");
            Err(ConnectRefused::Unauthorized(e))
        }
    }
}

/// Connect middleware: attaches the event and disconnect handlers to `socket`.
pub async fn attach<A: Adapter>(socket: SocketRef<A>, State(state): State<AppState>) -> Result<(), ConnectRefused> {
    let parts = socket.req_parts();
    let ip = address::of(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
    if let Some(ip) = ip
        && !state.limits.try_connect(ip, state.config.max_connections_per_ip)
    {
        warn!(%ip, "connection refused: too many from this address");
        return Err(ConnectRefused::TooManyConnections);
    }
    let state_limits =
        (state.config.events_per_second, state.config.event_burst, state.config.rate_limit_disconnect_after);
    let conn = Arc::new(Connection {
        id: ConnId::new(socket.id.as_str()),
        inbox: Inbox::new(state.config.max_pending_events),
        state,
        seats: Default::default(),
        ip,
        counted: std::sync::atomic::AtomicBool::new(true),
        limiter: std::sync::Mutex::new(Limiter::new(
            f64::from(state_limits.0),
            f64::from(state_limits.1),
            state_limits.2,
            Instant::now(),
        )),
    });
    // One handler for every event, known or not: a handler per event name would
    // cost each connection a map and five boxed closures (memory per idle peer).
    let events = conn.clone();
    socket.on_fallback(
        move |s: SocketRef<A>,
              io: SocketIo<A>,
              reply: Reply<A>,
              WireEvent(event): WireEvent,
              TryData(data): TryData<Value>| {
            let job = match event {
                Ok(event) => Job::Event { event, payload: data.ok(), reply },
                Err(name) => Job::Unknown { name, reply },
            };
            events.accept(job, s, io)
        },
    );
    conn.state.stats.connected();
    super::deliver::reachable(&socket, conn.state.reach());
    socket.extensions.insert(conn.clone());
    socket.on_disconnect(move |s: SocketRef<A>, io: SocketIo<A>, reason: DisconnectReason| {
        let pushed = conn.inbox.push_last(Job::Disconnect(reason));
        conn.schedule(pushed, s, io)
    });
    Ok(())
}

/// Shutdown: runs every local connection's disconnect clean-up now (rooms left,
/// peers told). `SocketIo::close` removes the namespaces before it closes the
/// transports, so socketioxide never calls the disconnect handlers itself.
/// Completes when the clean-ups have run or been queued behind running drainers.
pub async fn disconnect_all<A: Adapter>(io: &SocketIo<A>) {
    let drains = io.sockets().into_iter().filter_map(|socket| {
        let conn = socket.extensions.get::<Arc<Connection<A>>>()?;
        let pushed = conn.inbox.push_last(Job::Disconnect(DisconnectReason::ClosingServer));
        Some(conn.schedule(pushed, socket, io.clone()))
    });
    futures_util::future::join_all(drains).await;
}

/// Every local connection holding seats (on `/` and `/dashboard`) and its
/// seats, for reconciling the store.
pub fn live_seats<A: Adapter>(io: &SocketIo<A>) -> Vec<(ConnId, Vec<(RoomId, UserId)>)> {
    let core = io.sockets().into_iter().filter_map(|socket| socket.extensions.get::<Arc<Connection<A>>>());
    let mut live: Vec<_> = core.map(|conn| (conn.id.clone(), conn.seats())).collect();
    live.extend(super::dashboard::live_seats(io));
    live
}

/// The contract event a message names, or the unknown name. Read in place from
/// the packet: socketioxide's `Event` extractor copies the name into a new
/// `String` for every message, an allocation on the relay path.
struct WireEvent(Result<ClientEvent, String>);

impl<A: Adapter> FromMessageParts<A> for WireEvent {
    type Error = socketioxide_core::parser::ParserError;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        v: &mut socketioxide_core::Value,
        _: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        // The common (JSON) parser is the one `server::configure` installs.
        let name = CommonParser.read_event(v)?;
        Ok(Self(ClientEvent::from_name(name).ok_or_else(|| name.to_owned())))
    }
}

/// An event's ack callback, and whether the client asked for one (socketioxide's
/// `AckSender` does not say, and without an ack errors go out as `signaling-error`).
pub struct Reply<A: Adapter> {
    ack: AckSender<A>,
    wanted: bool,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self { ack: AckSender::from_message_parts(s, v, ack_id)?, wanted: ack_id.is_some() })
    }
}

impl<A: Adapter> Reply<A> {
    /// Answers with an error: the ack, or `signaling-error` if none was asked.
    pub(super) fn refuse(self, socket: &SocketRef<A>, event: &str, why: SignalError) {
        self.send(socket, event, Err::<AckOk, _>(why));
    }

    pub(super) fn send(self, socket: &SocketRef<A>, event: &str, result: Result<impl Serialize, SignalError>) {
        let sent = match &result {
            Ok(ok) => self.ack.send(ok),
            Err(e) if self.wanted => self.ack.send(&AckError::from(e)),
            Err(e) => socket.emit(SIGNALING_ERROR, &SignalingErrorEvent::new(event, e)),
        };
        if let Err(e) = &result {
            debug!(conn_id = %socket.id, event, code = e.code(), reason = %e, "event refused");
        }
        if let Err(err) = sent {
            warn!(conn_id = %socket.id, event, %err, "could not answer the client");
        }
    }
}

/// One queued unit of work for a connection.
pub(super) enum Job<A: Adapter> {
    Event { event: ClientEvent, payload: Option<Value>, reply: Reply<A> },
    Unknown { name: String, reply: Reply<A> },
    Disconnect(DisconnectReason),
}

/// Per-connection state shared by that socket's handlers.
pub(super) struct Connection<A: Adapter> {
    pub(super) id: ConnId,
    inbox: Inbox<Job<A>>,
    pub(super) state: AppState,
    /// The seats this connection holds, as it was told; used to put them back
    /// if the store loses them (a Redis restart). Only its drainer writes it.
    seats: std::sync::Mutex<Vec<(RoomId, UserId)>>,
    /// The client address, counted against `MAX_CONNECTIONS_PER_IP`.
    ip: Option<std::net::IpAddr>,
    /// Events per second, bursts, and abuse detection for this connection.
    limiter: std::sync::Mutex<Limiter>,
    /// Whether this connection is still counted in `/health` and its address's
    /// limit (see [`Connection::count_out`]).
    counted: std::sync::atomic::AtomicBool,
}

impl<A: Adapter> Drop for Connection<A> {
    fn drop(&mut self) {
        self.count_out();
    }
}

impl<A: Adapter> Connection<A> {
    /// Counts this connection out of `/health` and its address's limit, once.
    /// Called by the disconnect clean-up, and on drop: socketioxide removes a
    /// socket whose transport closed during the namespace CONNECT without ever
    /// calling its disconnect handler, and such a socket must not stay counted.
    pub(super) fn count_out(&self) {
        if self.counted.swap(false, std::sync::atomic::Ordering::AcqRel) {
            if let Some(ip) = self.ip {
                self.state.limits.disconnected(ip);
            }
            self.state.stats.disconnected();
        }
    }

    /// The synchronous part of every event handler, at arrival: the rate
    /// limit, then the inbox (which keeps arrival order).
    fn accept(
        self: &Arc<Self>,
        job: Job<A>,
        socket: SocketRef<A>,
        io: SocketIo<A>,
    ) -> impl Future<Output = ()> + Send + use<A> {
        let verdict = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).check(Instant::now());
        let pushed = match verdict {
            Verdict::Allow => self.inbox.push(job),
            Verdict::Refuse | Verdict::Disconnect => Push::Full(job),
        };
        // A refused event is answered (`rate-limited`) right here, before any disconnect.
        let drain = self.schedule(pushed, socket.clone(), io);
        if verdict == Verdict::Disconnect {
            warn!(conn_id = %self.id, "disconnected for flooding: events kept coming past the rate limit");
            let _ = socket.disconnect();
        }
        drain
    }

    pub(super) fn remember(&self, room: &RoomId, user: &UserId) {
        let mut seats = self.seats.lock().unwrap_or_else(|p| p.into_inner());
        seats.retain(|(r, _)| r != room);
        seats.push((room.clone(), user.clone()));
    }

    pub(super) fn forget(&self, room: &RoomId) {
        self.seats.lock().unwrap_or_else(|p| p.into_inner()).retain(|(r, _)| r != room);
    }

    /// Whether another room would exceed `MAX_ROOMS_PER_CONNECTION`.
    pub(super) fn room_limit_reached(&self, room: &RoomId) -> bool {
        let seats = self.seats.lock().unwrap_or_else(|p| p.into_inner());
        !seats.iter().any(|(r, _)| r == room) && seats.len() >= self.state.config.max_rooms_per_connection
    }

    fn seats(&self) -> Vec<(RoomId, UserId)> {
        self.seats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The future a handler returns: drains the inbox if this push made it busy.
    fn schedule(
        self: &Arc<Self>,
        pushed: Push<Job<A>>,
        socket: SocketRef<A>,
        io: SocketIo<A>,
    ) -> impl Future<Output = ()> + Send + use<A> {
        let conn = self.clone();
        let drain = match pushed {
            Push::Drain => true,
            Push::Queued => false,
            Push::Full(job) => {
                job.refuse(&socket, SignalError::Overloaded);
                false
            }
            Push::Closed(job) => {
                job.refuse(&socket, SignalError::Closing);
                false
            }
        };
        async move {
            if drain {
                conn.drain(socket, io).await;
            }
        }
    }

    async fn drain(&self, socket: SocketRef<A>, io: SocketIo<A>) {
        let ctx = super::handlers::Ctx { conn: self, socket: &socket, io: &io };
        let mut handled: u32 = 0;
        while let Some(job) = self.inbox.next() {
            if AssertUnwindSafe(ctx.handle(job)).catch_unwind().await.is_err() {
                error!(conn_id = %self.id, "event handler panicked; the connection goes on");
            }
            handled = handled.wrapping_add(1);
            if handled.is_multiple_of(64) {
                // A long burst must not hold a worker thread from other connections.
                tokio::task::yield_now().await;
            }
        }
    }
}

impl<A: Adapter> Job<A> {
    fn refuse(self, socket: &SocketRef<A>, why: SignalError) {
        match self {
            Job::Event { event, reply, .. } => reply.refuse(socket, event.name(), why),
            Job::Unknown { name, reply } => reply.refuse(socket, &name, why),
            Job::Disconnect(_) => {}
        }
    }
}
