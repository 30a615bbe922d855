//! Per-connection ordering of incoming events.
//!
//! socketioxide calls an event handler synchronously when the packet arrives,
//! in arrival order, and then `tokio::spawn`s the future it returns. On the
//! multi-thread runtime those tasks start in any order (measured: a burst of
//! 5,000 events came back with up to 470 adjacent pairs swapped), so a relay
//! could overtake an earlier one and ICE candidates could reach a peer before
//! the offer they belong to.
//!
//! The fix: the synchronous part of each handler [`push`](Inbox::push)es the
//! event onto this queue, which records arrival order whatever the runtime.
//! The first push into an idle inbox is told [`Push::Drain`]: its task becomes
//! the drainer and handles events one at a time, in order, until the queue is
//! empty ([`next`](Inbox::next)). Other pushes only queue. No task per
//! connection sits idle, and order holds even when handling awaits (a Redis
//! store later). The queue is bounded: past `capacity` a push is refused so a
//! flooding client is told `rate-limited` instead of growing memory.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The outcome of [`Inbox::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Push<J> {
    /// Queued, and no drainer is running: the caller must drain.
    Drain,
    /// Queued behind a running drainer.
    Queued,
    /// Not queued: the inbox is full. The job is handed back.
    Full(J),
    /// Not queued: the inbox is closed (the connection is going away).
    Closed(J),
}

struct State<J> {
    /// The oldest waiting job when it is the only one: the usual case of a
    /// connection that sends one event at a time needs no queue storage.
    first: Option<J>,
    /// The jobs after `first`; allocated only by bursts, freed when drained.
    jobs: VecDeque<J>,
    draining: bool,
    closed: bool,
}

impl<J> State<J> {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.jobs.len()
    }
}

/// A bounded FIFO of jobs with at most one drainer at a time.
pub struct Inbox<J> {
    state: Mutex<State<J>>,
    capacity: usize,
}

impl<J> Inbox<J> {
    /// An empty inbox holding at most `capacity` waiting jobs.
    pub fn new(capacity: usize) -> Self {
        let state = State { first: None, jobs: VecDeque::new(), draining: false, closed: false };
        Self { state: Mutex::new(state), capacity }
    }

    /// Queues `job` in arrival order.
    pub fn push(&self, job: J) -> Push<J> {
        let mut state = self.lock();
        if state.closed {
            return Push::Closed(job);
        }
        if state.len() >= self.capacity {
            return Push::Full(job);
        }
        Self::enqueue(&mut state, job)
    }

    /// Queues a final job even when full, and refuses every later push.
    pub fn push_last(&self, job: J) -> Push<J> {
        let mut state = self.lock();
        if state.closed {
            return Push::Closed(job);
        }
        state.closed = true;
        Self::enqueue(&mut state, job)
    }

    /// For the drainer: the next job, or `None` when the queue is empty, in
    /// which case draining has ended and the next push starts a new drainer.
    pub fn next(&self) -> Option<J> {
        let mut state = self.lock();
        let job = state.first.take().or_else(|| state.jobs.pop_front());
        if job.is_none() {
            state.draining = false;
            if state.jobs.capacity() > 0 {
                // An idle connection keeps no queue storage (288 bytes each,
                // thousands of idle peers); only a burst allocates it again.
                state.jobs = VecDeque::new();
            }
        }
        job
    }

    fn enqueue(state: &mut State<J>, job: J) -> Push<J> {
        // `first` is filled only when nothing waits, so it is always the oldest.
        if state.len() == 0 {
            state.first = Some(job);
        } else {
            state.jobs.push_back(job);
        }
        if state.draining {
            Push::Queued
        } else {
            state.draining = true;
            Push::Drain
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<J>> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (every critical section is a single push, pop or flag update).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_push_drains_and_later_ones_queue() {
        let inbox = Inbox::new(8);
        assert_eq!(inbox.push(1), Push::Drain);
        assert_eq!(inbox.push(2), Push::Queued);
        assert_eq!(inbox.push(3), Push::Queued);
        assert_eq!((inbox.next(), inbox.next(), inbox.next()), (Some(1), Some(2), Some(3)));
        assert_eq!(inbox.next(), None);
        assert_eq!(inbox.push(4), Push::Drain, "an emptied inbox needs a new drainer");
    }

    #[test]
    fn one_event_at_a_time_needs_no_queue_storage() {
        let inbox = Inbox::new(8);
        for i in 0..3 {
            assert_eq!(inbox.push(i), Push::Drain);
            assert_eq!(inbox.lock().jobs.capacity(), 0, "the only waiting job is kept inline");
            assert_eq!((inbox.next(), inbox.next()), (Some(i), None));
        }
    }

    #[test]
    fn a_drained_inbox_holds_no_storage() {
        let inbox = Inbox::new(8);
        inbox.push(1);
        inbox.push(2);
        assert!(inbox.lock().jobs.capacity() >= 2);
        while inbox.next().is_some() {}
        assert_eq!(inbox.lock().jobs.capacity(), 0);
    }

    #[test]
    fn a_push_during_draining_is_picked_up_by_the_running_drainer() {
        let inbox = Inbox::new(8);
        assert_eq!(inbox.push('a'), Push::Drain);
        assert_eq!(inbox.next(), Some('a'));
        assert_eq!(inbox.push('b'), Push::Queued, "the drainer has not seen an empty queue yet");
        assert_eq!(inbox.next(), Some('b'));
        assert_eq!(inbox.next(), None);
    }

    #[test]
    fn a_full_inbox_refuses_and_hands_the_job_back() {
        let inbox = Inbox::new(2);
        inbox.push(1);
        inbox.push(2);
        assert_eq!(inbox.push(3), Push::Full(3));
        inbox.next();
        assert_eq!(inbox.push(3), Push::Queued);
    }

    #[test]
    fn the_last_job_gets_in_even_when_full_and_closes_the_inbox() {
        let inbox = Inbox::new(1);
        inbox.push("event");
        assert_eq!(inbox.push_last("disconnect"), Push::Queued);
        assert_eq!(inbox.push("late"), Push::Closed("late"));
        assert_eq!(inbox.push_last("again"), Push::Closed("again"));
        assert_eq!((inbox.next(), inbox.next(), inbox.next()), (Some("event"), Some("disconnect"), None));
    }

    #[test]
    fn order_holds_across_threads_pushing_through_one_drainer() {
        use std::sync::Arc;
        let inbox = Arc::new(Inbox::new(100_000));
        let producer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    while let Push::Full(_) = inbox.push(i) {}
                }
            })
        };
        let mut seen = Vec::with_capacity(20_000);
        while seen.len() < 20_000 {
            if let Some(i) = inbox.next() {
                seen.push(i);
            }
        }
        producer.join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] + 1 == w[1]));
    }
}
