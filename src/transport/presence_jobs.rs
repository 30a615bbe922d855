//! Seed 004's background jobs: the presence sweep (every
//! `PRESENCE_CLEANUP_INTERVAL`: devices silent for `DEVICE_TTL_MINUTES` go
//! offline, records past an hour are deleted) and coordinator promotion (every
//! `COORDINATOR_CHECK_INTERVAL`: each network gets back to
//! `MIN_COORDINATORS_PER_NETWORK` online coordinators, promoting exactly the
//! number missing). The rules are in [`crate::domain::presence`]; this only
//! runs them on time and logs what changed. One instance runs them today (the
//! device store is in memory).

use std::time::SystemTime;

use tracing::{info, warn};

use crate::state::AppState;

/// Runs both jobs until the task is aborted.
pub async fn run(state: AppState) {
    let config = state.config.presence.clone();
    let mut sweep = tokio::time::interval(config.cleanup_interval);
    let mut promote = tokio::time::interval(config.coordinator_interval);
    loop {
        tokio::select! {
            _ = sweep.tick() => match state.devices.sweep(SystemTime::now(), config.device_ttl).await {
                Ok(done) if !done.went_offline.is_empty() || done.deleted > 0 => {
                    info!(offline = done.went_offline.len(), deleted = done.deleted, "presence sweep");
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "presence sweep failed"),
            },
            _ = promote.tick(), if config.min_coordinators > 0 => match state.devices.promote(config.min_coordinators).await {
                Ok(promoted) => {
                    for d in promoted {
                        info!(network_id = %d.network, device_id = %d.id, "device promoted to coordinator");
                    }
                }
                Err(e) => warn!(error = %e, "coordinator promotion failed"),
            },
        }
    }
}
