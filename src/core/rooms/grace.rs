//! Seat grace (issue 20): a connection on `/` that closed abruptly keeps its
//! seats for `RESUME_GRACE_MS`. Peers are not told; relays to it are kept
//! (at most `RESUME_BUFFER_EVENTS` a seat) and acked as queued. The same
//! user joining again (any connection, any instance) resumes the seat: it
//! gets `room-users`, then the kept relays in the order sent, then live ones,
//! and peers hear nothing. When the grace ends unresumed, the connection
//! leaves as if it had closed then: peers get `user-left`, and each sender of
//! a kept relay gets `relay-expired`.
//!
//! Between the close and the hold being written, the connection is parked
//! ([`crate::core::Courier::park`]): a relay from this instance that finds it
//! gone waits for the hold and is kept then; one from another instance is
//! kept by the courier and handed to the store by the hold.
//!
//! Storms: the clean-up of closed connections (holding, leaving, grace
//! ending) runs at most [`super::held::SETTLING_AT_ONCE`] at a time per instance, so
//! thousands of connections dropped together queue for the store instead of
//! piling up thousands of round trips at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Rooms;
pub use super::held::Graces;
use crate::core::Core;
use crate::core::courier::Parking;
use crate::core::event::Event;
use crate::domain::signal::SignalKind;
use crate::domain::{ConnId, RoomId, Route, UserId};
use crate::metrics::GraceOutcome;
use crate::store::rooms::Intent;
use crate::store::rooms::grace::{HeldSeat, Keeping, KeptRelay};

/// Kept relays handed over per store call on a resume.
const HAND_OVER_BATCH: usize = 64;

/// What became of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Handed to the target's connection.
    Delivered,
    /// Kept for the target's held seat.
    Kept,
}

/// What a relay that found its target's connection gone waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settling {
    /// It is not closing (gone for good, or seat grace is off).
    NotClosing,
    /// Its seats are held or given up now.
    Settled,
    /// Its hold was not written in time (the store is slow).
    TimedOut,
}

/// How long a relay that found its target gone waits for the target's hold.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// How long it waits for the target's close to be known at all (it follows
/// its socket's failure within milliseconds).
const UNSEEN_CLOSE_WAIT: Duration = Duration::from_millis(500);

