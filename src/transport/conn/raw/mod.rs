//! Raw WebSocket connections: the protocols of seeds 000, 001 and 004 are
//! JSON text frames over a plain WebSocket. A raw connection goes through
//! the same admission as socket.io (origin, token, address slot:
//! [`crate::transport::conn::admission`]) and the same pipeline (rate limit,
//! flood disconnect: [`Pipeline`]), is the core's [`Link`] like a socket.io
//! connection, and renders core events in its protocol's frames
//! ([`Protocol::render`]), so raw and socket.io clients of one feature share
//! one state, here and across instances.
//!
//! Lean by design: one task per connection ([`socket`]) reads frames,
//! handles each in arrival order, writes the [`outbox`], pings every
//! `PING_INTERVAL_MS` and drops a peer whose pong is `PING_TIMEOUT_MS` late;
//! its read buffer is 1 KiB, handler futures are boxed (held only while
//! they run), and nothing of the upgrade request outlives the handshake.
//!
//! Built on tokio-tungstenite 0.30 directly, the version engineioxide
//! already compiles in: axum's `ws` feature would bring a second copy
//! (0.29) into the binary, and hides the buffer sizes and the ping payloads
//! this module uses to confirm delivery ([`Link::push`]).

mod outbox;
mod socket;
mod upgrade;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

use self::outbox::Outbox;
use super::admission::Admitted;
use super::expiry::Expiry;
use super::pipeline::Pipeline;
use crate::core::Core;
use crate::core::event::Event;
use crate::core::link::{Confirmation, Confirmed, Link, Undelivered};
use crate::domain::ConnId;
use crate::state::{AddressSlot, AppState, Stats};
use crate::transport::wire::error::{Refused, SignalError};
pub use upgrade::{upgrade, websocket_key};

/// `{type, ...body}`: a frame named by its `type`, the body's fields beside
/// it (seeds 000 and 001 write every frame so).
#[derive(Serialize)]
pub struct Typed<'a, T: Serialize> {
    /// The frame's `type`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The rest of the frame.
    #[serde(flatten)]
    pub body: T,
}

/// `{data}`: a body whose fields are under `data`.
#[derive(Serialize)]
pub struct Data<T: Serialize> {
    /// The fields.
    pub data: T,
}

/// Work a connection does beside its frames while it lives (a device's
/// delivery loop, a mesh client's welcome), polled by its task.
pub type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One raw WebSocket protocol.
pub trait Protocol: Send + Sync + Sized + 'static {
    /// Its name in logs.
    const NAME: &'static str;
    /// What the upgrade request asked for (path and query parameters), owned.
    type Ask: Send + 'static;

    /// Admits the connection after the upgrade (a refusal closes it with its
    /// close code): the connection's state.
    fn open(
        state: &AppState,
        admitted: &Admitted,
        ask: Self::Ask,
        id: &ConnId,
    ) -> impl Future<Output = Result<Self, Refused>> + Send;

    /// What the connection does once it is open (a delivery loop), if
    /// anything; frames it queues here go out before anything the core sends
    /// it (a welcome comes first), since the core reaches it only after.
    fn start(conn: &Arc<RawConn<Self>>) -> Option<Work> {
        let _ = conn;
        None
    }

    /// Handles one text frame, in arrival order, answering in its own frames.
    fn handle(&self, conn: &RawConn<Self>, text: &str) -> impl Future<Output = ()> + Send;

    /// Answers a frame refused before it was read (the rate limit, a binary frame).
    fn refused(&self, conn: &RawConn<Self>, why: &SignalError);

    /// The connection's clean-up, after every frame before it.
    fn closed(&self, conn: &RawConn<Self>) -> impl Future<Output = ()> + Send;

    /// The frame a refused connection gets before its close frame, if the
    /// protocol has one (PeerJS's `ERROR`).
    fn refusal(refused: &Refused) -> Option<String> {
        let _ = refused;
        None
    }

    /// A core event as one text frame; `None` for an event it does not carry.
    fn render(event: &Event) -> Option<String>;
}

