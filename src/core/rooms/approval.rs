//! Rooms with a host (made on the directory, seed 001): creating one with
//! its metadata, join requests the host approves or rejects (or that lapse
//! after `JOIN_REQUEST_TIMEOUT_MS`), display names, and the hand-over to the
//! next participant when the host leaves. Whoever waits on a request is in
//! the group [`Group::Waiting`], so the decision reaches it from any instance.
//! New requests to one room are limited ([`JOIN_REQUESTS_PER_SECOND`], a
//! burst of [`JOIN_REQUEST_BURST`], per instance): each asks its host and arms
//! a timer, so nobody can flood a host with requests in many users' names.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::{Actor, Rooms};
use crate::core::CoreError;
use crate::core::event::Event;
use crate::core::groups::Group;
use crate::domain::{Request, RoomError, RoomId, RoomMeta, UserId, now_ms};
use crate::store::rooms::{Intent, LeaveOutcome};

/// Why a request was rejected without the host's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapse {
    /// Unanswered until its deadline.
    Timeout,
    /// Its room closed meanwhile.
    RoomClosed,
}

impl Lapse {
    fn reason(self) -> &'static str {
        match self {
            Lapse::Timeout => "timeout",
            Lapse::RoomClosed => "room-closed",
        }
    }
}

/// New join requests one room's host gets per second, sustained (per instance).
pub const JOIN_REQUESTS_PER_SECOND: f64 = 2.0;
/// New join requests one room's host may get at once.
pub const JOIN_REQUEST_BURST: f64 = 20.0;

