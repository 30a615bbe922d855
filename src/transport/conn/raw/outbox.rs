//! A raw connection's outgoing frames: counted in bytes against
//! `SOCKET_BUFFER_BYTES` (a full outbox refuses as busy, as a socket.io
//! connection's does) from when they are queued until they are written out
//! ([`Outbox::written`]), with the confirmations asked for among them, and a
//! close the server asked for. The connection's task takes everything at
//! once when woken ([`Outbox::take`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};

use crate::core::link::Undelivered;

/// One thing to write.
pub(super) enum Out {
    /// A text frame.
    Text(String),
    /// Confirms once the client has read every frame before it (a ping
    /// after them answered: see `socket.rs`).
    Confirm(oneshot::Sender<()>),
}

/// Why the server closes a connection: a WebSocket close code and its reason.
pub(super) type Close = (u16, &'static str);

#[derive(Default)]
struct Queue {
    frames: VecDeque<Out>,
    /// Queued, and taken but not yet written.
    bytes: usize,
    close: Option<Close>,
}

/// The outgoing frames of one connection.
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the connection's task: something to write, or a close.
    pub(super) wake: Notify,
    budget: usize,
}

impl Outbox {
    /// An empty outbox holding at most `budget` bytes (one frame always fits).
    pub(super) fn new(budget: usize) -> Self {
        Self { queue: Mutex::default(), wake: Notify::new(), budget }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `text` (and `confirm` right after it); busy past the budget,
    /// gone once a close was asked for.
    pub(super) fn push(&self, text: String, confirm: Option<oneshot::Sender<()>>) -> Result<(), Undelivered> {
        let mut queue = self.lock();
        if queue.close.is_some() {
            return Err(Undelivered::Gone);
        }
        if queue.bytes > 0 && queue.bytes + text.len() > self.budget {
            return Err(Undelivered::Busy);
        }
        queue.bytes += text.len();
        queue.frames.push_back(Out::Text(text));
        if let Some(confirm) = confirm {
            queue.frames.push_back(Out::Confirm(confirm));
        }
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    /// Asks the connection's task to close with `close` after what is queued
    /// (the first close asked for wins).
    pub(super) fn close(&self, close: Close) {
        self.lock().close.get_or_insert(close);
        self.wake.notify_one();
    }

    /// Everything queued, and the close asked for, if any; its bytes count
    /// until they are [`written`](Self::written).
    pub(super) fn take(&self) -> (VecDeque<Out>, Option<Close>) {
        let mut queue = self.lock();
        (std::mem::take(&mut queue.frames), queue.close)
    }

    /// `bytes` taken were written out: they no longer count.
    pub(super) fn written(&self, bytes: usize) {
        let mut queue = self.lock();
        queue.bytes = queue.bytes.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_budget_refuses_as_busy_but_one_large_frame_fits_and_a_close_ends_sending() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push("x".repeat(25), None), Ok(()), "one frame always fits");
        assert_eq!(outbox.push("y".into(), None), Err(Undelivered::Busy));
        let (frames, close) = outbox.take();
        assert_eq!((frames.len(), close), (1, None));
        assert_eq!(outbox.push("y".into(), None), Err(Undelivered::Busy), "taken but not yet written still counts");
        outbox.written(25);
        assert_eq!(outbox.push("a".repeat(6), None), Ok(()));
        assert_eq!(outbox.push("b".repeat(5), None), Err(Undelivered::Busy));
        assert_eq!(outbox.push("c".repeat(4), None), Ok(()));
        outbox.close((1001, "going away"));
        outbox.close((1000, "later"));
        assert_eq!(outbox.push("d".into(), None), Err(Undelivered::Gone));
        let (frames, close) = outbox.take();
        assert_eq!((frames.len(), close), (2, Some((1001, "going away"))));
    }
}
