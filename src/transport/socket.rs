//! The default namespace `/`: rooms signaling as contract v1 describes it.
//!
//! [`attach`] registers the handlers in a connect middleware, which runs before
//! the CONNECT ack: registering them in the connect handler (spawned after the
//! ack) could miss a client's first events. Each handler only queues its event
//! on the connection's [`Inbox`] (see there for why); the drainer then runs the
//! events one by one: parse, ask the store, emit, answer.
//!
//! Delivery: relays go to the target's own connection with a synchronous
//! `emit`, whose error is the truth about delivery. A full outgoing queue is
//! `target-busy`, a closed one `target-not-found`; the sender always hears.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{SendError, SocketError, SocketIo};
use tracing::{debug, error, info, warn};

use super::error::{AckError, SignalError, SignalingErrorEvent};
use super::events::*;
use super::inbox::{Inbox, Push};
use super::payload;
use crate::domain::{ConnId, Joined, RoomError};
use crate::state::AppState;
use crate::store::LeaveOutcome;

/// Connect handler: logs the new connection (the handlers are already attached).
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    let transport = socket.transport_type();
    info!(conn_id = %socket.id, ?transport, protocol = ?socket.protocol(), "connected");
}

/// Connect middleware: attaches the event and disconnect handlers to `socket`.
pub async fn attach<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
) -> Result<(), Infallible> {
    let conn = Arc::new(Connection {
        id: ConnId::new(socket.id.as_str()),
        inbox: Inbox::new(state.config.max_pending_events),
        state,
    });
    for event in ClientEvent::ALL {
        let conn = conn.clone();
        socket.on(
            event.name(),
            move |s: SocketRef<A>,
                  io: SocketIo<A>,
                  reply: Reply<A>,
                  TryData(data): TryData<Value>| {
                let pushed = conn.inbox.push(Job::Event {
                    event,
                    payload: data.ok(),
                    reply,
                });
                conn.schedule(pushed, s, io)
            },
        );
    }
    let fallback = conn.clone();
    socket.on_fallback(
        move |s: SocketRef<A>, io: SocketIo<A>, reply: Reply<A>, Event(name): Event| {
            let pushed = fallback.inbox.push(Job::Unknown { name, reply });
            fallback.schedule(pushed, s, io)
        },
    );
    conn.state.stats.connected();
    socket.extensions.insert(conn.clone());
    socket.on_disconnect(
        move |s: SocketRef<A>, io: SocketIo<A>, reason: DisconnectReason| {
            let pushed = conn.inbox.push_last(Job::Disconnect(reason));
            conn.schedule(pushed, s, io)
        },
    );
    Ok(())
}

/// Shutdown: runs every local connection's disconnect clean-up now (rooms left,
/// peers told). `SocketIo::close` removes the namespaces before it closes the
/// transports, so socketioxide never calls the disconnect handlers itself.
/// Completes when the clean-ups have run or been queued behind running drainers.
pub async fn disconnect_all<A: Adapter>(io: &SocketIo<A>) {
    let drains = io.sockets().into_iter().filter_map(|socket| {
        let conn = socket.extensions.get::<Arc<Connection<A>>>()?;
        let pushed = conn
            .inbox
            .push_last(Job::Disconnect(DisconnectReason::ClosingServer));
        Some(conn.schedule(pushed, socket, io.clone()))
    });
    futures_util::future::join_all(drains).await;
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
        Ok(Self {
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wanted: ack_id.is_some(),
        })
    }
}

impl<A: Adapter> Reply<A> {
    fn send(self, socket: &SocketRef<A>, event: &str, result: Result<AckOk, SignalError>) {
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
enum Job<A: Adapter> {
    Event {
        event: ClientEvent,
        payload: Option<Value>,
        reply: Reply<A>,
    },
    Unknown {
        name: String,
        reply: Reply<A>,
    },
    Disconnect(DisconnectReason),
}

/// Per-connection state shared by that socket's handlers.
struct Connection<A: Adapter> {
    id: ConnId,
    inbox: Inbox<Job<A>>,
    state: AppState,
}

impl<A: Adapter> Connection<A> {
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
        let ctx = Ctx {
            conn: self,
            socket: &socket,
            io: &io,
        };
        let mut handled: u32 = 0;
        while let Some(job) = self.inbox.next() {
            if AssertUnwindSafe(ctx.handle(job))
                .catch_unwind()
                .await
                .is_err()
            {
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
            Job::Event { event, reply, .. } => reply.send(socket, event.name(), Err(why)),
            Job::Unknown { name, reply } => reply.send(socket, &name, Err(why)),
            Job::Disconnect(_) => {}
        }
    }
}

/// What handling one job needs.
struct Ctx<'a, A: Adapter> {
    conn: &'a Connection<A>,
    socket: &'a SocketRef<A>,
    io: &'a SocketIo<A>,
}

impl<A: Adapter> Ctx<'_, A> {
    async fn handle(&self, job: Job<A>) {
        match job {
            Job::Event {
                event,
                payload,
                reply,
            } => {
                let result = match event {
                    ClientEvent::JoinRoom => self.join(payload).await,
                    ClientEvent::LeaveRoom => self.leave(payload).await,
                    ClientEvent::Relay(kind) => self.relay(kind, payload).await,
                };
                reply.send(self.socket, event.name(), result);
            }
            Job::Unknown { name, reply } => {
                let err = SignalError::UnknownEvent(name.clone());
                reply.send(self.socket, &name, Err(err));
            }
            Job::Disconnect(reason) => self.disconnect(reason).await,
        }
    }

