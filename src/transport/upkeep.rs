//! Cluster upkeep: the background task of an instance in cluster mode.
//!
//! Every `INSTANCE_TTL_MS / 4` (at most every second) it refreshes this
//! instance's heartbeat and removes the participants of instances whose
//! heartbeat expired, telling their peers `user-left`. It is also the Redis
//! health monitor: a failed round marks Redis down (`/health` 503, one warning
//! per outage), and so does a subscriber that has not re-subscribed yet (this
//! instance would not hear the others); the first round with both marks it up
//! (one info line) and reconciles this instance's rooms with Redis, which may
//! have lost them. An instance killed outright (`kill -9`) is
//! therefore out of every room within `INSTANCE_TTL_MS x 1.25` (12.5 s by
//! default), plus the time to reach its peers.

use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use tracing::{info, warn};

use super::deliver::notify;
use super::events::{Presence, USER_JOINED, USER_LEFT};
use super::socket;
use crate::cluster::redis::Subscriptions;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::rooms::LeaveOutcome;

/// Runs until aborted.
pub async fn run<A: Adapter>(io: SocketIo<A>, state: AppState, subscriptions: Subscriptions) {
    let period = (state.config.instance_ttl / 4).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    let mut reconcile_due = false;
    loop {
        tick.tick().await;
        // The heartbeat is refreshed even while the subscriber is away: this
        // instance is alive, and its seats must not be taken for a dead one's.
        let left = match state.store.maintain().await {
            Ok(left) => left,
            Err(e) => {
                if went_down(&state) {
                    warn!(error = %e, "Redis unreachable: events that need it fail with `unavailable` until it returns");
                }
                reconcile_due = true;
                continue;
            }
        };
        announce_left(&io, &state, left, "left room (its instance died)").await;
        if !subscriptions.ready() {
            if went_down(&state) {
                warn!("Redis unreachable for pub/sub: nothing other instances send reaches this one until it returns");
            }
            reconcile_due = true;
            continue;
        }
        if state.redis_up() == Some(false) {
            info!("Redis reachable again; reconciling this instance's rooms");
            state.set_redis_up(true);
        }
        if reconcile_due {
            match reconcile(&io, &state).await {
                Ok(()) => reconcile_due = false,
                Err(e) => warn!(error = %e, "reconciling with Redis failed; retrying"),
            }
        }
    }
}

/// Marks Redis down; true if it was up, so an outage is logged once.
fn went_down(state: &AppState) -> bool {
    let was_up = state.redis_up() != Some(false);
    state.set_redis_up(false);
    was_up
}

/// Puts this instance's live seats back and removes its ghosts, telling peers.
async fn reconcile<A: Adapter>(io: &SocketIo<A>, state: &AppState) -> Result<(), StoreError> {
    let live = socket::live_seats(io);
    let done = state.store.reconcile(&live, state.config.max_room_size).await?;
    for seat in &done.restored {
        let presence = Presence { room_id: &seat.room, user_id: &seat.user };
        notify(io, state.reach(), &seat.peers, USER_JOINED, &presence).await;
    }
    info!(restored = done.restored.len(), removed = done.removed.len(), "reconciled with Redis");
    announce_left(io, state, done.removed, "left room (gone while Redis was down)").await;
    Ok(())
}

async fn announce_left<A: Adapter>(io: &SocketIo<A>, state: &AppState, left: Vec<LeaveOutcome>, why: &str) {
    if !left.is_empty() {
        state.directory.notify_one();
    }
    for out in left {
        let presence = Presence { room_id: &out.room, user_id: &out.user };
        notify(io, state.reach(), &out.peers, USER_LEFT, &presence).await;
        super::dashboard::host_changed(io, state, &out).await;
        info!(room_id = %out.room, user_id = %out.user, room_deleted = out.room_deleted, why, "left room");
    }
}
