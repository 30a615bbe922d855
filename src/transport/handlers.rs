//! The event handlers of the default namespace, run one at a time per
//! connection by its drainer ([`super::socket`]).
//!
//! Delivery: relays go to the target's own connection with a synchronous
//! `emit`, whose error is the truth about delivery. A full outgoing queue is
//! `target-busy`, a closed one `target-not-found`; the sender always hears.
//! Offer, answer and ice-candidate share one relay path.

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use tracing::{debug, info, warn};

use super::auth::Authenticated;
use super::deliver::{deliver, notify};
use super::error::SignalError;
use super::events::{AckOk, ClientEvent, Presence, ROOM_USERS, RelayKind, Relayed, RoomUsers, USER_JOINED, USER_LEFT};
use super::payload;
use super::socket::{Connection, Job};
use crate::domain::{ConnId, Joined, RoomError};
use crate::store::rooms::LeaveOutcome;

/// What handling one job needs.
pub(super) struct Ctx<'a, A: Adapter> {
    pub(super) conn: &'a Connection<A>,
    pub(super) socket: &'a SocketRef<A>,
    pub(super) io: &'a SocketIo<A>,
}

impl<A: Adapter> Ctx<'_, A> {
    /// Runs one job to completion and answers the client.
    pub(super) async fn handle(&self, job: Job<A>) {
        match job {
            Job::Event { event, payload, reply } => {
                let result = match event {
                    ClientEvent::JoinRoom => self.join(payload).await,
                    ClientEvent::LeaveRoom => self.leave(payload).await,
                    ClientEvent::Relay(kind) => self.relay(kind, payload).await,
                    ClientEvent::Decide(approve) => {
                        let state = &self.conn.state;
                        super::dashboard::decide(self.io, state, &self.conn.id, payload, approve)
                            .await
                            .map(|_| AckOk::ok())
                    }
                };
                reply.send(self.socket, event.name(), result);
            }
            Job::Unknown { name, reply } => {
                let err = SignalError::UnknownEvent(name.clone());
                reply.refuse(self.socket, &name, err);
            }
            Job::Disconnect(reason) => self.disconnect(reason).await,
        }
    }

    async fn join(&self, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::join(payload)?;
        let state = &self.conn.state;
        if let Some(Authenticated(sub)) = self.socket.extensions.get::<Authenticated>()
            && sub != req.user
        {
            return Err(SignalError::Unauthorized(sub));
        }
        if self.conn.room_limit_reached(&req.room) {
            return Err(SignalError::TooManyRooms(state.config.max_rooms_per_connection));
        }
        let joined = state.store.join(&req.room, &req.user, &self.conn.id, state.config.max_room_size).await;
        let out = joined.map_err(|e| state.reported(e, "join-room"))?;
        if out.joined != Joined::Already {
            self.notify(&out.peers, USER_JOINED, &Presence { room_id: &req.room, user_id: &req.user }).await;
            state.directory.notify_one();
        }
        if let Err(err) = self.socket.emit(ROOM_USERS, &RoomUsers { room_id: &req.room, users: &out.users }) {
            warn!(conn_id = %self.conn.id, %err, "room-users not delivered");
        }
        let replaced = match &out.joined {
            Joined::Rejoined { replaced } => Some(replaced.as_str()),
            _ => None,
        };
        self.conn.remember(&req.room, &req.user);
        info!(conn_id = %self.conn.id, room_id = %req.room, user_id = %req.user, replaced, "joined room");
        Ok(AckOk::joined(req.room, out.users))
    }

    async fn leave(&self, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::leave(payload)?;
        let left = self.conn.state.store.leave(&req.room, &self.conn.id).await;
        let out = left.map_err(|e| self.conn.state.reported(e, "leave-room"))?;
        self.conn.forget(&req.room);
        self.announce_left(&out.ok_or(RoomError::NotInRoom)?).await;
        Ok(AckOk::room(req.room))
    }

    /// `offer`, `answer` and `ice-candidate`: one path, to the target's connection only.
    async fn relay(&self, kind: RelayKind, payload: Option<Value>) -> Result<AckOk, SignalError> {
        let req = payload::relay(kind, payload)?;
        let route = self.conn.state.store.route(&req.room, &self.conn.id, &req.target).await;
        let route = route.map_err(|e| self.conn.state.reported(e, kind.event()))?;
        let relayed = Relayed { room_id: &req.room, sender_id: &route.sender, kind, body: &req.body };
        deliver(self.io, self.conn.state.reach(), &route.target, kind.event(), &relayed).await?;
        self.conn.state.metrics.relayed(kind.event());
        debug!(conn_id = %self.conn.id, room_id = %req.room, sender_id = %route.sender,
            target_id = %req.target, event = kind.event(), "relayed");
        Ok(AckOk::ok())
    }

    async fn disconnect(&self, reason: DisconnectReason) {
        match self.conn.state.store.leave_all(&self.conn.id).await {
            Ok(left) => {
                for out in &left {
                    self.announce_left(out).await;
                }
            }
            // Its seats are removed when the store is back (reconciliation).
            Err(e) => drop(self.conn.state.reported(e, "disconnect")),
        }
        self.conn.count_out();
        info!(conn_id = %self.conn.id, ?reason, "disconnected");
    }

    async fn announce_left(&self, out: &LeaveOutcome) {
        self.notify(&out.peers, USER_LEFT, &Presence { room_id: &out.room, user_id: &out.user }).await;
        super::dashboard::host_changed(self.io, &self.conn.state, out).await;
        self.conn.state.directory.notify_one();
        info!(conn_id = %self.conn.id, room_id = %out.room, user_id = %out.user,
            room_deleted = out.room_deleted, "left room");
    }

    async fn notify(&self, peers: &[ConnId], event: &str, data: &impl Serialize) {
        notify(self.io, self.conn.state.reach(), peers, event, data).await;
    }
}
