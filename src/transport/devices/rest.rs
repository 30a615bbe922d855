//! Seed 004's REST API: presence announcements, peer discovery and the queue
//! of signals waiting for a device.
//!
//! - `POST /network/{networkId}/announce` `{ peerId, signalAddress, capabilities? }`
//! - `GET /network/{networkId}/peers`
//! - `GET /network/{networkId}/peer/{userId}`
//! - `GET /signaling/messages/{deviceId}` (returns and removes, as the seed;
//!   `?peek=true` returns with ids and removes nothing); one page of at most
//!   [`MESSAGES_PAGE`](crate::core::devices::MESSAGES_PAGE) messages, oldest first, from `?after=ID` (default 0)
//! - `DELETE /signaling/messages/{deviceId}?upTo=ID` (removes what was confirmed)
//!
//! With `JWT_SECRET` set every route needs a token, the device's user is the
//! token's `sub`, and a device's queue is readable only by its own user.
//! Without it the server is open and an announcement may name its `userId`
//! (else the device is its own user). With `DEVICE_NETWORK_CLAIM` set, the
//! network routes serve only the networks the token's claim names (else `403
//! forbidden`); see [`Networks`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::extract::{Networks, OwnDevice};
use crate::domain::UserId;
use crate::domain::presence::{Announcement, Capability, Device, DeviceId, NetworkId, PeerLookup, SignalAddress};
use crate::domain::queue::SignalBody;
use crate::domain::signal::{Queued, SignalKind};
use crate::state::AppState;
use crate::transport::conn::auth::Authenticated;
use crate::transport::http::guard::require_token;
use crate::transport::wire::error::{FieldError, HttpError};
use crate::transport::wire::query::param;
use crate::transport::wire::rfc3339;

/// The routes, each behind the token check (JWT when configured).
pub fn routes(state: &AppState) -> Router<AppState> {
    let token = || from_fn_with_state(state.clone(), require_token);
    Router::new()
        .route("/network/{network_id}/announce", post(announce).route_layer(token()))
        .route("/network/{network_id}/peers", get(peers).route_layer(token()))
        .route("/network/{network_id}/peer/{user_id}", get(peer).route_layer(token()))
        .route("/signaling/messages/{device_id}", get(messages).delete(confirm).route_layer(token()))
}

/// A device as the REST API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerDto {
    user_id: UserId,
    device_id: DeviceId,
    signal_address: SignalAddress,
    capabilities: Vec<Capability>,
    is_coordinator: bool,
    last_seen: String,
}

impl From<Device> for PeerDto {
    fn from(d: Device) -> Self {
        Self {
            user_id: d.user,
            device_id: d.id,
            signal_address: d.signal_address,
            capabilities: d.capabilities,
            is_coordinator: d.coordinator,
            last_seen: rfc3339(d.last_seen),
        }
    }
}

/// The answer to an announcement.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Announced {
    success: bool,
    device_id: DeviceId,
    is_coordinator: bool,
    expires_at: String,
}

async fn announce(
    State(state): State<AppState>,
    Path(network): Path<String>,
    authenticated: Option<Extension<Authenticated>>,
    Networks(access): Networks,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Announced>, HttpError> {
    let body = body.map_err(|e| HttpError::invalid("body", e.body_text()))?.0;
    let sub = authenticated.map(|Extension(Authenticated(sub))| sub);
    let device = state.core.devices().announce(announcement(&network, &body, sub)?, &access).await?;
    let expires = device.last_seen + state.config.presence.device_ttl;
    Ok(Json(Announced {
        success: true,
        device_id: device.id,
        is_coordinator: device.coordinator,
        expires_at: rfc3339(expires),
    }))
}

/// Validates an announcement, collecting every failing field.
fn announcement(network: &str, body: &Value, sub: Option<UserId>) -> Result<Announcement, HttpError> {
    let mut errors = Vec::new();
    let mut field = |name: &'static str, message: String| errors.push(FieldError { field: name, message });
    let network = NetworkId::parse(network).map_err(|e| field("networkId", e.to_string())).ok();
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let device = match text("peerId") {
        Some(raw) => DeviceId::parse(raw).map_err(|e| field("peerId", e.to_string())).ok(),
        None => {
            field("peerId", "is required, as a string".into());
            None
        }
    };
    let address = match text("signalAddress") {
        Some(raw) => SignalAddress::parse(raw).map_err(|e| field("signalAddress", e.to_string())).ok(),
        None => {
            field("signalAddress", "is required, as a string".into());
            None
        }
    };
    let capabilities = match body.get("capabilities") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let parsed: Result<Vec<_>, _> = items
                .iter()
                .map(|c| {
                    c.as_str()
                        .map_or(Err("must be strings".to_owned()), |s| Capability::parse(s).map_err(|e| e.to_string()))
                })
                .collect();
            parsed.map_err(|e| field("capabilities", e)).ok()
        }
        Some(_) => {
            field("capabilities", "must be an array".into());
            None
        }
    };
    let user = match sub {
        Some(sub) => Some(sub),
        None => match text("userId") {
            Some(raw) => UserId::parse(raw).map_err(|e| field("userId", e.to_string())).ok(),
            None => device.as_ref().and_then(|d| UserId::parse(d.as_str()).ok()),
        },
    };
    match (network, device, address, capabilities, user) {
        (Some(network), Some(device), Some(signal_address), Some(capabilities), Some(user)) if errors.is_empty() => {
            Ok(Announcement { network, device, user, signal_address, capabilities })
        }
        _ => Err(HttpError::InvalidFields(errors)),
    }
}

