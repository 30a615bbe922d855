//! The `/devices` namespace (seed 004): store-and-forward signaling between
//! devices, whether or not the receiver is connected.
//!
//! A device connects with handshake auth `{ token, deviceId }` (or `deviceId`
//! in the query, for clients that cannot set auth). With `JWT_SECRET` set the
//! token is required and the device must have been announced by its user.
//! One connection per device: a new one replaces the old, which is
//! disconnected, so a signal is never delivered to two connections.
//!
//! `signal { type, toPeerId, data }` is queued for the receiver in every
//! case, and the sender's ack says `delivered` (the receiver is connected to
//! some instance, which is woken to push it now) or `queued`. Each connection
//! has one delivery task that pushes its device's queue in id order as
//! `signal { id, type, fromPeerId, toPeerId, data, timestamp }`; a signal
//! leaves the queue only when the device acks it, so a drop mid-delivery
//! loses nothing (the unconfirmed rest comes again on the next connection).
//! Expiry notices (`signal-expired { toPeerId, type, queuedAt }`) reach the
//! sender the same way.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::{AckError, SocketIo};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::address;
use super::auth::{self, AuthError};
use super::error::{ConnectRefused, SignalError};
use super::serial::Serial;
use crate::domain::ConnId;
use crate::domain::presence::DeviceId;
use crate::domain::signal::{self, MAX_QUEUED_PER_DEVICE, Notice, Outgoing, Queued};
use crate::metrics::SignalOutcome;
use crate::state::AppState;
use crate::store::StoreFailure;
use crate::store::devices::{Endpoint, Wake};

/// The namespace's path.
pub const NAMESPACE: &str = "/devices";
const SIGNAL: &str = "signal";
const SIGNAL_EXPIRED: &str = "signal-expired";
/// Signals and notices pushed to a connection and not yet confirmed, at most.
const WINDOW: usize = 32;
/// How long delivery waits before asking the store again after it failed.
const RETRY: Duration = Duration::from_secs(1);
/// How often an idle connection's mail is read even without a wake-up (a
/// wake-up published while an instance was reconnecting to Redis is lost).
const RECHECK: Duration = Duration::from_secs(30);

/// One device's connection on this instance.
pub struct DeviceConn<A: Adapter> {
    device: DeviceId,
    endpoint: Endpoint,
    state: AppState,
    events: Arc<Serial<A>>,
    /// Woken when the device has mail, a confirmation frees the window, or the connection closes.
    wake: Arc<Notify>,
    closed: AtomicBool,
    in_flight: AtomicUsize,
    /// Whether the device's seat was taken for this connection (at the handshake).
    registered: AtomicBool,
    /// The device's older connection, to turn out once this one is connected.
    replaced: Mutex<Option<Endpoint>>,
    /// The lowest signal and notice ids whose push went unconfirmed in time
    /// (`u64::MAX`: none): delivery pushes from there again.
    rewind: [AtomicU64; 2],
    /// The client address, counted against `MAX_CONNECTIONS_PER_IP` until
    /// [`DeviceConn::count_out`] (taken, so it is counted out once).
    ip: Mutex<Option<IpAddr>>,
}

impl<A: Adapter> Drop for DeviceConn<A> {
    fn drop(&mut self) {
        // A socket whose transport closed during the namespace CONNECT is
        // removed without its disconnect handler: undo its handshake here.
        self.count_out();
        if self.registered.load(Ordering::Acquire)
            && !self.closed.load(Ordering::Acquire)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (devices, device, endpoint) = (self.state.devices.clone(), self.device.clone(), self.endpoint.clone());
            runtime.spawn(async move { devices.endpoints.unregister(&device, &endpoint).await });
        }
    }
}