/// One raw WebSocket connection of protocol `P`.
pub struct RawConn<P: Protocol> {
    id: ConnId,
    /// The protocol's state for this connection.
    pub ns: P,
    /// The core.
    pub core: Arc<Core>,
    outbox: Outbox,
    pipeline: Pipeline<Option<tokio_tungstenite::tungstenite::Utf8Bytes>>,
    counted: Mutex<Option<(Arc<AddressSlot>, Expiry)>>,
    stats: Arc<Stats>,
}

impl<P: Protocol> RawConn<P> {
    /// The connection's id.
    pub fn id(&self) -> &ConnId {
        &self.id
    }

    /// Sends `frame` as JSON text; busy past `SOCKET_BUFFER_BYTES`.
    pub fn send<T: Serialize + ?Sized>(&self, frame: &T) -> Result<(), Undelivered> {
        let text = serde_json::to_string(frame).map_err(|_| Undelivered::Gone)?;
        self.outbox.push(text, None)
    }

    /// Sends `text`, a frame already written; busy past `SOCKET_BUFFER_BYTES`.
    pub fn send_text(&self, text: String) -> Result<(), Undelivered> {
        self.outbox.push(text, None)
    }

    /// Counts the connection out: its address slot, token timer and `/health` count.
    fn release(&self) {
        if self.counted.lock().unwrap_or_else(|p| p.into_inner()).take().is_some() {
            self.stats.disconnected(false);
            self.core.metrics.protocol_closed(P::NAME);
        }
        self.core.courier.detach(&self.id);
    }
}

impl<P: Protocol> Link for RawConn<P> {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, event: &Event) -> Result<(), Undelivered> {
        self.outbox.push(P::render(event).ok_or(Undelivered::Gone)?, None)
    }

    /// Confirmed once the client has read it: a ping written after it was
    /// answered (WebSocket peers answer pings in order, after the frames
    /// before them). A raw protocol has no acks of its own. `timeout` does
    /// not apply: on one connection, pushing again cannot help (the pong
    /// comes, or `PING_TIMEOUT_MS` drops the connection and it is `Closed`),
    /// and a raw client could not tell a second copy from a new message.
    fn push(&self, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
        let _ = timeout;
        let (tx, rx) = oneshot::channel();
        self.outbox.push(P::render(event).ok_or(Undelivered::Gone)?, Some(tx))?;
        Ok(Box::pin(async move { if rx.await.is_ok() { Confirmed::Yes } else { Confirmed::Closed } }))
    }

    fn close(&self) {
        self.outbox.close((1000, "closed by the server"));
    }

    fn shut_down(&self) {
        self.outbox.close(SHUTDOWN);
    }
}

/// The close at shutdown: after the connection's clean-up, 1001.
const SHUTDOWN: outbox::Close = (1001, "the server is shutting down");

/// Makes `ns` a live connection: counted, started ([`Protocol::start`]),
/// then reachable by the core, closed at its token's expiry.
fn attach<P: Protocol>(state: &AppState, admitted: Admitted, id: ConnId, ns: P) -> (Arc<RawConn<P>>, Option<Work>) {
    state.stats.connected(false);
    state.core.metrics.protocol_opened(P::NAME);
    let conn = Arc::new(RawConn {
        id,
        ns,
        core: state.core.clone(),
        outbox: Outbox::new(state.config.socket_buffer_bytes),
        pipeline: Pipeline::new(&state.config),
        counted: Mutex::new(None),
        stats: state.stats.clone(),
    });
    let link: std::sync::Weak<dyn Link> = Arc::downgrade(&conn) as std::sync::Weak<RawConn<P>>;
    *conn.counted.lock().unwrap_or_else(|p| p.into_inner()) = Some((admitted.slot, Expiry::at(admitted.expires, link)));
    let work = P::start(&conn);
    let link: Arc<dyn Link> = conn.clone();
    state.core.courier.attach(&link);
    // Opened while the server shuts down: missed by the courier's sweep.
    if state.stats.closing() {
        conn.shut_down();
    }
    (conn, work)
}