#[derive(Serialize)]
struct Peers {
    peers: Vec<PeerDto>,
}

async fn peers(
    State(state): State<AppState>,
    Path(network): Path<String>,
    Networks(access): Networks,
) -> Result<Json<Peers>, HttpError> {
    let network = NetworkId::parse(&network).map_err(|e| HttpError::invalid("networkId", e.to_string()))?;
    let peers = state.core.devices().peers(&network, &access).await?;
    Ok(Json(Peers { peers: peers.into_iter().map(PeerDto::from).collect() }))
}

/// Where a user's device is: online with its address, or the fallback coordinators.
#[derive(Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum Found {
    Online {
        online: bool,
        device_id: DeviceId,
        signal_address: SignalAddress,
        capabilities: Vec<Capability>,
        is_coordinator: bool,
        last_seen: String,
    },
    Offline {
        online: bool,
        last_seen: Option<String>,
        last_coordinators: Vec<DeviceId>,
    },
}

async fn peer(
    State(state): State<AppState>,
    Path((network, user)): Path<(String, String)>,
    Networks(access): Networks,
) -> Result<Json<Found>, HttpError> {
    let network = NetworkId::parse(&network).map_err(|e| HttpError::invalid("networkId", e.to_string()));
    let user = UserId::parse(&user).map_err(|e| HttpError::invalid("userId", e.to_string()));
    let (network, user) = (network?, user?);
    Ok(Json(match state.core.devices().find(&network, &user, &access).await? {
        PeerLookup::Online(d) => Found::Online {
            online: true,
            device_id: d.id,
            signal_address: d.signal_address,
            capabilities: d.capabilities,
            is_coordinator: d.coordinator,
            last_seen: rfc3339(d.last_seen),
        },
        PeerLookup::Offline { last_seen, last_coordinators } => {
            Found::Offline { online: false, last_seen: last_seen.map(rfc3339), last_coordinators }
        }
    }))
}

/// A queued signal as `GET /signaling/messages` returns it.
#[derive(Serialize)]
struct Message<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: SignalKind,
    from: &'a DeviceId,
    to: &'a DeviceId,
    data: &'a SignalBody,
    timestamp: String,
}

impl<'a> From<&'a Queued> for Message<'a> {
    fn from(q: &'a Queued) -> Self {
        let s = &q.signal;
        Self { id: q.id, kind: s.kind, from: &s.from, to: &s.to, data: &s.data, timestamp: rfc3339(q.queued_at) }
    }
}

#[derive(Serialize)]
struct Messages<'a> {
    messages: Vec<Message<'a>>,
}

async fn messages(
    State(state): State<AppState>,
    OwnDevice(device, owner): OwnDevice,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let peek = param(query.as_deref(), "peek").is_some_and(|v| v == "true" || v == "1");
    let after = match param(query.as_deref(), "after") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| HttpError::invalid("after", "must be a message id".into()))?,
    };
    let queued = match owner {
        Some(owner) => state.core.devices().messages((&device, &owner), after, peek).await?,
        None => Vec::new(),
    };
    Ok(Json(Messages { messages: queued.iter().map(Message::from).collect() }).into_response())
}

#[derive(Serialize)]
struct Removed {
    removed: usize,
}

async fn confirm(
    State(state): State<AppState>,
    OwnDevice(device, owner): OwnDevice,
    RawQuery(query): RawQuery,
) -> Result<Json<Removed>, HttpError> {
    let up_to = param(query.as_deref(), "upTo")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| HttpError::invalid("upTo", "is required: the id of the last message received".into()))?;
    let removed = match owner {
        Some(owner) => state.core.devices().confirm((&device, &owner), up_to).await?,
        None => 0,
    };
    Ok(Json(Removed { removed }))
}