/// Connect middleware: admits a device (token, device id, ownership, address
/// limit) and attaches its handlers before the CONNECT ack.
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), ConnectRefused> {
    let auth = auth.ok();
    let parts = socket.req_parts();
    let raw = super::query::handshake(auth.as_ref(), parts.uri.query(), "deviceId");
    let device = DeviceId::parse(raw.as_deref().unwrap_or("")).map_err(ConnectRefused::BadDevice)?;
    if let Some(jwt) = &state.config.jwt {
        let token = auth::token_from(auth.as_ref(), &parts.headers, parts.uri.query()).ok_or(AuthError::Missing)?;
        let user = auth::verify(&token, jwt)?;
        let record = state.devices.presence.device(&device).await.map_err(|e| {
            report(&state, e, "device handshake");
            ConnectRefused::Unavailable
        })?;
        if record.is_none_or(|d| d.user != user || d.is_expired(SystemTime::now())) {
            info!(device_id = %device, user_id = %user, "device connection refused: not this user's device");
            return Err(ConnectRefused::NotYourDevice);
        }
    }
    let ip = address::of(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
    if let Some(ip) = ip
        && !state.limits.try_connect(ip, state.config.max_connections_per_ip)
    {
        warn!(%ip, "device connection refused: too many from this address");
        return Err(ConnectRefused::TooManyConnections);
    }
    let conn = Arc::new(DeviceConn {
        endpoint: Endpoint { instance: state.instance.clone(), conn: ConnId::new(socket.id.as_str()) },
        device,
        events: Arc::new(Serial::new(&state)),
        wake: Arc::new(Notify::new()),
        closed: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        rewind: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        registered: AtomicBool::new(false),
        replaced: Mutex::new(None),
        ip: Mutex::new(ip),
        state,
    });
    // The seat is taken before the CONNECT ack, so a signal sent as soon as
    // the client sees the connection already finds it live.
    match conn.state.devices.endpoints.register(&conn.device, conn.endpoint.clone()).await {
        Ok(old) => {
            conn.registered.store(true, Ordering::Release);
            *conn.replaced.lock().unwrap_or_else(|p| p.into_inner()) = old.filter(|old| old != &conn.endpoint);
        }
        Err(e) => {
            report(&conn.state, e, "device connect");
            return Err(ConnectRefused::Unavailable);
        }
    }
    let reach = conn.state.reach();
    super::serial::attach(&socket, conn, reach);
    Ok(())
}

/// Connect handler (after the CONNECT ack): takes the device's seat, turning
/// out a connection it had elsewhere, then delivers its mail until it closes.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>) {
    let Some(conn) = socket.extensions.get::<Arc<DeviceConn<A>>>() else { return };
    let state = &conn.state;
    state.mailboxes.open(conn.device.clone(), conn.endpoint.conn.clone(), conn.wake.clone());
    info!(conn_id = %socket.id, device_id = %conn.device, transport = ?socket.transport_type(), "device connected");
    let replaced = conn.replaced.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(old) = replaced {
        info!(device_id = %conn.device, old_conn_id = %old.conn, "device connected again: the older connection is closed");
        // Its delivery stops anyway once it sees it no longer holds the seat.
        super::deliver::turn_out(&io, NAMESPACE, state.reach(), old.conn.as_str()).await;
    }
    if conn.closed.load(Ordering::Acquire) {
        // It closed while this ran: its clean-up ran before the mailbox was opened.
        state.mailboxes.close(&conn.device, &conn.endpoint.conn);
        return;
    }
    conn.deliver(&socket).await;
    if !conn.closed.load(Ordering::Acquire) {
        // Another connection holds the device now (or the seat was lost): this
        // one would never receive anything again, so the client is told to go.
        info!(conn_id = %socket.id, device_id = %conn.device, "device connection closed: it no longer holds the device");
        let _ = socket.disconnect();
    }
}

fn report(state: &AppState, e: impl StoreFailure, during: &'static str) {
    drop(state.reported(e, during));
}

/// `signal` as a receiver gets it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignalOut<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: signal::SignalKind,
    from_peer_id: &'a DeviceId,
    to_peer_id: &'a DeviceId,
    data: &'a Value,
    /// When it was sent, in Unix milliseconds.
    timestamp: u64,
}

/// `signal-expired` as a sender gets it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExpiredOut<'a> {
    to_peer_id: &'a DeviceId,
    #[serde(rename = "type")]
    kind: signal::SignalKind,
    /// When it was sent, in Unix milliseconds.
    queued_at: u64,
}

/// The sender's ack: `{ ok: true, status: "delivered" | "queued", id }`.
#[derive(Serialize)]
pub struct SignalAck {
    ok: bool,
    status: &'static str,
    id: u64,
}

