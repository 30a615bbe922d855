//! Events of one connection handled one at a time, in arrival order, within
//! the connection's rate limit, and its clean-up after all of them: what the
//! namespaces other than `/` share (see [`super::inbox`] for why the order
//! needs keeping). A clean-up run beside a pending event could be undone by
//! it: a room created or joined just before the client left would keep a
//! seat for a connection that is gone.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use tracing::warn;

use super::error::SignalError;
use super::inbox::{Inbox, Push};
use super::socket::Reply;
use crate::domain::rate::{Limiter, Verdict};
use crate::state::AppState;

/// What waits its turn: an event (its name, payload and ack), or the
/// connection's clean-up, which runs after every event that came before it.
enum Job<A: Adapter> {
    Event(String, Option<Value>, Reply<A>),
    Disconnect(DisconnectReason),
}

/// A connection's event queue and rate limiter.
pub struct Serial<A: Adapter> {
    inbox: Inbox<Job<A>>,
    limiter: Mutex<Limiter>,
}

impl<A: Adapter> Serial<A> {
    /// A queue sized and limited by the configuration (`MAX_PENDING_EVENTS`,
    /// `EVENTS_PER_SECOND`, `EVENT_BURST`, `RATE_LIMIT_DISCONNECT_AFTER`).
    pub fn new(state: &AppState) -> Self {
        let c = &state.config;
        let limiter = Limiter::new(
            f64::from(c.events_per_second),
            f64::from(c.event_burst),
            c.rate_limit_disconnect_after,
            Instant::now(),
        );
        Self { inbox: Inbox::new(c.max_pending_events), limiter: Mutex::new(limiter) }
    }

    /// The synchronous part of an event handler: the rate limit, then the
    /// queue. True if the caller must drain (see [`drain`]); a refused event
    /// is answered here.
    fn accept(&self, socket: &SocketRef<A>, name: String, reply: Reply<A>, payload: Option<Value>) -> bool {
        let verdict = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).check(Instant::now());
        let job = Job::Event(name, payload, reply);
        let pushed = match verdict {
            Verdict::Allow => self.inbox.push(job),
            Verdict::Refuse | Verdict::Disconnect => Push::Full(job),
        };
        let drain = match pushed {
            Push::Drain => true,
            Push::Queued => false,
            Push::Full(job) => refuse(socket, job, SignalError::Overloaded),
            Push::Closed(job) => refuse(socket, job, SignalError::Closing),
        };
        if verdict == Verdict::Disconnect {
            warn!(conn_id = %socket.id, ns = socket.ns(), "disconnected for flooding: events kept coming past the rate limit");
            let _ = socket.clone().disconnect();
        }
        drain
    }
}

/// Answers a refused event; false (nothing to drain).
fn refuse<A: Adapter>(socket: &SocketRef<A>, job: Job<A>, error: SignalError) -> bool {
    if let Job::Event(name, _, reply) = job {
        reply.refuse(socket, &name, error);
    }
    false
}

/// Handles `conn`'s queued jobs one by one, in order, until the queue is empty.
async fn drain<A: Adapter, H: Handler<A>>(conn: &H, socket: &SocketRef<A>, io: &SocketIo<A>) {
    while let Some(job) = conn.serial().inbox.next() {
        match job {
            Job::Event(name, payload, reply) => {
                let result = conn.handle(socket, io, &name, payload).await;
                reply.send(socket, &name, result);
            }
            Job::Disconnect(reason) => conn.disconnect(socket, io, reason).await,
        }
    }
}

/// A connection of a namespace whose events all go through its [`Serial`] queue.
pub trait Handler<A: Adapter>: Send + Sync + Sized + 'static {
    /// What a successful event answers in its ack.
    type Answer: Serialize + Send;

    /// The connection's queue.
    fn serial(&self) -> &Arc<Serial<A>>;

    /// Handles one event, in arrival order.
    fn handle(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> impl Future<Output = Result<Self::Answer, SignalError>> + Send;

    /// The connection's clean-up.
    fn disconnect(
        &self,
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        reason: DisconnectReason,
    ) -> impl Future<Output = ()> + Send;
}

/// Attaches `conn`'s handlers to `socket` (in a connect middleware, before
/// the CONNECT ack), keeps `conn` in the socket's extensions, and makes the
/// socket reachable from other instances.
pub fn attach<A: Adapter, H: Handler<A>>(socket: &SocketRef<A>, conn: Arc<H>, reach: super::deliver::Reach) {
    super::deliver::reachable(socket, reach);
    let events = conn.clone();
    socket.on_fallback(
        move |s: SocketRef<A>, io: SocketIo<A>, Event(name): Event, reply: Reply<A>, TryData(data): TryData<Value>| {
            let must_drain = events.serial().accept(&s, name, reply, data.ok());
            let conn = events.clone();
            async move {
                if must_drain {
                    drain(&*conn, &s, &io).await;
                }
            }
        },
    );
    socket.extensions.insert(conn.clone());
    // The clean-up waits for the events that came before it: run beside
    // them, it could be undone by one (a join or heartbeat handled after it).
    socket.on_disconnect(move |s: SocketRef<A>, io: SocketIo<A>, reason: DisconnectReason| async move {
        // Queued behind a running drainer, it runs there; already closed, it ran.
        if let Push::Drain = conn.serial().inbox.push_last(Job::Disconnect(reason)) {
            drain(&*conn, &s, &io).await;
        }
    });
}

/// Shutdown: runs the clean-up of every local connection of namespace `ns`
/// now (`SocketIo::close` runs no disconnect handler): seats given up, lists
/// updated, so other instances see these connections gone at once. A
/// clean-up that socketioxide runs as well finds nothing left to do.
pub async fn disconnect_all<A: Adapter, H: Handler<A>>(io: &SocketIo<A>, ns: &str) {
    let Some(ops) = io.of(ns) else { return };
    let conns = ops.sockets().into_iter().filter_map(|s| Some((s.extensions.get::<Arc<H>>()?, s)));
    let cleanups = conns.map(|(c, s)| async move { c.disconnect(&s, io, DisconnectReason::ClosingServer).await });
    futures_util::future::join_all(cleanups).await;
}
