//! socket.io connections over the shared pipeline: every namespace's
//! connection is a [`Conn`] holding its namespace's state (a [`Namespace`]),
//! its [`Pipeline`], and what counts it (address slot, `/health`). The
//! connection is the core's [`Link`] to the client: core events are
//! rendered by the namespace ([`Namespace::emit`]).
//!
//! [`attach`] runs in a connect middleware, before the CONNECT ack (a
//! handler registered after it could miss the client's first events). One
//! handler takes every event, known or not: a handler per event name would
//! cost each connection a map and boxed closures (memory per idle peer).
//! It only queues the event ([`Pipeline::accept`]); the drainer handles the
//! queue one event at a time and answers: the ack, or `signaling-error` for
//! an event that asked for none.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use tracing::{error, warn};

use super::admission::Admitted;
use super::expiry::Expiry;
use super::pipeline::{Accepted, Pipeline};
use crate::core::event::Event;
use crate::core::link::{Confirmation, Confirmed, Link, Undelivered};
use crate::core::{Core, CoreError};
use crate::domain::ConnId;
use crate::state::{AddressSlot, AppState, Stats};
use crate::transport::wire::error::SignalError;

mod connect;
mod extract;
mod public_id;
mod retire;
pub use connect::{hand_off, take_hand_off, token_admission};
use extract::Named;
pub use extract::{Handle, Reply};
pub use public_id::public_id;
pub use retire::retire;

/// A socket.io socket (every namespace runs on the local adapter; the core
/// reaches other instances itself).
pub type Socket = socketioxide::socket::Socket<LocalAdapter>;

/// Server -> client: a failed event that carried no ack callback.
pub const SIGNALING_ERROR: &str = "signaling-error";

/// What one namespace does with its connections' events.
pub trait Namespace: Send + Sync + Sized + 'static {
    /// Where it is served.
    const PATH: &'static str;
    /// An event as the namespace knows it, read from its wire name at arrival.
    type Event: WireName + Send + Sync + 'static;
    /// What a successful event answers in its ack.
    type Answer: Serialize + Send;

    /// Handles one event, in arrival order.
    fn handle(
        &self,
        conn: &Conn<Self>,
        event: &Self::Event,
        payload: Option<Value>,
    ) -> impl Future<Output = Result<Self::Answer, SignalError>> + Send;

    /// Told at once when the connection closes, before its queued clean-up.
    fn closing(&self, _conn: &Conn<Self>, _reason: DisconnectReason) {}

    /// The connection's clean-up, after every event before it.
    fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) -> impl Future<Output = ()> + Send;

    /// What gives back what admission took, for a connection whose clean-up
    /// never runs: socketioxide drops a socket whose transport closed during
    /// the namespace CONNECT without calling its disconnect handler. Spawned
    /// when the connection is dropped.
    fn abandoned(&self, id: &ConnId, core: &Arc<Core>) -> Option<Abandoned> {
        let _ = (id, core);
        None
    }

    /// Hands a core event to the client in this namespace's wire form;
    /// [`Undelivered::Gone`] for an event it does not carry.
    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered>;

    /// Hands a core event to the client and asks it to confirm (an ack).
    fn emit_confirmed(socket: &SocketRef, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
        let _ = timeout;
        Self::emit(socket, event)?;
        Ok(Box::pin(async { Confirmed::Yes }))
    }
}

/// The clean-up of a connection that closed during its handshake ([`Namespace::abandoned`]).
pub type Abandoned = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A namespace's client events, known by their wire names.
pub trait WireName: Sized {
    /// The event a wire name stands for (an unknown name is an event too).
    fn from_name(name: &str) -> Self;
    /// Its wire name, for answers and logs.
    fn name(&self) -> &str;
}

/// One queued unit of work.
enum Job<E> {
    Event { event: E, payload: Option<Value>, reply: Reply },
    Disconnect(DisconnectReason),
}

/// One socket.io connection of namespace `N`.
pub struct Conn<N: Namespace> {
    id: ConnId,
    socket: Weak<Socket>,
    /// The namespace's state for this connection.
    pub ns: N,
    /// The core.
    pub core: Arc<Core>,
    pipeline: Pipeline<Job<N::Event>>,
    counted: Counted,
}

/// What counts a connection: its hold on its session's address slot and its
/// token's expiry timer (`None` once released), and `/health`.
struct Counted {
    slot: Mutex<Option<(Arc<AddressSlot>, Expiry)>>,
    stats: Arc<Stats>,
    default_ns: bool,
}

impl Counted {
    /// Releases the slot and the count; false if they were released already.
    fn release(&self) -> bool {
        let Some(slot) = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take() else { return false };
        drop(slot);
        self.stats.disconnected(self.default_ns);
        true
    }
}

impl<N: Namespace> Drop for Conn<N> {
    fn drop(&mut self) {
        // Still counted: the clean-up never ran (it releases first).
        if self.counted.release()
            && let Some(clean_up) = self.ns.abandoned(&self.id, &self.core)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(clean_up);
        }
        self.core.courier.detach(&self.id);
    }
}

impl<N: Namespace> Conn<N> {
    /// The connection's id.
    pub fn id(&self) -> &ConnId {
        &self.id
    }

    /// The socket, while it lives.
    pub fn socket(&self) -> Option<SocketRef> {
        self.socket.upgrade().map(SocketRef::from)
    }

