//! Cluster upkeep: the background task of an instance in cluster mode.
//!
//! Every `INSTANCE_TTL_MS / 4` (at most every second) it refreshes this
//! instance's heartbeat and removes the participants of instances whose
//! heartbeat expired, telling their peers `user-left` (and deleting the mesh
//! clients and device endpoints they left), and re-publishes this
//! instance's directory client count. It is also the Redis health monitor: a
//! failed round marks Redis down (`/health` 503, one warning per outage), and
//! so does a subscriber that has not re-subscribed yet (this instance would
//! not hear the others); the first round with both marks it up (one info
//! line). An instance killed outright (`kill -9`) is therefore out of every
//! room within `INSTANCE_TTL_MS x 1.25` (12.5 s by default), plus the time to
//! reach its peers.
//!
//! It reconciles this instance's rooms with Redis (the store is made to hold
//! exactly the seats of this instance's live connections, peers told of each
//! change) on the first good round after any of:
//! - an outage (Redis down, or the subscriber away);
//! - a heartbeat that found Redis had lost its data, or this instance's own
//!   heartbeat lapsed (paused, or Redis stalled, past its TTL: survivors may
//!   have removed its participants);
//! - any store call that failed for want of Redis (its outcome is unknown).
//!
//! The same reconcile puts back the `/mesh` clients, `/devices` endpoints
//! and PeerJS ids of this instance's live connections where Redis no longer has them (the
//! election loop then fills empty admin seats); workers put themselves back
//! with their next heartbeat.
//!
//! A seat that cannot be put back (the user's seat moved to another
//! connection, or the room filled up meanwhile) is not kept in secret: its
//! connection gets `user-left` for itself, and is closed.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Core;
use super::event::Event;
use super::groups::Group;
use crate::cluster::redis::Subscriptions;
use crate::store::rooms::{LeaveOutcome, LostSeat};
use crate::store::{Lapse, StoreError};

/// Runs until aborted.
pub async fn run(core: Arc<Core>, subscriptions: Subscriptions) {
    let period = (core.config.instance_ttl / 4).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    let mut reconcile_due = false;
    loop {
        tick.tick().await;
        // The heartbeat is refreshed even while the subscriber is away: this
        // instance is alive, and its seats must not be taken for a dead one's.
        let begun = core.health.round_begins();
        let upkept = match core.stores.rooms.maintain().await {
            Ok(upkept) => {
                core.health.reached(begun);
                upkept
            }
            Err(e) => {
                core.health.unreached();
                if went_down(&core) {
                    warn!(error = %e, "Redis unreachable: events that need it fail with `unavailable` until it returns");
                }
                reconcile_due = true;
                continue;
            }
        };
        if let Some(lapse) = upkept.lapse {
            lapsed(&core, lapse);
            reconcile_due = true;
        }
        announce_left(&core, upkept.left, "left room (its instance died)").await;
        for dead in &upkept.reaped {
            forget_instance(&core, dead).await;
        }
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
        if core.health.take_unsettled() {
            reconcile_due = true;
        }
        if reconcile_due {
            match reconcile(&core).await {
                Ok(()) => reconcile_due = false,
                Err(e) => warn!(error = %e, "reconciling with Redis failed; retrying"),
            }
        }
    }
}

/// Says what the heartbeat found: a warning when nothing else showed it
/// (no outage was seen), else part of the outage's story.
fn lapsed(core: &Core, lapse: Lapse) {
    let what = match lapse {
        Lapse::DataLost => {
            "Redis lost its data (restarted empty, failed over or flushed): putting back what this instance's connections hold"
        }
        Lapse::TakenForDead => {
            "this instance's heartbeat had lapsed (paused, or Redis stalled, past INSTANCE_TTL_MS): others may have taken it for dead; putting back what its connections hold"
        }
    };
    if core.health.down() {
        info!(lapse = ?lapse, "{what}");
    } else {
        warn!(lapse = ?lapse, "{what}");
    }
}

/// Deletes the mesh clients and device endpoints a reaped instance left.
async fn forget_instance(core: &Core, dead: &str) {
    let mesh = core.stores.mesh.forget_instance(dead).await;
    let endpoints = core.stores.devices.endpoints.forget_instance(dead).await;
    let peers = core.stores.peers.forget_instance(dead).await;
    match (mesh, endpoints, peers) {
        (Ok(mesh), Ok(endpoints), Ok(peers)) => {
            info!(
                instance = dead,
                mesh_clients = mesh,
                device_endpoints = endpoints,
                peerjs_ids = peers,
                "deleted what a dead instance left"
            );
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            warn!(instance = dead, error = %e, "deleting what a dead instance left failed")
        }
    }
}

/// Marks Redis down; true if it was up, so an outage is logged once.
fn went_down(core: &Core) -> bool {
    let was_up = !core.health.down();
    core.health.set_redis_up(false);
    was_up
}

/// Makes Redis hold exactly this instance's live seats, telling peers.
async fn reconcile(core: &Arc<Core>) -> Result<(), StoreError> {
    let rooms = core.rooms();
    let done = core.stores.rooms.reconcile(rooms.intent(), core.config.max_room_size).await?;
    for seat in &done.restored {
        let joined = Event::UserJoined { room: seat.room.clone(), user: seat.user.clone() };
        core.courier.notify(&seat.peers, &joined).await;
    }
    // Mesh clients and device endpoints of live connections, where Redis lost them.
    let mesh = core.mesh().restore().await?;
    let devices = super::devices::mailbox::restore_endpoints(core).await?;
    let peers = core.peerjs().restore().await?;
    info!(
        restored = done.restored.len(),
        removed = done.removed.len(),
        lost = done.lost.len(),
        mesh_clients = mesh,
        device_endpoints = devices,
        peerjs_ids = peers,
        "reconciled with Redis"
    );
    announce_left(core, done.removed, "left room (its seat was not this instance's to keep)").await;
    for seat in &done.lost {
        lost(core, seat).await;
    }
    Ok(())
}

/// A live connection's seat that cannot be put back: it is told, and closed.
async fn lost(core: &Arc<Core>, seat: &LostSeat) {
    core.rooms().forget_lost(seat);
    let left = Event::UserLeft { room: seat.room.clone(), user: seat.user.clone() };
    let _ = core.courier.send(&seat.conn, &left).await;
    warn!(conn_id = %seat.conn, room_id = %seat.room, user_id = %seat.user, moved = seat.moved,
        "a seat lost while Redis was away cannot be put back: its connection is told and closed");
    core.courier.close(&seat.conn).await;
}

async fn announce_left(core: &Arc<Core>, left: Vec<LeaveOutcome>, why: &str) {
    let rooms = core.rooms();
    for out in left {
        rooms.departed(&out, true, None, Some(why)).await;
    }
}
