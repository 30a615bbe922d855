//! Rooms: taking and leaving seats, relays between participants, and what
//! peers are told. Used by every protocol that seats clients in rooms (`/`,
//! `/dashboard`, and the raw protocols to come); approval and hosts are in
//! [`approval`], held seats and their resumption in [`grace`].
//!
//! Must not import `transport`, nor any socket.io or HTTP crate (as all of `core`).

pub mod approval;
pub mod grace;
pub mod held;
pub mod seats;

pub use grace::Relayed;
use grace::Settling;

use std::sync::Arc;

use serde_json::Value;
use tracing::{debug, info};

use super::courier::DeliveryError;
use super::event::Event;
use super::{Core, CoreError};
use crate::domain::signal::SignalKind;
use crate::domain::{ConnId, Joined, RoomError, RoomId, UserId};
use crate::metrics::GraceOutcome;
use crate::store::rooms::{Intent, JoinOutcome, LeaveOutcome, RoomPage, RoomSnapshot};

/// Who asks: a connection, the user its token names (with `JWT_SECRET`
/// set), and whether its protocol tells peers of its joins and departures
/// (`user-joined` / `user-left`).
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// The asking connection.
    pub conn: &'a ConnId,
    /// The token's user, when tokens are required.
    pub token_user: Option<&'a UserId>,
    /// Whether peers hear of this connection's joins and departures.
    pub announced: bool,
}

impl Actor<'_> {
    /// With JWT on, `user` must be the token's user.
    pub fn may_act_as(&self, user: &UserId) -> Result<(), CoreError> {
        match self.token_user {
            Some(sub) if sub != user => Err(CoreError::NotYourUser(sub.clone())),
            _ => Ok(()),
        }
    }
}

/// The room operations (a view over [`Core`]).
pub struct Rooms<'a>(pub(super) &'a Arc<Core>);

