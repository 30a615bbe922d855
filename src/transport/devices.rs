//! Seed 004's REST API: presence announcements, peer discovery and the queue
//! of signals waiting for a device.
//!
//! - `POST /network/{networkId}/announce` `{ peerId, signalAddress, capabilities? }`
//! - `GET /network/{networkId}/peers`
//! - `GET /network/{networkId}/peer/{userId}`
//! - `GET /signaling/messages/{deviceId}` (returns and removes, as the seed;
//!   `?peek=true` returns with ids and removes nothing)
//! - `DELETE /signaling/messages/{deviceId}?upTo=ID` (removes what was confirmed)
//!
//! With `JWT_SECRET` set every route needs a token, the device's user is the
//! token's `sub`, and a device's queue is readable only by its own user.
//! Without it the server is open and an announcement may name its `userId`
//! (else the device is its own user).

use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::Authenticated;
use super::error::{FieldError, HttpError};
use super::query::param;
use crate::domain::UserId;
use crate::domain::presence::PeerLookup;
use crate::domain::presence::{Announcement, Capability, Device, DeviceId, NetworkId, SignalAddress};
use crate::domain::signal::Queued;
use crate::state::AppState;
use crate::store::StoreFailure;

/// The routes, each behind the token check (JWT when configured).
pub fn routes(state: &AppState) -> Router<AppState> {
    let token = || axum::middleware::from_fn_with_state(state.clone(), super::http::require_token);
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
            last_seen: super::http::rfc3339(d.last_seen),
        }
    }
}

async fn announce(
    State(state): State<AppState>,
    Path(network): Path<String>,
    authenticated: Option<Extension<Authenticated>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let body = body.map_err(|e| invalid("body", e.body_text()))?.0;
    let sub = authenticated.map(|Extension(Authenticated(sub))| sub);
    let a = announcement(&network, &body, sub)?;
    // Counted per user and device, so another user's refused attempts on a
    // device id cannot use up its owner's allowance.
    let limit = state.config.presence.announce_limit;
    let refused = state.devices.presence.take_announcement(&a.user, &a.device, limit).await;
    if let Some(wait) = refused.map_err(|e| failed(&state, e, "announce"))? {
        return Err(HttpError::TooManyAnnouncements(wait));
    }
    let now = SystemTime::now();
    let device = state.devices.presence.announce(a, now).await.map_err(|e| failed(&state, e, "announce"))?;
    let expires = device.last_seen + state.config.presence.device_ttl;
    tracing::info!(network_id = %device.network, device_id = %device.id, user_id = %device.user, "device announced");
    Ok(Json(json!({
        "success": true,
        "deviceId": device.id,
        "isCoordinator": device.coordinator,
        "expiresAt": super::http::rfc3339(expires),
    })))
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

async fn peers(State(state): State<AppState>, Path(network): Path<String>) -> Result<Json<Value>, HttpError> {
    let network = NetworkId::parse(&network).map_err(|e| invalid("networkId", e.to_string()))?;
    let ttl = state.config.presence.device_ttl;
    let peers =
        state.devices.presence.peers(&network, SystemTime::now(), ttl).await.map_err(|e| failed(&state, e, "peers"))?;
    Ok(Json(json!({ "peers": peers.into_iter().map(PeerDto::from).collect::<Vec<_>>() })))
}

async fn peer(
    State(state): State<AppState>,
    Path((network, user)): Path<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let network = NetworkId::parse(&network).map_err(|e| invalid("networkId", e.to_string()));
    let user = UserId::parse(&user).map_err(|e| invalid("userId", e.to_string()));
    let (network, user) = (network?, user?);
    let ttl = state.config.presence.device_ttl;
    let lookup = state.devices.presence.find_user(&network, &user, SystemTime::now(), ttl).await;
    Ok(Json(match lookup.map_err(|e| failed(&state, e, "peer"))? {
        PeerLookup::Online(d) => json!({
            "online": true,
            "deviceId": d.id,
            "signalAddress": d.signal_address,
            "capabilities": d.capabilities,
            "isCoordinator": d.coordinator,
            "lastSeen": super::http::rfc3339(d.last_seen),
        }),
        PeerLookup::Offline { last_seen, last_coordinators } => json!({
            "online": false,
            "lastSeen": last_seen.map(super::http::rfc3339),
            "lastCoordinators": last_coordinators,
        }),
    }))
}

/// A queued signal as `GET /signaling/messages` returns it.
fn message_json(q: &Queued) -> Value {
    json!({
        "id": q.id,
        "type": q.signal.kind,
        "from": q.signal.from,
        "to": q.signal.to,
        "data": q.signal.data,
        "timestamp": super::http::rfc3339(q.queued_at),
    })
}

async fn messages(
    State(state): State<AppState>,
    OwnDevice(device): OwnDevice,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, HttpError> {
    let peek = param(query.as_deref(), "peek").is_some_and(|v| v == "true" || v == "1");
    let mut messages = state.devices.queues.pending(&device).await.map_err(|e| failed(&state, e, "messages"))?;
    if !peek && let Some(last) = messages.last() {
        // Up to what was read (a signal queued meanwhile stays); only what this
        // call removed is returned, so two readers never both get a message.
        messages = state.devices.queues.ack(&device, last.id).await.map_err(|e| failed(&state, e, "messages"))?;
    }
    Ok(Json(json!({ "messages": messages.iter().map(message_json).collect::<Vec<_>>() })))
}

async fn confirm(
    State(state): State<AppState>,
    OwnDevice(device): OwnDevice,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, HttpError> {
    let up_to = param(query.as_deref(), "upTo")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| invalid("upTo", "is required: the id of the last message received".into()))?;
    let removed = state.devices.queues.ack(&device, up_to).await.map_err(|e| failed(&state, e, "confirm"))?;
    Ok(Json(json!({ "removed": removed.len() })))
}

/// The `{deviceId}` of the path, if the caller may read its queue: with JWT
/// on, only a device announced by the token's user.
struct OwnDevice(DeviceId);

impl FromRequestParts<AppState> for OwnDevice {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|e| invalid("deviceId", e.body_text()))?;
        let device = DeviceId::parse(&raw).map_err(|e| invalid("deviceId", e.to_string()))?;
        // `require_token` has put the token's user here when JWT is on.
        if let Some(Authenticated(sub)) = parts.extensions.get::<Authenticated>() {
            let record = state.devices.presence.device(&device).await.map_err(|e| failed(state, e, "messages"))?;
            if record.is_none_or(|d| &d.user != sub) {
                return Err(HttpError::Forbidden("a device may only read its own queue: announce it first"));
            }
        }
        Ok(Self(device))
    }
}

fn invalid(field: &'static str, message: String) -> HttpError {
    HttpError::InvalidFields(vec![FieldError { field, message }])
}

fn failed<E: StoreFailure + Into<HttpError>>(state: &AppState, e: E, during: &'static str) -> HttpError {
    state.reported(e, during).into()
}
