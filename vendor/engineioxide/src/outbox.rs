//! A socket's outgoing queue held to a budget (switchboard patch).
//!
//! Upstream bounds each socket's internal channel in packets only
//! (`max_buffer_size`), so a client that never reads can make the server hold
//! `max_buffer_size` x the largest message, and once the channel is full the
//! heartbeat's own ping cannot be queued, so anyone able to fill a victim's
//! queue can time it out. Here:
//! - the bytes waiting in the channel are counted ([`Outbox`]); data is
//!   refused (as a full channel) once [`max_buffer_bytes`] are waiting, so a
//!   socket holds at most that plus one message;
//! - [`CONTROL_RESERVE`] slots of the channel are kept for control packets
//!   (pings, pongs, the upgrade's noop): data never takes them;
//! - a pong counts only after the ping it answers has left the queue
//!   (`ping_out`), so a client that never reads cannot stay connected by
//!   sending pongs unprompted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use engineioxide_core::{Packet, PacketBuf};
use tokio::sync::mpsc::{self, error::TryRecvError};

/// Slots of each socket's channel that only control packets may take.
pub(crate) const CONTROL_RESERVE: usize = 2;

/// Bytes of data every socket may have waiting, at most (plus one message).
static MAX_BUFFER_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the byte budget of every socket's outgoing queue (default: none).
/// One value per process: socketioxide's builder has no way to pass it.
pub fn set_max_buffer_bytes(bytes: usize) {
    MAX_BUFFER_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// The byte budget of every socket's outgoing queue.
pub fn max_buffer_bytes() -> usize {
    MAX_BUFFER_BYTES.load(Ordering::Relaxed)
}

/// What one queued item weighs: its messages' bytes, one per control packet.
pub(crate) fn weight(packets: &PacketBuf) -> usize {
    packets
        .iter()
        .map(|p| match p {
            Packet::Message(s) => s.len(),
            Packet::Binary(b) | Packet::BinaryV3(b) => b.len(),
            _ => 1,
        })
        .sum()
}

/// The counters a socket shares with the receiving end of its channel.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Bytes of the items in the channel.
    bytes: AtomicUsize,
    /// A ping has left the queue and no pong answered it yet.
    ping_out: AtomicBool,
}

impl Outbox {
    /// Counts an item going into the channel.
    pub(crate) fn queued(&self, packets: &PacketBuf) {
        self.bytes.fetch_add(weight(packets), Ordering::AcqRel);
    }

    /// Whether data may be queued: under the byte budget.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes.load(Ordering::Acquire) < max_buffer_bytes()
    }

    /// Bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// A pong arrived: whether it answers a ping that left the queue
    /// (consumed: one pong per ping).
    pub(crate) fn answers_ping(&self) -> bool {
        self.ping_out.swap(false, Ordering::AcqRel)
    }

    /// Forgets a ping still unanswered (a new one is about to be queued).
    pub(crate) fn new_ping(&self) {
        self.ping_out.store(false, Ordering::Release);
    }

    fn taken(&self, packets: &PacketBuf) {
        let w = weight(packets);
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some(b.saturating_sub(w)));
        if packets.iter().any(|p| matches!(p, Packet::Ping)) {
            self.ping_out.store(true, Ordering::Release);
        }
    }
}

/// The receiving end of a socket's channel: every item taken out is
/// uncounted from its [`Outbox`].
#[derive(Debug)]
pub(crate) struct BufferedRx<T> {
    rx: mpsc::Receiver<T>,
    outbox: Arc<Outbox>,
}

impl<T: AsRef<PacketBuf>> BufferedRx<T> {
    pub(crate) fn new(rx: mpsc::Receiver<T>, outbox: Arc<Outbox>) -> Self {
        Self { rx, outbox }
    }

    fn taken(&self, item: Option<T>) -> Option<T> {
        if let Some(item) = &item {
            self.outbox.taken(item.as_ref());
        }
        item
    }

    /// As [`mpsc::Receiver::recv`].
    pub(crate) async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv().await;
        self.taken(item)
    }

    /// As [`mpsc::Receiver::try_recv`].
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let item = self.rx.try_recv()?;
        Ok(self.taken(Some(item)).expect("an item"))
    }

    /// As [`mpsc::Receiver::poll_recv`].
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(item) => Poll::Ready(self.taken(item)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// As [`mpsc::Receiver::close`].
    pub(crate) fn close(&mut self) {
        self.rx.close()
    }
}