impl Rooms<'_> {
    /// Creates `room` with `meta`, its host seated on the actor's connection.
    pub async fn create(&self, by: Actor<'_>, room: &RoomId, meta: RoomMeta) -> Result<(), CoreError> {
        let core = self.0;
        by.may_act_as(&meta.host_id)?;
        let max = core.config.max_rooms_per_connection;
        if core.seats.limit_reached(by.conn, room, max) {
            return Err(CoreError::TooManyRooms(max));
        }
        let host = meta.host_id.clone();
        // Recorded first, so a reconcile meanwhile keeps the seat (see `seats`).
        let before = core.seats.remember(by.conn, room, &host);
        if let Err(e) = core.stores.rooms.create(room, meta, by.conn).await {
            core.seats.undo(by.conn, room, before);
            return Err(core.reported(e, "room-created").into());
        }
        core.rooms_changed.notify_one();
        info!(conn_id = %by.conn, room_id = %room, host_id = %host, "room created");
        Ok(())
    }

    /// `user-left-room { roomId, userId }`: `user`'s seat in `room` is given
    /// up. The connection holding it may give it up (its own seat); the
    /// room's host may remove anyone's; anyone else gets `not-host` (a user
    /// not in the room: `target-not-found`). A seat
    /// removed by the host is given up on its holder's behalf: its holder is
    /// not told (as a departure on the directory tells nobody), and if that
    /// holder is on another instance, that instance still counts it against
    /// `MAX_ROOMS_PER_CONNECTION` until it closes.
    pub async fn remove(&self, by: Actor<'_>, room: &RoomId, user: &UserId) -> Result<(), CoreError> {
        let core = self.0;
        if core.seats.holds(by.conn, room).as_ref() == Some(user) {
            return self.leave(by, room).await;
        }
        let snapshot = self.get(room).await?.ok_or(RoomError::NoSuchRoom)?;
        if !snapshot.participants.contains(user) {
            return Err(RoomError::TargetNotFound.into());
        }
        if snapshot.host_conn.as_ref() != Some(by.conn) {
            return Err(RoomError::NotHost.into());
        }
        let route = core.stores.rooms.route(room, by.conn, user).await;
        let holder = route.map_err(|e| core.reported(e, "user-left-room"))?.target;
        // Given up first (when it is held here), so a reconcile meanwhile does not put it back.
        let before = core.seats.forget(&holder, room);
        match core.stores.rooms.leave(room, &holder).await {
            Ok(Some(out)) => self.departed(&out, by.announced, Some(&holder), Some("removed by the host")).await,
            Ok(None) => return Err(RoomError::TargetNotFound.into()),
            Err(e) => {
                core.seats.undo(&holder, room, before);
                return Err(core.reported(e, "user-left-room").into());
            }
        }
        Ok(())
    }

    /// Records the display name `user` gave in `room`.
    pub async fn name(&self, room: &RoomId, user: &UserId, name: &str) -> Result<(), CoreError> {
        let core = self.0;
        core.stores.rooms.name_user(room, user, name).await.map_err(|e| core.reported(e, "user-joined-room"))?;
        core.rooms_changed.notify_one();
        Ok(())
    }

    /// `user` asks to join `room`: approved at once (already approved), or
    /// pending with the host asked; the actor waits in [`Group::Waiting`].
    pub async fn request(&self, by: Actor<'_>, room: &RoomId, user: &UserId, name: &str) -> Result<Request, CoreError> {
        let core = self.0;
        by.may_act_as(user)?;
        // Only a new request costs a token (it asks the host and arms a timer);
        // once none is left, every request to the room waits, repeats too.
        let wait = core.join_requests.wait(room, Instant::now());
        if !wait.is_zero() {
            return Err(CoreError::TooManyJoinRequests(wait));
        }
        let timeout = core.config.join_request_timeout;
        let now = now_ms();
        let request = core.stores.rooms.request(room, user, now, now + timeout.as_millis() as u64).await;
        let request = request.map_err(|e| core.reported(e, "join-request"))?;
        if request == Request::Approved {
            let approved = Event::JoinDecided { room: room.clone(), user: user.clone(), approved: true, reason: None };
            let _ = core.courier.send(by.conn, &approved).await;
            return Ok(Request::Approved);
        }
        core.courier.groups.join(&Group::Waiting(room.clone(), user.clone()), by.conn);
        if request == Request::StillPending {
            // One timer and one question to the host per waiting request,
            // however often it is repeated.
            return Ok(Request::Pending);
        }
        // Concurrent new requests may all have seen a token: the limit can be overshot by as many.
        let _ = core.join_requests.take(room, Instant::now(), JOIN_REQUESTS_PER_SECOND, JOIN_REQUEST_BURST);
        // Armed before anything can fail, so a request never waits for good.
        let (timer, timer_room, timer_user) = (core.clone(), room.clone(), user.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            timer.rooms().expire(&timer_room, &timer_user).await;
        });
        let host = core.stores.rooms.room(room).await.map_err(|e| core.reported(e, "join-request"))?;
        let host = host.and_then(|r| r.host_conn).ok_or(RoomError::NoSuchRoom)?;
        let ask = Event::JoinRequest { room: room.clone(), user: user.clone(), user_name: name.to_owned() };
        core.courier.send(&host, &ask).await?;
        info!(conn_id = %by.conn, room_id = %room, user_id = %user, "join request sent to the host");
        Ok(Request::Pending)
    }

    /// The host's answer to `user`'s request: the actor must hold the host's
    /// seat; whoever waits gets it, on any instance.
    pub async fn decide(&self, by: Actor<'_>, room: &RoomId, user: &UserId, approve: bool) -> Result<(), CoreError> {
        let core = self.0;
        let during = if approve { "join-approved" } else { "join-rejected" };
        core.stores.rooms.decide(room, by.conn, user, approve).await.map_err(|e| core.reported(e, during))?;
        info!(room_id = %room, user_id = %user, approve, "join request decided by the host");
        self.tell_waiting(room, user, approve, None).await;
        Ok(())
    }

    /// A request's deadline passed: rejected if still waiting, or if its room is gone meanwhile.
    pub async fn expire(&self, room: &RoomId, user: &UserId) {
        let store = &self.0.stores.rooms;
        let lapse = match store.expire_request(room, user, now_ms()).await {
            Ok(true) => Lapse::Timeout,
            Ok(false) if matches!(store.room(room).await, Ok(None)) => Lapse::RoomClosed,
            Ok(false) => return,
            Err(e) => return warn!(error = %e, "could not expire a join request"),
        };
        info!(room_id = %room, user_id = %user, reason = lapse.reason(), "join request expired unanswered: rejected");
        self.tell_waiting(room, user, false, Some(lapse)).await;
    }

    /// Tells a room's participants its host changed, if the one who left hosted it.
    pub async fn host_changed(&self, out: &LeaveOutcome) {
        let core = self.0;
        let Some(host) = &out.new_host else { return };
        let name = match core.stores.rooms.room(&out.room).await {
            Ok(Some(room)) => room.meta.map_or_else(|| host.as_str().to_owned(), |m| m.host),
            _ => host.as_str().to_owned(),
        };
        let changed = Event::HostChanged { room: out.room.clone(), host_id: host.clone(), host: name };
        for peer in &out.peers {
            if let Err(e) = core.courier.send(peer, &changed).await {
                debug!(conn_id = %peer, error = %e, "host-changed not delivered");
            }
        }
        info!(room_id = %out.room, host_id = %host, "room host changed");
    }

    /// Sends a decision to whoever waits on `user`'s request, then ends the wait.
    async fn tell_waiting(&self, room: &RoomId, user: &UserId, approved: bool, lapse: Option<Lapse>) {
        let courier = &self.0.courier;
        let waiting = Group::Waiting(room.clone(), user.clone());
        let reason = lapse.map(|l| l.reason().to_owned());
        let decided = Event::JoinDecided { room: room.clone(), user: user.clone(), approved, reason };
        if let Err(e) = courier.broadcast(&waiting, &decided, None).await {
            debug!(error = %e, "join decision not sent");
        }
        // The request is over: later decisions for it go nowhere.
        courier.dissolve(&waiting).await;
    }
}