    fn accept(self: &Arc<Self>, socket: SocketRef, job: Job<N::Event>) -> impl Future<Output = ()> + Send + use<N> {
        let drain = match self.pipeline.accept(job) {
            Accepted::Drain => true,
            Accepted::Queued => false,
            Accepted::Refused { job, why, flood } => {
                // A refused event is answered right here, before any disconnect.
                if let Job::Event { event, reply, .. } = job {
                    reply.send(&socket, event.name(), Err::<(), _>(why.into()));
                }
                if flood {
                    warn!(conn_id = %self.id, ns = socket.ns(), "disconnected for flooding: events kept coming past the rate limit");
                    let _ = socket.disconnect();
                }
                false
            }
        };
        self.drained(drain)
    }

    /// Drains the queue if `drain` (no drainer runs).
    fn drained(self: &Arc<Self>, drain: bool) -> impl Future<Output = ()> + Send + use<N> {
        let conn = self.clone();
        async move {
            if drain {
                conn.drain().await;
            }
        }
    }

    /// Handles the queued jobs one by one, in order, until the queue is empty.
    async fn drain(&self) {
        let mut handled: u32 = 0;
        while let Some(job) = self.pipeline.next() {
            match job {
                // Redis has just failed: answered at once, not after its own timeout.
                Job::Event { event, reply, .. } if self.core.health.failing_fast() => {
                    if let Some(socket) = self.socket() {
                        reply.send(&socket, event.name(), Err::<(), _>(CoreError::Unavailable.into()));
                    }
                }
                Job::Event { event, payload, reply } => {
                    let handling = AssertUnwindSafe(self.ns.handle(self, &event, payload)).catch_unwind().await;
                    match (handling, self.socket()) {
                        (Ok(result), Some(socket)) => reply.send(&socket, event.name(), result),
                        (Ok(_), None) => {}
                        (Err(_), _) => error!(conn_id = %self.id, "event handler panicked; the connection goes on"),
                    }
                }
                Job::Disconnect(reason) => {
                    if AssertUnwindSafe(self.ns.closed(self, reason)).catch_unwind().await.is_err() {
                        error!(conn_id = %self.id, "clean-up panicked");
                    }
                    self.counted.release();
                    self.core.courier.detach(&self.id);
                }
            }
            handled = handled.wrapping_add(1);
            if handled.is_multiple_of(64) {
                // A long burst must not hold a worker thread from other connections.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Queues the clean-up after every event before it (at once: any event
    /// after it is refused as closing), and drains if no drainer runs.
    fn close(self: &Arc<Self>, reason: DisconnectReason) -> impl Future<Output = ()> + Send + use<N> {
        self.ns.closing(self, reason);
        let drain = self.pipeline.close(Job::Disconnect(reason));
        self.drained(drain)
    }
}

impl<N: Namespace> Link for Conn<N> {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, event: &Event) -> Result<(), Undelivered> {
        let socket = self.socket().ok_or(Undelivered::Gone)?;
        N::emit(&socket, event)
    }

    fn push(&self, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
        let socket = self.socket().ok_or(Undelivered::Gone)?;
        N::emit_confirmed(&socket, event, timeout)
    }

    fn close(&self) {
        if let Some(socket) = self.socket.upgrade() {
            let _ = socket.disconnect();
        }
    }
}

/// Makes `ns` the state of `socket`'s connection: its events go through the
/// pipeline, the core can reach it, and it is counted until it closes.
pub fn attach<N: Namespace>(socket: &Arc<Socket>, state: &AppState, admitted: Admitted, ns: N) -> Arc<Conn<N>> {
    let default_ns = socket.ns() == "/";
    state.stats.connected(default_ns);
    let conn = Arc::new(Conn {
        id: public_id(socket.ns(), socket.id.as_str()),
        socket: Arc::downgrade(socket),
        ns,
        core: state.core.clone(),
        pipeline: Pipeline::new(&state.config),
        counted: Counted { slot: Mutex::new(None), stats: state.stats.clone(), default_ns },
    });
    let link: Weak<dyn Link> = Arc::downgrade(&conn) as Weak<Conn<N>>;
    *conn.counted.slot.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((admitted.slot, Expiry::at(admitted.expires, link)));
    let events = conn.clone();
    socket.on_fallback(move |s: SocketRef, reply: Reply, Named(event): Named<N>, TryData(data): TryData<Value>| {
        events.core.metrics.protocol_message("socket.io");
        events.accept(s, Job::Event { event, payload: data.ok(), reply })
    });
    let closing = conn.clone();
    socket.on_disconnect(move |reason: DisconnectReason| closing.close(reason));
    socket.extensions.insert(conn.clone());
    let link: Arc<dyn Link> = conn.clone();
    state.core.courier.attach(&link);
    conn
}

/// The socket.io result of an emit, as the core counts delivery: a full
/// outgoing queue is busy, anything else is gone.
pub fn delivered(sent: Result<(), socketioxide::SendError>) -> Result<(), Undelivered> {
    use socketioxide::{SendError::Socket, SocketError::InternalChannelFull};
    sent.map_err(|e| if matches!(e, Socket(InternalChannelFull)) { Undelivered::Busy } else { Undelivered::Gone })
}