impl Rooms<'_> {
    /// Seats `user` on the actor's connection in `room` (created if absent).
    /// Announced actors' peers get `UserJoined` and the joiner `RoomUsers`.
    pub async fn join(&self, by: Actor<'_>, room: &RoomId, user: &UserId) -> Result<JoinOutcome, CoreError> {
        let core = self.0;
        by.may_act_as(user)?;
        let max = core.config.max_rooms_per_connection;
        if core.seats.limit_reached(by.conn, room, max) {
            return Err(CoreError::TooManyRooms(max));
        }
        // Recorded first, so a reconcile meanwhile keeps the seat (see `seats`);
        // undone if the store refused or did not answer.
        let before = core.seats.remember(by.conn, room, user);
        let out = match core.stores.rooms.join(room, user, by.conn, core.config.max_room_size).await {
            Ok(out) => out,
            Err(e) => {
                core.seats.undo(by.conn, room, before);
                return Err(core.reported(e, "join-room").into());
            }
        };
        // A seat already held that this connection was not told of (an
        // earlier join answered `unavailable` that Redis applied anyway) is
        // news to the peers too.
        // A resumed seat is no news: peers never heard it left.
        let resumed = matches!(out.joined, Joined::Resumed { .. });
        let news = !resumed && (out.joined != Joined::Already || before.as_ref() != Some(user));
        if news {
            core.rooms_changed.notify_one();
        }
        if by.announced {
            if news {
                let joined = Event::UserJoined { room: room.clone(), user: user.clone() };
                core.courier.notify(&out.peers, &joined).await;
            }
            let users = Event::RoomUsers { room: room.clone(), users: out.users.clone() };
            if let Err(e) = core.courier.send(by.conn, &users).await {
                debug!(conn_id = %by.conn, error = %e, "room-users not delivered");
            }
        }
        if let Joined::Resumed { replaced } = &out.joined {
            self.hand_over(by.conn, replaced, room, user).await;
        }
        let replaced = match &out.joined {
            Joined::Rejoined { replaced } | Joined::Resumed { replaced } => Some(replaced.as_str()),
            _ => None,
        };
        info!(conn_id = %by.conn, room_id = %room, user_id = %user, replaced, "joined room");
        Ok(out)
    }

    /// Gives up the actor's seat in `room` and tells whoever must hear.
    pub async fn leave(&self, by: Actor<'_>, room: &RoomId) -> Result<(), CoreError> {
        let core = self.0;
        // Given up first, so a reconcile meanwhile does not put it back.
        let before = core.seats.forget(by.conn, room);
        let left = match core.stores.rooms.leave(room, by.conn).await {
            Ok(left) => left,
            Err(e) => {
                core.seats.undo(by.conn, room, before);
                return Err(core.reported(e, "leave-room").into());
            }
        };
        match (left, before) {
            (Some(out), _) => self.departed(&out, by.announced, Some(by.conn), None).await,
            // Removed meanwhile by a reconcile, which told the peers.
            (None, Some(_)) => {}
            (None, None) => return Err(RoomError::NotInRoom.into()),
        }
        Ok(())
    }

    /// Gives up every seat of `conn`, which has closed. A store that cannot
    /// be reached now has them removed when it is back (reconciliation).
    /// An event answered `unavailable` (here: join, leave, create) did not
    /// happen as far as this instance knows; if Redis applied it anyway, the
    /// next reconcile undoes it and tells the peers.
    /// How many seats it gave up.
    pub async fn leave_all(&self, conn: &ConnId, announced: bool) -> usize {
        let core = self.0;
        core.seats.clear(conn);
        let permit = core.graces.settling.acquire().await;
        let left = core.stores.rooms.leave_all(conn).await;
        drop(permit);
        match left {
            Ok(left) => {
                for out in &left {
                    self.departed(out, announced, Some(conn), None).await;
                }
                left.len()
            }
            Err(e) => {
                drop(core.reported(e, "disconnect"));
                0
            }
        }
    }

    /// `offer`, `answer` and `ice-candidate`: one path, to the target's
    /// connection only, or kept for its held seat.
    pub async fn relay(
        &self,
        by: Actor<'_>,
        room: &RoomId,
        target: &UserId,
        kind: SignalKind,
        body: Value,
    ) -> Result<Relayed, CoreError> {
        let core = self.0;
        let route = core.stores.rooms.route(room, by.conn, target).await;
        let route = route.map_err(|e| core.reported(e, kind.name()))?;
        let done = if route.held {
            self.keep(room, target, route, kind, body).await?
        } else {
            let to = route.target;
            let relayed = Event::Relay { room: room.clone(), sender: route.sender, kind, body };
            match core.courier.send(&to, &relayed).await {
                Ok(()) => Relayed::Delivered,
                // Its connection has just dropped: once its seat is held, keep it there.
                Err(DeliveryError::Gone) => match self.settled(by.conn, &to).await {
                    Settling::NotClosing => return Err(CoreError::TargetGone),
                    Settling::TimedOut => return Err(CoreError::Unavailable),
                    Settling::Settled => {
                        let Event::Relay { body, .. } = relayed else { unreachable!("built above") };
                        let route = core.stores.rooms.route(room, by.conn, target).await;
                        let route = route.map_err(|e| core.reported(e, kind.name()))?;
                        // Still its seat, not held: the hold failed for want of the store.
                        if !route.held && route.target == to {
                            return Err(CoreError::Unavailable);
                        }
                        self.keep(room, target, route, kind, body).await?
                    }
                },
                Err(e) => return Err(e.into()),
            }
        };
        if done == Relayed::Delivered {
            core.metrics.relayed(kind.name());
        }
        debug!(conn_id = %by.conn, room_id = %room, target_id = %target, event = kind.name(), ?done, "relayed");
        Ok(done)
    }

    /// Tells `out`'s peers that its user left (when announced), and the
    /// room's participants of a new host; the directory is refreshed. `why`
    /// says why a connection that is not here left (its instance died).
    pub async fn departed(&self, out: &LeaveOutcome, announced: bool, conn: Option<&ConnId>, why: Option<&str>) {
        let core = self.0;
        if announced {
            let left = Event::UserLeft { room: out.room.clone(), user: out.user.clone() };
            core.courier.notify(&out.peers, &left).await;
        }
        for unsent in &out.unsent {
            core.metrics.grace(GraceOutcome::Unsent, unsent.count as u64);
            let expired = Event::RelayExpired { room: out.room.clone(), target: out.user.clone(), count: unsent.count };
            if let Err(e) = core.courier.send(&unsent.conn, &expired).await {
                debug!(conn_id = %unsent.conn, error = %e, "relay-expired not delivered");
            }
        }
        self.host_changed(out).await;
        core.rooms_changed.notify_one();
        let conn_id = conn.map(ConnId::as_str);
        info!(conn_id, room_id = %out.room, user_id = %out.user, room_deleted = out.room_deleted, why, "left room");
    }

    /// A page of rooms, oldest first.
    pub async fn page(&self, offset: usize, limit: usize) -> Result<RoomPage, CoreError> {
        let core = self.0;
        Ok(core.stores.rooms.list(offset, limit).await.map_err(|e| core.reported(e, "room listing"))?)
    }

    /// One room, if it exists.
    pub async fn get(&self, room: &RoomId) -> Result<Option<RoomSnapshot>, CoreError> {
        let core = self.0;
        Ok(core.stores.rooms.room(room).await.map_err(|e| core.reported(e, "room lookup"))?)
    }

    /// Seats of local connections, as the store must have them (reconciliation).
    pub fn intent(&self) -> &seats::SeatBook {
        &self.0.seats
    }

    /// `seat` could not be put back after Redis lost it: its connection no longer holds it.
    pub fn forget_lost(&self, seat: &crate::store::rooms::LostSeat) {
        let seats = &self.0.seats;
        if seats.holds(&seat.conn, &seat.room).as_ref() == Some(&seat.user) {
            seats.forget(&seat.conn, &seat.room);
        }
    }

    /// Completes at the next room change made here.
    pub async fn changed(&self) {
        self.0.rooms_changed.notified().await;
    }
}
