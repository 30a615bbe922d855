//! A PeerJS peer of the relay sweep that reads and writes apart, as a
//! browser's does: `WebSocket.send` never blocks its page from reading.
//!
//! Written inline, a sender blocked on a full socket stops reading its own;
//! a server that likewise writes before it reads again then waits on the
//! load generator while the load generator waits on it, and both idle while
//! latency grows to seconds (measured: switchboard at 120,000 offered/s).
//! Here a writer task takes each flushed batch over an unbounded channel
//! (the browser's `bufferedAmount`), so reading never waits for writing.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::raw::{RawClient, Ws};
use crate::sio::Error;
use crate::sweep::Wire;

/// A peer's connection: split (reading never waits for writing) or, to
/// show the difference (`--split false`), read and written inline.
#[allow(clippy::large_enum_variant)] // 1,000 of them at most; boxing would add a pointer hop per frame
pub enum Duplex {
    /// One task reads and writes: a blocked write stops its reading.
    Inline(RawClient),
    /// The reading half here, the writing half in a writer task.
    Split(Halves),
}

/// A client split into its reading half and a writer task.
pub struct Halves {
    read: SplitStream<Ws>,
    batch: Vec<String>,
    to_writer: mpsc::UnboundedSender<Vec<String>>,
    writer: JoinHandle<SplitSink<Ws, Message>>,
}

impl Duplex {
    /// `client`, split (starting its writer task) if `split`.
    pub fn new(client: RawClient, split: bool) -> Self {
        if !split {
            return Self::Inline(client);
        }
        let (sink, read) = client.into_inner().split();
        let (to_writer, batches) = mpsc::unbounded_channel();
        Self::Split(Halves { read, batch: Vec::new(), to_writer, writer: tokio::spawn(write(sink, batches)) })
    }
}

/// Writes each batch as it comes, then flushes; ends when the channel closes
/// or the socket fails (the reading half then sees the connection end).
async fn write(
    mut sink: SplitSink<Ws, Message>,
    mut batches: mpsc::UnboundedReceiver<Vec<String>>,
) -> SplitSink<Ws, Message> {
    while let Some(batch) = batches.recv().await {
        for frame in batch {
            if sink.feed(Message::text(frame)).await.is_err() {
                return sink;
            }
        }
        if sink.flush().await.is_err() {
            return sink;
        }
    }
    sink
}

impl Wire for Duplex {
    type Text = String;

    /// The next text frame; pings are answered by tungstenite as it reads.
    async fn recv(&mut self) -> Option<String> {
        let halves = match self {
            Self::Inline(client) => return client.text().await,
            Self::Split(halves) => halves,
        };
        loop {
            match halves.read.next().await? {
                Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn feed(&mut self, frame: String) -> Result<(), Error> {
        match self {
            Self::Inline(client) => client.feed(frame).await,
            Self::Split(halves) => {
                halves.batch.push(frame);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Error> {
        match self {
            Self::Inline(client) => client.flush().await,
            Self::Split(h) => Ok(h.to_writer.send(std::mem::take(&mut h.batch)).map_err(|_| "the writer ended")?),
        }
    }

    /// Lets the writer finish what it was given, then closes the socket.
    async fn close(self) {
        let halves = match self {
            Self::Inline(client) => return client.close().await,
            Self::Split(halves) => halves,
        };
        drop(halves.to_writer);
        if let Ok(sink) = halves.writer.await
            && let Ok(ws) = halves.read.reunite(sink)
        {
            RawClient::from_inner(ws).close().await;
        }
    }
}
