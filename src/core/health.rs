//! Whether this instance can do its work: in cluster mode, whether Redis
//! answers and this instance hears the others (kept by the upkeep task), and
//! the one way a store failure is logged: once when an outage starts and once
//! when it ends, not once per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::store::StoreFailure;

/// Redis's health as this instance sees it (`None` without Redis).
pub struct Health {
    redis_up: Option<AtomicBool>,
    /// A store call failed for want of the store since the last reconcile:
    /// what Redis did with it is not known until the next one.
    unsettled: AtomicBool,
    /// Store calls that failed for want of the store, counted.
    failures: AtomicU64,
    /// [`Self::failures`] as it was when the last upkeep round that reached
    /// Redis began: events fail at once while more have failed since
    /// ([`Self::failing_fast`]).
    cleared: AtomicU64,
}

impl Health {
    /// Health for a cluster (`clustered`) or a single instance.
    pub fn new(clustered: bool) -> Self {
        Self {
            redis_up: clustered.then(|| AtomicBool::new(true)),
            unsettled: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
        }
    }

    /// `None` without Redis; otherwise whether Redis answered last time.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis_up.as_ref().map(|up| up.load(Ordering::Relaxed))
    }

    /// Whether the instance is down (cluster mode, Redis unreachable).
    pub fn down(&self) -> bool {
        self.redis_up() == Some(false)
    }

    /// Records whether Redis answers; whether that changed.
    pub fn set_redis_up(&self, up: bool) -> bool {
        self.redis_up.as_ref().is_some_and(|flag| flag.swap(up, Ordering::Relaxed) != up)
    }

    /// Whether events that need Redis should fail at once: a call has just
    /// timed out or failed and no upkeep round has reached Redis since.
    /// Without it a connection's queued events would each wait out
    /// `REDIS_TIMEOUT_MS` in turn; with it an event waits at most one
    /// timeout (its own, or the one before it that opened the gate) plus its
    /// own work. Closed again by the next good round (within a second).
    pub fn failing_fast(&self) -> bool {
        self.redis_up.is_some() && self.failures.load(Ordering::Acquire) > self.cleared.load(Ordering::Acquire)
    }

    /// An upkeep round could not reach Redis: events fail at once.
    pub fn unreached(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
    }

    /// To note before an upkeep round, and hand to [`Self::reached`].
    pub fn round_begins(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// An upkeep round that began at `begun` reached Redis: events go
    /// through again, unless a call failed after it began (then the gate
    /// stays shut until a later round).
    pub fn reached(&self, begun: u64) {
        self.cleared.fetch_max(begun, Ordering::AcqRel);
    }

    /// Whether a store call failed since the last call of this (and so
    /// this instance must reconcile); clears it.
    pub fn take_unsettled(&self) -> bool {
        self.unsettled.swap(false, Ordering::AcqRel)
    }

    /// Logs a store call that failed for want of the store, notes that a
    /// reconcile is due, and hands the error back. While an outage is known, at debug only; a failure the
    /// upkeep has not seen yet (the first second of an outage, a slow
    /// Redis) is a warning, at most one a second whatever the rate.
    pub fn reported<E: StoreFailure>(&self, e: E, during: &'static str) -> E {
        let Some(cause) = e.unavailable() else { return e };
        self.unsettled.store(true, Ordering::Release);
        self.failures.fetch_add(1, Ordering::AcqRel);
        if self.down() {
            tracing::debug!(%cause, during, "state store unavailable");
            return e;
        }
        static WARNING: crate::domain::rate::OncePerSecond = crate::domain::rate::OncePerSecond::new();
        if WARNING.ready(crate::domain::now_ms()) {
            tracing::warn!(%cause, during, "state store unavailable");
        }
        e
    }
}
