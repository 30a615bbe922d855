//! The `/devices` namespace (seed 004): store-and-forward signaling between
//! devices, whether or not the receiver is connected; the reference is
//! `docs/protocol/devices.md`, the REST routes are in [`rest`].
//!
//! A device connects with handshake auth `{ token, deviceId }` (or
//! `deviceId` in the query, for clients that cannot set auth). With
//! `JWT_SECRET` set the token is required and the device must have been
//! announced by its user. One connection per device: a new one replaces the
//! old, which is disconnected, so a signal is never delivered to two
//! connections. With `DEVICE_NETWORK_CLAIM` set, a `signal` is refused
//! (`forbidden`) unless the token's claim names the sender's network (a
//! signal never leaves it). `signal { type, toPeerId, data }` is queued in every case
//! and acked `delivered` (the receiver is connected somewhere and is pushed
//! it now) or `queued`; delivery and confirmation are the core's mailbox
//! ([`crate::core::devices::mailbox`]): a signal leaves the queue only when
//! the device acks it.
//!
//! Must not import another feature folder of `transport` (shared parts are in
//! `transport/conn`, `transport/wire`, `core`).

mod extract;
pub mod raw;
pub mod rest;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tracing::info;

use self::wire::SignalAck;
use crate::core::Core;
use crate::core::devices::mailbox::Mailbox;
use crate::core::event::Event;
use crate::core::link::{Confirmation, Link, Undelivered};
use crate::domain::ConnId;
use crate::domain::presence::{DeviceId, NetworkAccess};
use crate::state::AppState;
use crate::store::devices::Endpoint;
use crate::transport::conn::admission::{Credential, Handshake, admit};
use crate::transport::conn::sio::{self, Abandoned, Conn, Handle, Namespace, WireName, public_id};
use crate::transport::wire::error::{Refused, SignalError};

/// The namespace's path.
pub const PATH: &str = "/devices";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(admission));
}

/// One device's connection: its mailbox, and the networks its token may
/// signal within (`DEVICE_NETWORK_CLAIM`).
pub struct Devices {
    mailbox: Arc<Mailbox>,
    networks: NetworkAccess,
}

/// The client events of `/devices`.
pub enum DeviceEvent {
    /// `signal { type, toPeerId, data }`
    Signal,
    /// Any other name.
    Unknown(String),
}

impl WireName for DeviceEvent {
    fn from_name(name: &str) -> Self {
        match name {
            wire::SIGNAL => DeviceEvent::Signal,
            other => DeviceEvent::Unknown(other.chars().take(64).collect()),
        }
    }

    fn name(&self) -> &str {
        match self {
            DeviceEvent::Signal => wire::SIGNAL,
            DeviceEvent::Unknown(name) => name,
        }
    }
}

/// Connect middleware: the device id, the token (and the device's owner),
/// the address slot, then the device's seat, taken before the CONNECT ack so
/// a signal sent as soon as the client sees the connection finds it live.
async fn admission(
    Handle(socket): Handle,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let auth = auth.ok();
    let handshake = Handshake { parts: socket.req_parts(), auth: auth.as_ref() };
    let raw = handshake.field("deviceId").unwrap_or_default();
    let device = DeviceId::parse(&raw).map_err(|e| Refused::Invalid("auth.deviceId", e.to_string()))?;
    let admitted = admit(&state, &handshake, Credential::Token)?;
    let devices = state.core.devices();
    if let Some(user) = &admitted.user {
        devices.owned_by(&device, user).await.inspect_err(|_| {
            info!(device_id = %device, user_id = %user, "device connection refused: not this user's device");
        })?;
    }
    let conn = public_id(socket.ns(), socket.id.as_str());
    let (mailbox, replaced) = Mailbox::open(&state.core, (device, admitted.user.clone()), conn).await?;
    if let Some(old) = replaced {
        sio::hand_off(&socket, old);
    }
    let networks = admitted.networks.clone();
    sio::attach(&socket, &state, admitted, Devices { mailbox: Arc::new(mailbox), networks });
    Ok(())
}

/// Connect handler (after the ack): turns out the device's older
/// connection, then delivers its mail until the connection closes.
async fn connected(socket: SocketRef, State(state): State<AppState>) {
    let Some(conn) = socket.extensions.get::<Arc<Conn<Devices>>>() else { return };
    let mailbox = &conn.ns.mailbox;
    info!(conn_id = %conn.id(), device_id = %mailbox.device(), transport = ?socket.transport_type(), "device connected");
    if let Some(old) = sio::take_hand_off::<Endpoint>(&socket) {
        info!(device_id = %mailbox.device(), old_conn_id = %old.conn, "device connected again: the older connection is closed");
        // Its delivery stops anyway once it sees it no longer holds the seat.
        state.core.courier.close(&old.conn).await;
    }
    let link: Arc<dyn Link> = conn.clone();
    if !mailbox.deliver(link).await {
        // Another connection holds the device now (or the seat was lost): this
        // one would never receive anything again, so the client is told to go.
        info!(conn_id = %conn.id(), device_id = %mailbox.device(), "device connection closed: it no longer holds the device");
        let _ = socket.disconnect();
    }
}

impl Namespace for Devices {
    const PATH: &'static str = PATH;
    type Event = DeviceEvent;
    type Answer = SignalAck;

    async fn handle(
        &self,
        conn: &Conn<Self>,
        event: &DeviceEvent,
        data: Option<Value>,
    ) -> Result<SignalAck, SignalError> {
        let DeviceEvent::Signal = event else { return Err(SignalError::UnknownEvent(event.name().to_owned())) };
        let req = wire::signal_request(data)?;
        let from = (self.mailbox.device(), &self.networks);
        let sent = conn.core.devices().signal(from, req.to, req.kind, req.data).await?;
        Ok(SignalAck { ok: true, status: if sent.live { "delivered" } else { "queued" }, id: sent.id })
    }

    async fn closed(&self, conn: &Conn<Self>, reason: DisconnectReason) {
        self.mailbox.close().await;
        info!(conn_id = %conn.id(), device_id = %self.mailbox.device(), ?reason, "device disconnected");
    }

    fn abandoned(&self, _: &ConnId, _: &Arc<Core>) -> Option<Abandoned> {
        let mailbox = self.mailbox.clone();
        Some(Box::pin(async move { mailbox.close().await }))
    }

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }

    fn emit_confirmed(socket: &SocketRef, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
        wire::emit_confirmed(socket, event, timeout)
    }
}
