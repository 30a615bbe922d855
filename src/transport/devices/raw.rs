//! Seed 004's own WebSocket at `/signaling/{deviceId}`: the device's
//! connection as seed 004's server has it, over the same mailbox as
//! `/devices` (one connection per device, whichever protocol: a newer one
//! turns the older out) and the same queue as `GET /signaling/messages/{deviceId}`.
//!
//! The token comes from `Authorization: Bearer` or `?token=` (with
//! `JWT_SECRET` unset the endpoint is open, as the REST routes are); a bad or
//! missing one, or a device that is not the token user's, closes with 1008.
//! Client frames are `{type, toPeerId, data}`, as `signal` on `/devices`;
//! nothing answers a signal taken, and one refused gets
//! `{error, code, message}` (`error` is `"Invalid message format"` for a
//! frame that is not such a message, as in seed 004). Delivery is
//! `{type, fromPeerId, toPeerId, data, timestamp}`. A raw client has no
//! acks: a signal counts as delivered, and leaves the queue, once the
//! client answered a WebSocket ping sent after it, so a connection that drops
//! mid-stream loses nothing (what it had not confirmed comes again on its
//! next connection, or over REST).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::wire;
use crate::core::devices::mailbox::Mailbox;
use crate::core::event::Event;
use crate::core::link::Link;
use crate::domain::ConnId;
use crate::domain::presence::{DeviceId, NetworkAccess};
use crate::domain::signal::SignalKind;
use crate::state::AppState;
use crate::store::devices::Endpoint;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::raw::{self, Protocol, RawConn, Work};
use crate::transport::wire::error::{Refused, SignalError};
use crate::transport::wire::payload::PayloadError;

/// The endpoint's path.
pub const PATH: &str = "/signaling/{device_id}";

/// The route of the upgrade, `/signaling/{deviceId}`.
pub fn routes(_: &AppState) -> axum::Router<AppState> {
    axum::Router::new().route(PATH, axum::routing::get(signaling))
}

/// `GET /signaling/{deviceId}`: the WebSocket upgrade.
pub async fn signaling(State(state): State<AppState>, Path(device): Path<String>, request: Request) -> Response {
    raw::upgrade::<DeviceSocket>(&state, request, Ok(device))
}

/// One device's raw connection: its mailbox, the networks its token may
/// signal within, and the older connection it turns out when it starts.
pub struct DeviceSocket {
    mailbox: Arc<Mailbox>,
    networks: NetworkAccess,
    replaced: Mutex<Option<Endpoint>>,
}

/// What a refused frame gets: `{error, code, message}`.
#[derive(Serialize)]
struct ErrorFrame<'a> {
    error: &'a str,
    code: &'static str,
    message: String,
}

/// Seed 004's words for a frame that is not a signaling message.
const INVALID: &str = "Invalid message format";

fn error_frame(e: &SignalError) -> ErrorFrame<'static> {
    let error = if matches!(e, SignalError::Payload(_)) { INVALID } else { "Signal refused" };
    ErrorFrame { error, code: e.code(), message: e.to_string() }
}

/// A signal as delivered: seed 004's frame.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Delivery<'a> {
    #[serde(rename = "type")]
    kind: SignalKind,
    from_peer_id: &'a DeviceId,
    to_peer_id: &'a DeviceId,
    data: &'a crate::domain::queue::SignalBody,
    timestamp: u64,
}

/// A signal this device sent that expired unconfirmed (not in seed 004).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Expired<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    to_peer_id: &'a DeviceId,
    signal_type: SignalKind,
    queued_at: u64,
}

impl Protocol for DeviceSocket {
    const NAME: &'static str = "seed-004";
    type Ask = String;

    async fn open(state: &AppState, admitted: &Admitted, raw: String, id: &ConnId) -> Result<Self, Refused> {
        let device = DeviceId::parse(&raw).map_err(|e| Refused::Invalid("deviceId", e.to_string()))?;
        if let Some(user) = &admitted.user {
            state.core.devices().owned_by(&device, user).await.inspect_err(|_| {
                info!(device_id = %device, user_id = %user, "device connection refused: not this user's device");
            })?;
        }
        let (mailbox, replaced) = Mailbox::open(&state.core, (device, admitted.user.clone()), id.clone()).await?;
        Ok(Self { mailbox: Arc::new(mailbox), networks: admitted.networks.clone(), replaced: Mutex::new(replaced) })
    }

    fn start(conn: &Arc<RawConn<Self>>) -> Option<Work> {
        let conn = conn.clone();
        Some(Box::pin(async move {
            let mailbox = &conn.ns.mailbox;
            info!(conn_id = %conn.id(), device_id = %mailbox.device(), "device connected (raw)");
            let old = conn.ns.replaced.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(old) = old {
                info!(device_id = %mailbox.device(), old_conn_id = %old.conn, "device connected again: the older connection is closed");
                conn.core.courier.close(&old.conn).await;
            }
            let link: Arc<dyn Link> = conn.clone();
            if !mailbox.deliver(link).await {
                info!(conn_id = %conn.id(), device_id = %mailbox.device(), "device connection closed: it no longer holds the device");
                Link::close(&*conn);
            }
        }))
    }

    async fn handle(&self, conn: &RawConn<Self>, text: &str) {
        if let Err(e) = self.signal(conn, text).await {
            let _ = conn.send(&error_frame(&e));
        }
    }

    fn refused(&self, conn: &RawConn<Self>, why: &SignalError) {
        let _ = conn.send(&error_frame(why));
    }

    async fn closed(&self, conn: &RawConn<Self>) {
        self.mailbox.close().await;
        info!(conn_id = %conn.id(), device_id = %self.mailbox.device(), "device disconnected (raw)");
    }

    fn render(event: &Event) -> Option<String> {
        match event {
            Event::Signal { kind, from, to, data, timestamp, .. } => serde_json::to_string(&Delivery {
                kind: *kind,
                from_peer_id: from,
                to_peer_id: to,
                data,
                timestamp: *timestamp,
            })
            .ok(),
            Event::SignalExpired { to, kind, queued_at } => serde_json::to_string(&Expired {
                kind: wire::SIGNAL_EXPIRED,
                to_peer_id: to,
                signal_type: *kind,
                queued_at: *queued_at,
            })
            .ok(),
            _ => None,
        }
    }
}

impl DeviceSocket {
    /// A client frame: `{type, toPeerId, data}`, sent as `/devices`'s `signal` is.
    async fn signal(&self, conn: &RawConn<Self>, text: &str) -> Result<(), SignalError> {
        let value: Value = serde_json::from_str(text).map_err(|_| PayloadError::NotJson)?;
        let req = wire::signal_request(Some(value))?;
        let from = (self.mailbox.device(), &self.networks);
        conn.core.devices().signal(from, req.to, req.kind, req.data).await?;
        Ok(())
    }
}
