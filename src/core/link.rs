//! The connection handle: how the core reaches one client connection,
//! whatever protocol carries it (a socket.io namespace now, a raw WebSocket
//! protocol later). A protocol renders each [`Event`] in its own wire form,
//! or says it cannot carry it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::event::Event;
use crate::domain::ConnId;

/// Why an event was not handed to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// The connection's outgoing queue is full.
    #[error("the connection cannot take more messages now")]
    Busy,
    /// The connection has closed, or its protocol does not carry this event.
    #[error("the connection has closed")]
    Gone,
}

/// How a pushed event that needs confirming ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The client confirmed it.
    Yes,
    /// No confirmation in time: still owed, pushed again later.
    TimedOut,
    /// The connection closed first.
    Closed,
}

/// A confirmation still to come.
pub type Confirmation = Pin<Box<dyn Future<Output = Confirmed> + Send>>;

/// One client connection as the core sees it.
pub trait Link: Send + Sync + 'static {
    /// The connection's id, unique in the cluster.
    fn id(&self) -> &ConnId;

    /// Hands `event` to the client now; the error is the truth about delivery.
    fn send(&self, event: &Event) -> Result<(), Undelivered>;

    /// Hands `event` to the client and asks it to confirm within `timeout`.
    /// A protocol without confirmations takes a written event as confirmed.
    fn push(&self, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
        let _ = timeout;
        self.send(event)?;
        Ok(Box::pin(async { Confirmed::Yes }))
    }

    /// Closes the connection; its clean-up runs as for any disconnect.
    fn close(&self);

    /// Shutdown, for a protocol that closes its connections itself then (a
    /// raw WebSocket closes with 1001); nothing for the others.
    fn shut_down(&self) {}
}
