//! The per-connection pipeline every protocol's connections go through:
//! events are handled one at a time in arrival order ([`Inbox`]), within the
//! connection's rate limit (`EVENTS_PER_SECOND`, `EVENT_BURST`) and pending
//! limit (`MAX_PENDING_EVENTS`); a connection that keeps flooding past the
//! rate limit (`RATE_LIMIT_DISCONNECT_AFTER` refusals within ten seconds) is
//! to be disconnected; and the connection's clean-up runs last, after every
//! event that came before it (run beside a pending event, it could be undone
//! by one: a room joined just before the client left would keep a seat for a
//! connection that is gone). Once the clean-up is queued, later events are
//! refused as closing.

use std::sync::Mutex;
use std::time::Instant;

use super::inbox::{Inbox, Push};
use crate::config::Config;
use crate::domain::rate::{Limiter, Verdict};
use crate::transport::wire::error::SignalError;

/// Why an event was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It came faster than the rate limit allows.
    RateLimited,
    /// Too many events are waiting on this connection.
    Overloaded,
    /// The connection is closing.
    Closing,
}

impl From<Refusal> for SignalError {
    fn from(why: Refusal) -> Self {
        match why {
            Refusal::RateLimited => SignalError::RateLimited,
            Refusal::Overloaded => SignalError::Overloaded,
            Refusal::Closing => SignalError::Closing,
        }
    }
}

/// What became of an event at arrival.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted<J> {
    /// Queued, and no drainer runs: the caller drains ([`Pipeline::next`]).
    Drain,
    /// Queued behind a running drainer.
    Queued,
    /// Not queued (answer it with the refusal); `flood` says the connection
    /// must be disconnected for sustained flooding.
    Refused {
        /// The job handed back.
        job: J,
        /// Why.
        why: Refusal,
        /// Disconnect the connection.
        flood: bool,
    },
}

/// One connection's queue of jobs and its rate limiter.
pub struct Pipeline<J> {
    inbox: Inbox<J>,
    limiter: Mutex<Limiter>,
}

impl<J> Pipeline<J> {
    /// A pipeline sized and limited by the configuration.
    pub fn new(config: &Config) -> Self {
        let limiter = Limiter::new(
            f64::from(config.events_per_second),
            f64::from(config.event_burst),
            config.rate_limit_disconnect_after,
            Instant::now(),
        );
        Self { inbox: Inbox::new(config.max_pending_events), limiter: Mutex::new(limiter) }
    }

    /// The synchronous part of every event, at arrival: the rate limit, then the queue.
    pub fn accept(&self, job: J) -> Accepted<J> {
        let verdict = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).check(Instant::now());
        if verdict != Verdict::Allow {
            return Accepted::Refused { job, why: Refusal::RateLimited, flood: verdict == Verdict::Disconnect };
        }
        match self.inbox.push(job) {
            Push::Drain => Accepted::Drain,
            Push::Queued => Accepted::Queued,
            Push::Full(job) => Accepted::Refused { job, why: Refusal::Overloaded, flood: false },
            Push::Closed(job) => Accepted::Refused { job, why: Refusal::Closing, flood: false },
        }
    }

    /// Queues the connection's clean-up, after everything before it; true
    /// if the caller must drain. Later events are refused as closing.
    pub fn close(&self, cleanup: J) -> bool {
        matches!(self.inbox.push_last(cleanup), Push::Drain)
    }

    /// For the drainer: the next job, or `None` when the queue is empty (the
    /// next arrival starts a new drainer).
    pub fn next(&self) -> Option<J> {
        self.inbox.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_second: u32, burst: u32, pending: usize) -> Config {
        Config { events_per_second: per_second, event_burst: burst, max_pending_events: pending, ..Config::default() }
    }

    #[test]
    fn events_past_the_burst_are_refused_as_rate_limited_and_sustained_flooding_disconnects() {
        let config = Config { rate_limit_disconnect_after: 3, ..config(1, 2, 100) };
        let pipeline = Pipeline::new(&config);
        assert_eq!(pipeline.accept(1), Accepted::Drain);
        assert_eq!(pipeline.accept(2), Accepted::Queued);
        let refusals: Vec<_> = (3..6)
            .map(|n| match pipeline.accept(n) {
                Accepted::Refused { why, flood, .. } => (why, flood),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            refusals,
            [(Refusal::RateLimited, false), (Refusal::RateLimited, false), (Refusal::RateLimited, true)]
        );
    }

    #[test]
    fn a_full_queue_refuses_as_overloaded_and_the_clean_up_comes_last_and_closes() {
        let pipeline = Pipeline::new(&config(1000, 1000, 1));
        assert_eq!(pipeline.accept("a"), Accepted::Drain);
        assert!(matches!(pipeline.accept("b"), Accepted::Refused { why: Refusal::Overloaded, flood: false, .. }));
        assert!(!pipeline.close("cleanup"), "a drainer runs already");
        assert!(matches!(pipeline.accept("c"), Accepted::Refused { why: Refusal::Closing, .. }));
        assert_eq!((pipeline.next(), pipeline.next(), pipeline.next()), (Some("a"), Some("cleanup"), None));
    }
}
