//! Seed 004's background jobs: the presence sweep (every
//! `PRESENCE_CLEANUP_INTERVAL`: devices silent for `DEVICE_TTL_MINUTES` go
//! offline, records past an hour are deleted), coordinator promotion (every
//! `COORDINATOR_CHECK_INTERVAL`: each network gets back to
//! `MIN_COORDINATORS_PER_NETWORK` online coordinators, promoting exactly the
//! number missing) and signal expiry (every `SIGNAL_EXPIRY_INTERVAL`: signals
//! older than `SIGNALING_TTL_HOURS` leave their queue and their senders get
//! `signal-expired`); and, for seed 002's workers, forgetting those silent
//! for `WORKER_RETENTION_MS` (every quarter of it), such as the workers of a
//! front server that died.
//!
//! The rules are in [`crate::domain`]; this runs them on time and logs what
//! changed. In a cluster they run on one instance at a time: the leader, the
//! holder of the `leader` lease ([`crate::cluster::lease`], seed 002's leader
//! election), renewed every third of `JOB_LEASE_MS`; when its holder dies
//! another instance takes it within `JOB_LEASE_MS` plus a third.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use tracing::{info, warn};

use super::Core;
use crate::metrics::SignalOutcome;

/// The lease's name in the device store: its holder is the cluster's leader.
pub const LEASE: &str = "leader";

/// Runs the jobs, when this instance holds the lease, until the task is aborted.
pub async fn run(core: Arc<Core>) {
    let config = core.config.presence.clone();
    // Renewed on its own task, so a long job cannot let the lease lapse; the
    // set aborts it when this task ends.
    let mut renewal = JoinSet::new();
    renewal.spawn(keep_lease(core.clone()));
    let mut sweep = tokio::time::interval(config.cleanup_interval);
    let mut promote = tokio::time::interval(config.coordinator_interval);
    let mut expire = tokio::time::interval(config.expiry_interval);
    let retention = core.config.workers.retention;
    let mut forget = tokio::time::interval((retention / 4).max(Duration::from_millis(100)));
    let holds = || core.leader.load(Ordering::Acquire);
    loop {
        tokio::select! {
            _ = sweep.tick() => if holds() {
                match core.stores.devices.presence.sweep(SystemTime::now(), config.device_ttl).await {
                    Ok(done) if !done.went_offline.is_empty() || done.deleted > 0 => {
                        info!(offline = done.went_offline.len(), deleted = done.deleted, "presence sweep");
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "presence sweep failed"),
                }
            },
            _ = promote.tick() => if holds() && config.min_coordinators > 0 {
                match core.stores.devices.presence.promote(config.min_coordinators).await {
                    Ok(promoted) => {
                        for d in promoted {
                            info!(network_id = %d.network, device_id = %d.id, "device promoted to coordinator");
                        }
                    }
                    Err(e) => warn!(error = %e, "coordinator promotion failed"),
                }
            },
            _ = expire.tick() => if holds() {
                expire_signals(&core).await;
            },
            _ = forget.tick() => if holds() {
                let silent_since = crate::domain::now_ms().saturating_sub(retention.as_millis() as u64);
                match core.stores.workers.forget_silent(silent_since).await {
                    Ok(gone) if !gone.is_empty() => info!(workers = ?gone, "silent workers forgotten"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "forgetting silent workers failed"),
                }
            },
        }
    }
}

/// Takes or renews the lease every third of `JOB_LEASE_MS`, and keeps
/// `holder` saying whether this instance holds it.
async fn keep_lease(core: Arc<Core>) {
    let ttl = core.config.presence.job_lease;
    let mut renew = tokio::time::interval(ttl / 3);
    loop {
        renew.tick().await;
        let held = match core.stores.lease.hold(LEASE, &core.instance, ttl).await {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "cannot renew the presence jobs lease");
                false
            }
        };
        if held != core.leader.swap(held, Ordering::AcqRel) {
            if held {
                info!(instance = %core.instance, "this instance is the leader: it runs the cluster-wide jobs");
            } else {
                info!(instance = %core.instance, "this instance is no longer the leader");
            }
        }
    }
}

async fn expire_signals(core: &Core) {
    let expired = match core.stores.devices.queues.expire(SystemTime::now(), core.config.presence.signal_ttl).await {
        Ok(expired) => expired,
        Err(e) => return warn!(error = %e, "signal expiry failed"),
    };
    core.metrics.signal(SignalOutcome::Expired, expired.len() as u64);
    for e in &expired {
        info!(device_id = %e.sender, to_device_id = %e.to, kind = e.kind.name(), "signal expired unconfirmed");
        if let Err(err) = core.stores.devices.endpoints.wake(&e.sender).await {
            // The notice waits in the store; the sender gets it when it next connects.
            warn!(error = %err, "could not wake the sender of an expired signal");
        }
    }
}