/// What is next to push to a connection.
enum Mail {
    Signal(Queued),
    Notice(Notice),
}

impl<A: Adapter> super::serial::Handler<A> for DeviceConn<A> {
    type Answer = SignalAck;

    fn serial(&self) -> &Arc<Serial<A>> {
        &self.events
    }

    async fn handle(
        &self,
        _socket: &SocketRef<A>,
        _io: &SocketIo<A>,
        name: &str,
        payload: Option<Value>,
    ) -> Result<SignalAck, SignalError> {
        match name {
            SIGNAL => self.signal(payload).await,
            _ => Err(SignalError::UnknownEvent(name.chars().take(64).collect())),
        }
    }

    async fn disconnect(&self, _socket: &SocketRef<A>, _io: &SocketIo<A>, reason: DisconnectReason) {
        self.close(reason).await;
    }
}

impl<A: Adapter> DeviceConn<A> {
    /// `signal { type, toPeerId, data }`: queue it and wake the receiver.
    async fn signal(&self, payload: Option<Value>) -> Result<SignalAck, SignalError> {
        let req = super::payload::device_signal(payload)?;
        let devices = &self.state.devices;
        let now = SystemTime::now();
        let failed = |e| self.failed(e, SIGNAL);
        let full = |e| self.failed(e, SIGNAL);
        let (from, to) = tokio::join!(devices.presence.device(&self.device), devices.presence.device(&req.to));
        signal::check_route(from.map_err(failed)?.as_ref(), to.map_err(failed)?.as_ref(), now)?;
        let outgoing = Outgoing { kind: req.kind, from: self.device.clone(), to: req.to, data: req.data };
        let queued = devices.queues.enqueue(outgoing, now, MAX_QUEUED_PER_DEVICE).await.map_err(full)?;
        let to = &queued.signal.to;
        let live = devices.endpoints.endpoint(to).await.map_err(failed)?.is_some();
        if let Err(e) = devices.endpoints.wake(to).await {
            // It is queued: the receiver gets it on its next connection.
            report(&self.state, e, "signal wake-up");
        }
        let outcome = if live { SignalOutcome::Delivered } else { SignalOutcome::Queued };
        self.state.metrics.signal(outcome, 1);
        let status = if live { "delivered" } else { "queued" };
        info!(device_id = %self.device, to_device_id = %to, kind = req.kind.name(), id = queued.id, status, "signal");
        Ok(SignalAck { ok: true, status, id: queued.id })
    }

    fn failed<E: StoreFailure + Into<SignalError>>(&self, e: E, during: &'static str) -> SignalError {
        self.state.reported(e, during).into()
    }

    /// Pushes the device's queue and notices in order, then waits for more,
    /// until the connection closes or another connection takes the device.
    async fn deliver(self: &Arc<Self>, socket: &SocketRef<A>) {
        let (mut last_signal, mut last_notice) = (0, 0);
        while !self.closed.load(Ordering::Acquire) {
            let [signal_from, notice_from] = [0, 1].map(|i| self.rewind[i].swap(u64::MAX, Ordering::AcqRel));
            last_signal = last_signal.min(signal_from.saturating_sub(1));
            last_notice = last_notice.min(notice_from.saturating_sub(1));
            match self.mail(last_signal, last_notice).await {
                Ok(None) => return,
                Ok(Some(mail)) => {
                    for item in mail {
                        if self.in_flight.load(Ordering::Acquire) >= WINDOW {
                            break;
                        }
                        let sent = match &item {
                            Mail::Signal(q) => self.push(socket, q.id, SIGNAL, &signal_out(q), true),
                            Mail::Notice(n) => self.push(socket, n.id, SIGNAL_EXPIRED, &expired_out(n), false),
                        };
                        if !sent {
                            break;
                        }
                        match item {
                            Mail::Signal(q) => last_signal = q.id,
                            Mail::Notice(n) => last_notice = n.id,
                        }
                    }
                    let _ = tokio::time::timeout(RECHECK, self.wake.notified()).await;
                }
                Err(e) => {
                    report(&self.state, e, "device delivery");
                    let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                }
            }
        }
    }