    async fn join(&self, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::join(payload)?;
        let state = &self.conn.state;
        let out = state
            .store
            .join(
                &req.room,
                &req.user,
                &self.conn.id,
                state.config.max_room_size,
            )
            .await?;
        if out.joined != Joined::Already {
            self.notify(
                &out.peers,
                USER_JOINED,
                &Presence {
                    room_id: &req.room,
                    user_id: &req.user,
                },
            );
        }
        if let Err(err) = self.socket.emit(
            ROOM_USERS,
            &RoomUsers {
                room_id: &req.room,
                users: &out.users,
            },
        ) {
            warn!(conn_id = %self.conn.id, %err, "room-users not delivered");
        }
        let replaced = match &out.joined {
            Joined::Rejoined { replaced } => Some(replaced.as_str()),
            _ => None,
        };
        info!(conn_id = %self.conn.id, room_id = %req.room, user_id = %req.user, replaced, "joined room");
        Ok(AckOk::joined(req.room, out.users))
    }

    async fn leave(&self, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::leave(payload)?;
        let out = self
            .conn
            .state
            .store
            .leave(&req.room, &self.conn.id)
            .await?;
        self.announce_left(&out.ok_or(RoomError::NotInRoom)?);
        Ok(AckOk::room(req.room))
    }

    /// `offer`, `answer` and `ice-candidate`: one path, to the target's connection only.
    async fn relay(&self, kind: RelayKind, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::relay(kind, payload)?;
        let route = self
            .conn
            .state
            .store
            .route(&req.room, &self.conn.id, &req.target)
            .await?;
        let target = self
            .socket_of(&route.target)
            .ok_or(SignalError::TargetGone)?;
        let relayed = Relayed {
            room_id: &req.room,
            sender_id: &route.sender,
            kind,
            body: &req.body,
        };
        target.emit(kind.event(), &relayed).map_err(|e| match e {
            SendError::Socket(SocketError::InternalChannelFull) => SignalError::TargetBusy,
            _ => SignalError::TargetGone,
        })?;
        debug!(conn_id = %self.conn.id, room_id = %req.room, sender_id = %route.sender,
            target_id = %req.target, event = kind.event(), "relayed");
        Ok(AckOk::ok())
    }

    async fn disconnect(&self, reason: DisconnectReason) {
        match self.conn.state.store.leave_all(&self.conn.id).await {
            Ok(left) => left.iter().for_each(|out| self.announce_left(out)),
            Err(e) => {
                error!(conn_id = %self.conn.id, cause = %e, "could not clear the rooms of a closed connection")
            }
        }
        self.conn.state.stats.disconnected();
        info!(conn_id = %self.conn.id, ?reason, "disconnected");
    }

    fn announce_left(&self, out: &LeaveOutcome) {
        self.notify(
            &out.peers,
            USER_LEFT,
            &Presence {
                room_id: &out.room,
                user_id: &out.user,
            },
        );
        info!(conn_id = %self.conn.id, room_id = %out.room, user_id = %out.user,
            room_deleted = out.room_deleted, "left room");
    }

    /// Sends `event` to each peer; a peer that cannot take it is logged, not fatal.
    fn notify(&self, peers: &[ConnId], event: &str, data: &impl Serialize) {
        for peer in peers {
            let sent = match self.socket_of(peer) {
                Some(socket) => socket.emit(event, data),
                None => Err(SendError::Socket(SocketError::Closed)),
            };
            if let Err(err) = sent {
                warn!(conn_id = %peer, event, %err, "notification not delivered");
            }
        }
    }

    fn socket_of(&self, conn: &ConnId) -> Option<SocketRef<A>> {
        Sid::from_str(conn.as_str())
            .ok()
            .and_then(|sid| self.io.get_socket(sid))
    }
}
