//! Cluster upkeep: the background task of an instance in cluster mode.
//!
//! Every `INSTANCE_TTL_MS / 4` it refreshes this instance's heartbeat and
//! removes the participants of instances whose heartbeat expired, telling
//! their peers `user-left`. An instance killed outright (`kill -9`) is
//! therefore out of every room within `INSTANCE_TTL_MS x 1.25` (12.5 s by
//! default), plus the time to reach its peers.

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use tracing::{debug, info};

use super::deliver::notify;
use super::events::{Presence, USER_LEFT};
use crate::state::AppState;

/// Runs until aborted.
pub async fn run<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let mut tick = tokio::time::interval(state.config.instance_ttl / 4);
    loop {
        tick.tick().await;
        match state.store.maintain().await {
            Ok(left) => {
                for out in left {
                    let presence = Presence {
                        room_id: &out.room,
                        user_id: &out.user,
                    };
                    notify(&io, state.reach(), &out.peers, USER_LEFT, &presence).await;
                    info!(room_id = %out.room, user_id = %out.user, room_deleted = out.room_deleted,
                        "left room (its instance died)");
                }
            }
            // Outages are reported once per change by the Redis health monitor.
            Err(e) => debug!(error = %e, "cluster upkeep failed"),
        }
    }
}
