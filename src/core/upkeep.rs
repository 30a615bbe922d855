//! Cluster upkeep: the background task of an instance in cluster mode.
//!
//! Every `INSTANCE_TTL_MS / 4` (at most every second) it refreshes this
//! instance's heartbeat and removes the participants of instances whose
//! heartbeat expired, telling their peers `user-left`, and re-publishes this
//! instance's directory client count. It is also the Redis health monitor: a
//! failed round marks Redis down (`/health` 503, one warning per outage), and
//! so does a subscriber that has not re-subscribed yet (this instance would
//! not hear the others); the first round with both marks it up (one info
//! line) and reconciles this instance's rooms with Redis, which may have lost
//! them. An instance killed outright (`kill -9`) is therefore out of every
//! room within `INSTANCE_TTL_MS x 1.25` (12.5 s by default), plus the time to
//! reach its peers.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Core;
use super::event::Event;
use super::groups::Group;
use crate::cluster::redis::Subscriptions;
use crate::store::StoreError;
use crate::store::rooms::LeaveOutcome;

/// Runs until aborted.
pub async fn run(core: Arc<Core>, subscriptions: Subscriptions) {
    let period = (core.config.instance_ttl / 4).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    let mut reconcile_due = false;
    loop {
        tick.tick().await;
        // The heartbeat is refreshed even while the subscriber is away: this
        // instance is alive, and its seats must not be taken for a dead one's.
        let left = match core.stores.rooms.maintain().await {
            Ok(left) => left,
            Err(e) => {
                if went_down(&core) {
                    warn!(error = %e, "Redis unreachable: events that need it fail with `unavailable` until it returns");
                }
                reconcile_due = true;
                continue;
            }
        };
        announce_left(&core, left, "left room (its instance died)").await;
        if !subscriptions.ready() {
            if went_down(&core) {
                warn!("Redis unreachable for pub/sub: nothing other instances send reaches this one until it returns");
            }
            reconcile_due = true;
            continue;
        }
        if core.health.set_redis_up(true) {
            info!("Redis reachable again; reconciling this instance's rooms");
        }
        core.courier.publish_count(&Group::Directory).await;
        if reconcile_due {
            match reconcile(&core).await {
                Ok(()) => reconcile_due = false,
                Err(e) => warn!(error = %e, "reconciling with Redis failed; retrying"),
            }
        }
    }
}

/// Marks Redis down; true if it was up, so an outage is logged once.
fn went_down(core: &Core) -> bool {
    let was_up = !core.health.down();
    core.health.set_redis_up(false);
    was_up
}

/// Puts this instance's live seats back and removes its ghosts, telling peers.
async fn reconcile(core: &Arc<Core>) -> Result<(), StoreError> {
    let live = core.rooms().live_seats();
    let done = core.stores.rooms.reconcile(&live, core.config.max_room_size).await?;
    for seat in &done.restored {
        let joined = Event::UserJoined { room: seat.room.clone(), user: seat.user.clone() };
        core.courier.notify(&seat.peers, &joined).await;
    }
    info!(restored = done.restored.len(), removed = done.removed.len(), "reconciled with Redis");
    announce_left(core, done.removed, "left room (gone while Redis was down)").await;
    Ok(())
}

async fn announce_left(core: &Arc<Core>, left: Vec<LeaveOutcome>, why: &str) {
    let rooms = core.rooms();
    for out in left {
        rooms.departed(&out, true, None, Some(why)).await;
    }
}
