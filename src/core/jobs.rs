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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use tracing::{info, warn};

use super::Core;
use crate::metrics::SignalOutcome;

/// The lease's name in the device store: its holder is the cluster's leader.
pub const LEASE: &str = "leader";

/// Whether this instance holds the leader lease, fenced by time: a holder
/// counts as one only until the lease it last renewed would run out,
/// measured from when the renewal was sent on a clock that counts pauses.
/// An instance stopped past its lease (`kill -STOP`, a VM pause) therefore
/// runs no job on waking before it has renewed, while another instance may
/// have taken the lease meanwhile.
#[derive(Default)]
pub struct Leadership {
    held: AtomicBool,
    /// Until when (ms since `started`) the last renewal vouches.
    until_ms: AtomicU64,
    started: std::sync::OnceLock<Instant>,
    #[cfg(test)]
    skipped: AtomicU64,
}

impl Leadership {
    fn now_ms(&self) -> u64 {
        let now = self.started.get_or_init(Instant::now).elapsed().as_millis() as u64;
        #[cfg(test)]
        let now = now + self.skipped.load(Ordering::Acquire);
        now
    }

    /// Makes `by` pass for this instance (tests: a pause without waiting one out).
    #[cfg(test)]
    fn skip(&self, by: Duration) {
        self.skipped.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }

    /// Whether this instance holds the lease now.
    pub fn holds(&self) -> bool {
        self.held.load(Ordering::Acquire) && self.now_ms() < self.until_ms.load(Ordering::Acquire)
    }

    /// Records a renewal's outcome: `held` for `ttl` from `sent` (taken by
    /// [`Self::mark`] before it was sent); whether that changed.
    fn record(&self, held: bool, sent: u64, ttl: Duration) -> bool {
        self.until_ms.store(if held { sent + ttl.as_millis() as u64 } else { 0 }, Ordering::Release);
        held != self.held.swap(held, Ordering::AcqRel)
    }

    /// The moment to pass to [`Self::record`]: now, before a renewal is sent.
    fn mark(&self) -> u64 {
        self.now_ms()
    }
}

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
    let holds = || core.leader.holds();
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
        let sent = core.leader.mark();
        let held = match core.stores.lease.hold(LEASE, &core.instance, ttl).await {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "cannot renew the presence jobs lease");
                false
            }
        };
        if core.leader.record(held, sent, ttl) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_runs_jobs_only_while_its_last_renewal_vouches_for_the_lease() {
        let leadership = Leadership::default();
        assert!(!leadership.holds(), "not before a renewal");
        let sent = leadership.mark();
        assert!(leadership.record(true, sent, Duration::from_millis(40)), "became the leader");
        assert!(leadership.holds());
        // As after a pause past the lease: no renewal came.
        leadership.skip(Duration::from_millis(50));
        assert!(!leadership.holds(), "the lease may be another's by now");
        assert!(!leadership.record(true, leadership.mark(), Duration::from_secs(10)), "still the holder: no change");
        assert!(leadership.holds(), "renewed");
        assert!(leadership.record(false, leadership.mark(), Duration::from_secs(10)));
        assert!(!leadership.holds());
    }
}