impl Rooms<'_> {
    /// `conn` has just closed (its clean-up is queued): parked until its
    /// seats are held or given up, if seat grace is on.
    pub fn closing(&self, conn: &ConnId) {
        if self.0.config.grace.on() {
            self.0.courier.park(conn);
            self.0.graces.settled.notify_waiters();
        }
    }

    /// A relay from `from` found `conn` gone: waits until its seats are held
    /// or given up, if it is closing (at most [`SETTLE_WAIT`], or
    /// [`UNSEEN_CLOSE_WAIT`] while its close is not known yet). A sender that
    /// is closing itself does not wait: two closing connections relaying to
    /// each other would each wait for the other's clean-up, queued behind.
    pub(super) async fn settled(&self, from: &ConnId, conn: &ConnId) -> Settling {
        let core = self.0;
        if !core.config.grace.on() || core.courier.parking(from) != Parking::No {
            return Settling::NotClosing;
        }
        let start = Instant::now();
        loop {
            let woken = core.graces.settled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let deadline = match core.courier.parking(conn) {
                Parking::Settled => return Settling::Settled,
                Parking::Parked => start + SETTLE_WAIT,
                // Still attached: its close is not known here yet.
                Parking::No if core.courier.local(conn).is_some() => start + UNSEEN_CLOSE_WAIT,
                Parking::No => return Settling::NotClosing,
            };
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return match core.courier.parking(conn) {
                    Parking::No => Settling::NotClosing,
                    _ => Settling::TimedOut,
                };
            }
        }
    }

    /// `conn` closed on purpose: what was parked for it is not delivered.
    pub async fn left_on_purpose(&self, conn: &ConnId) {
        self.leave_all(conn, true).await;
        self.0.courier.unpark(conn, false);
        self.0.graces.settled.notify_waiters();
    }

    /// Ends `conn`'s parking: what other instances sent it meanwhile is kept
    /// for the seats `held` (in the order it came), and waiting relays go on.
    async fn unpark(&self, conn: &ConnId, held: &[HeldSeat]) {
        let core = self.0;
        for event in core.courier.unpark(conn, !held.is_empty()) {
            let user = |room: &RoomId| held.iter().find(|s| &s.room == room).map(|s| s.user.clone());
            self.adopt(conn, event, user).await;
        }
        core.graces.settled.notify_waiters();
    }

    /// Keeps `event`, a relay sent to `conn` after it closed, for the seat
    /// `user_in` says `conn` holds in its room.
    async fn adopt(&self, conn: &ConnId, event: Event, user_in: impl Fn(&RoomId) -> Option<UserId>) {
        let core = self.0;
        let Event::Relay { room, sender, kind, body } = event else { return };
        let Some(user) = user_in(&room) else { return };
        let kept = KeptRelay { sender, kind, body };
        let max = core.config.grace.resume_buffer_events;
        match core.stores.rooms.keep(&room, &user, &kept, max).await {
            Ok(Keeping::Kept) => core.metrics.grace(GraceOutcome::Kept, 1),
            other => warn!(conn_id = %conn, room_id = %room, outcome = ?other,
                "a relay sent to a connection as it dropped was not kept"),
        }
    }

    /// `conn` closed abruptly: its seats are held for the grace (or, with
    /// seat grace off or nothing to hold, given up as [`Self::leave_all`] does).
    pub async fn hold_all(&self, conn: &ConnId) {
        let core = self.0;
        let grace = core.config.grace.resume_grace;
        if grace.is_zero() {
            self.leave_all(conn, true).await;
            return;
        }
        let permit = core.graces.settling.acquire().await;
        let held = core.stores.rooms.hold(conn, grace.as_millis() as u64).await;
        self.unpark(conn, held.as_deref().unwrap_or_default()).await;
        drop(permit);
        match held {
            Ok(held) if held.is_empty() => {
                self.leave_all(conn, true).await;
            }
            Ok(held) => {
                core.metrics.grace(GraceOutcome::Held, held.len() as u64);
                core.seats.hold(conn);
                for seat in &held {
                    info!(conn_id = %conn, room_id = %seat.room, user_id = %seat.user, grace_ms = grace.as_millis() as u64,
                        "seat held");
                }
                core.graces.push(conn.clone(), Instant::now() + grace);
            }
            Err(e) => {
                // As a failed leave: the reconcile after the outage removes them, peers told then.
                core.seats.clear(conn);
                drop(core.reported(e, "disconnect"));
            }
        }
    }

    /// Keeps a relay for the held seat `route` leads to; delivers it instead
    /// if the seat was resumed and handed over meanwhile.
    pub(super) async fn keep(
        &self,
        room: &RoomId,
        target: &UserId,
        route: Route,
        kind: SignalKind,
        body: serde_json::Value,
    ) -> Result<Relayed, crate::core::CoreError> {
        let core = self.0;
        let kept = KeptRelay { sender: route.sender, kind, body };
        let max = core.config.grace.resume_buffer_events;
        let keeping =
            core.stores.rooms.keep(room, target, &kept, max).await.map_err(|e| core.reported(e, kind.name()))?;
        let to = match keeping {
            Keeping::Kept => {
                core.metrics.grace(GraceOutcome::Kept, 1);
                return Ok(Relayed::Kept);
            }
            Keeping::Full => return Err(crate::core::CoreError::TargetBusy),
            Keeping::Live(conn) => conn,
            Keeping::NotHeld => route.target,
        };
        let relayed = Event::Relay { room: room.clone(), sender: kept.sender, kind, body: kept.body };
        core.courier.send(&to, &relayed).await?;
        Ok(Relayed::Delivered)
    }

    /// `conn` resumed `user`'s held seat in `room` (it was `replaced`'s):
    /// the kept relays go to it in the order sent, then the hold ends.
    pub(super) async fn hand_over(&self, conn: &ConnId, replaced: &ConnId, room: &RoomId, user: &UserId) {
        let core = self.0;
        core.seats.forget(replaced, room);
        let mut handed = 0;
        loop {
            let kept = match core.stores.rooms.take_kept(room, user, conn, HAND_OVER_BATCH).await {
                Ok(kept) if kept.is_empty() => break,
                Ok(kept) => kept,
                Err(e) => {
                    warn!(conn_id = %conn, room_id = %room, error = %core.reported(e, "resume"),
                        "kept relays not handed over: the seat stays held until it is joined again");
                    return;
                }
            };
            for k in kept {
                let relayed = Event::Relay { room: room.clone(), sender: k.sender, kind: k.kind, body: k.body };
                match core.courier.send(conn, &relayed).await {
                    Ok(()) => handed += 1,
                    Err(e) => warn!(conn_id = %conn, room_id = %room, error = %e, "a kept relay was not delivered"),
                }
            }
        }
        core.metrics.grace(GraceOutcome::Resumed, 1);
        info!(conn_id = %conn, replaced = %replaced, room_id = %room, user_id = %user, handed_over = handed, "seat resumed");
    }
}

/// Ends the grace of held connections as it runs out, until aborted: each
/// leaves as [`Rooms::leave_all`] has it (peers told, senders of kept relays
/// told). Meanwhile relays other instances send to them are kept.
pub async fn run(core: Arc<Core>) {
    loop {
        match core.graces.ended(Instant::now()) {
            Ok(ended) => {
                let rooms = core.rooms();
                let rooms = &rooms;
                let leaving = ended.iter().map(|conn| async move {
                    let expired = rooms.leave_all(conn, true).await;
                    rooms.0.courier.forget_held(conn);
                    rooms.0.metrics.grace(GraceOutcome::Expired, expired as u64);
                    debug!(conn_id = %conn, expired, "seat grace ended");
                });
                // Bounded by the settling permits each takes.
                futures_util::future::join_all(leaving).await;
            }
            Err(Some(next)) => {
                let wait = next.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = core.graces.woken.notified() => {}
                }
            }
            Err(None) => core.graces.woken.notified().await,
        }
    }
}

/// Keeps the relays other instances send to this instance's held
/// connections ([`crate::core::Courier::orphans`]), until aborted.
pub async fn adopt_orphans(core: Arc<Core>) {
    let mut orphans = core.courier.orphans();
    while let Some((conn, event)) = orphans.recv().await {
        let seats = &core.seats;
        core.rooms().adopt(&conn, event, |room| seats.holds(&conn, room)).await;
    }
}