    /// The mail after the given ids, signals first; `None` once this
    /// connection no longer holds the device.
    async fn mail(&self, last_signal: u64, last_notice: u64) -> Result<Option<Vec<Mail>>, crate::store::StoreError> {
        let devices = &self.state.devices;
        if devices.endpoints.endpoint(&self.device).await?.as_ref() != Some(&self.endpoint) {
            debug!(device_id = %self.device, conn_id = %self.endpoint.conn, "delivery stops: the device is connected elsewhere");
            return Ok(None);
        }
        let signals = devices.queues.pending(&self.device).await?.into_iter().filter(|q| q.id > last_signal);
        let notices = devices.queues.notices(&self.device).await?.into_iter().filter(|n| n.id > last_notice);
        Ok(Some(signals.map(Mail::Signal).chain(notices.map(Mail::Notice)).collect()))
    }

    /// Emits one item; its ack removes it from the store. False if the
    /// connection cannot take it now (it is pushed again on a later wake-up or connection).
    fn push(
        self: &Arc<Self>,
        socket: &SocketRef<A>,
        id: u64,
        event: &'static str,
        data: &impl Serialize,
        signal: bool,
    ) -> bool {
        let ack = match socket.timeout(self.state.config.presence.ack_timeout).emit_with_ack::<_, Value>(event, data) {
            Ok(ack) => ack,
            Err(e) => {
                debug!(conn_id = %socket.id, event, %e, "not pushed now");
                return false;
            }
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let conn = self.clone();
        tokio::spawn(async move {
            match ack.await {
                // Any answer confirms, whatever it carries (a bare `ack()` has nothing to decode).
                Ok(_) | Err(AckError::Decode(_)) => {
                    let devices = &conn.state.devices;
                    let removed = if signal {
                        devices.queues.remove(&conn.device, id).await
                    } else {
                        devices.queues.remove_notice(&conn.device, id).await
                    };
                    if let Err(e) = removed {
                        report(&conn.state, e, "device confirmation");
                    }
                }
                Err(AckError::Timeout) if !conn.closed.load(Ordering::Acquire) => {
                    // Still queued: pushed again from here (the device tells repeats by id).
                    debug!(device_id = %conn.device, id, event, "not confirmed in time: pushed again");
                    conn.rewind[usize::from(!signal)].fetch_min(id, Ordering::AcqRel);
                }
                // The connection closed: it comes again on the next one.
                Err(_) => {}
            }
            conn.in_flight.fetch_sub(1, Ordering::AcqRel);
            conn.wake.notify_one();
        });
        true
    }

    /// Counts this connection out of its address's limit, once.
    fn count_out(&self) {
        if let Some(ip) = self.ip.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.state.limits.disconnected(ip);
        }
    }

    /// Disconnect: stop delivering, give up the seat, count the connection
    /// out. Runs once, whether shutdown or socketioxide calls it first.
    async fn close(&self, reason: DisconnectReason) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.wake.notify_one();
        let state = &self.state;
        state.mailboxes.close(&self.device, &self.endpoint.conn);
        if let Err(e) = state.devices.endpoints.unregister(&self.device, &self.endpoint).await {
            report(state, e, "device disconnect");
        }
        self.count_out();
        info!(conn_id = %self.endpoint.conn, device_id = %self.device, ?reason, "device disconnected");
    }
}

fn signal_out(q: &Queued) -> SignalOut<'_> {
    SignalOut {
        id: q.id,
        kind: q.signal.kind,
        from_peer_id: &q.signal.from,
        to_peer_id: &q.signal.to,
        data: &q.signal.data,
        timestamp: crate::domain::unix_ms(q.queued_at),
    }
}

fn expired_out(n: &Notice) -> ExpiredOut<'_> {
    ExpiredOut {
        to_peer_id: &n.expired.to,
        kind: n.expired.kind,
        queued_at: crate::domain::unix_ms(n.expired.queued_at),
    }
}

/// Forwards wake-ups from every instance to this instance's connections.
pub async fn dispatch_wakes(state: AppState) {
    let mut wakes = state.devices.endpoints.wakes();
    loop {
        match wakes.recv().await {
            Ok(Wake::Device(device)) => state.mailboxes.wake(&device),
            Ok(Wake::All) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => state.mailboxes.wake_all(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
