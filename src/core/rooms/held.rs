//! This instance's held connections, in the order their grace ends, and the
//! permits that bound the clean-up of closed connections (seat grace: see
//! [`super::grace`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::domain::ConnId;

/// Clean-ups of closed connections run at once on one instance, at most.
pub const SETTLING_AT_ONCE: usize = 64;

/// This instance's connections whose seats are held, by when their grace
/// ends (the grace is one length, so they end in the order they came), and
/// the permits that bound clean-ups.
pub struct Graces {
    due: Mutex<VecDeque<(Instant, ConnId)>>,
    pub(super) woken: Notify,
    /// Woken each time a parked connection's hold is settled.
    pub(super) settled: Notify,
    /// One per clean-up of a closed connection running.
    pub settling: Semaphore,
}

impl Default for Graces {
    fn default() -> Self {
        let settling = Semaphore::new(SETTLING_AT_ONCE);
        Self { due: Mutex::default(), woken: Notify::new(), settled: Notify::new(), settling }
    }
}

impl Graces {
    pub(super) fn push(&self, conn: ConnId, ends: Instant) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let first = due.is_empty();
        due.push_back((ends, conn));
        if first {
            self.woken.notify_one();
        }
    }

    /// The connections whose grace has ended by `now`, or when the next ends.
    pub(super) fn ended(&self, now: Instant) -> Result<Vec<ConnId>, Option<Instant>> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let n = due.iter().take_while(|(ends, _)| *ends <= now).count();
        if n == 0 {
            return Err(due.front().map(|(ends, _)| *ends));
        }
        Ok(due.drain(..n).map(|(_, conn)| conn).collect())
    }
}
