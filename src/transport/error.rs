//! The one place errors become wire `{ code, message }`.
//!
//! [`SignalError`] is every way a socket event can fail; [`HttpError`] every
//! way a REST request can. Each maps to the contract's codes here and nowhere
//! else. Internal causes (a store that is down) are logged, never sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::payload::PayloadError;
use crate::domain::signal::RouteError;
use crate::domain::{IdError, RoomError};
use crate::store::devices::{AnnounceFailure, EnqueueFailure};
use crate::store::rooms::RoomStoreError;
use crate::store::{StoreError, StoreFailure};

/// `{ code, message }`, the body of every error on the wire.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// A stable machine-readable code from the contract.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

/// Why a socket event failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The payload is malformed.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The event is not part of the contract.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A room rule refused the event.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The target's outgoing queue is full; the relay was not delivered.
    #[error("the target cannot take more messages now; the relay was not delivered")]
    TargetBusy,
    /// The target's connection closed before the relay could be handed to it.
    #[error("the target's connection has closed; the relay was not delivered")]
    TargetGone,
    /// This connection sent events faster than they can be processed.
    #[error("too many events in flight on this connection; slow down")]
    Overloaded,
    /// The backing store cannot be reached.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
    /// With JWT on, the `userId` is not the token's `sub`.
    #[error("this token may only join as {0:?}")]
    Unauthorized(crate::domain::UserId),
    /// The connection is in `MAX_ROOMS_PER_CONNECTION` rooms already.
    #[error("this connection is in {0} rooms already, the most allowed; leave one first")]
    TooManyRooms(usize),
    /// This connection is being closed (the server is shutting down).
    #[error("this connection is closing; reconnect and retry")]
    Closing,
    /// A `/devices` signal that leaves its network or comes from an unannounced device.
    #[error(transparent)]
    Route(#[from] crate::domain::signal::RouteError),
    /// The receiving device has the most signals waiting already.
    #[error("{0} signals are waiting for that device already; it must take some first")]
    QueueFull(usize),
}

impl SignalError {
    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            SignalError::Payload(_) | SignalError::UnknownEvent(_) => "invalid-payload",
            SignalError::Room(RoomError::AlreadyJoinedAs(_)) => "invalid-payload",
            SignalError::Room(RoomError::Full { .. }) => "room-full",
            SignalError::Room(RoomError::NotInRoom) => "not-in-room",
            SignalError::Room(RoomError::TargetNotFound) | SignalError::TargetGone => "target-not-found",
            SignalError::Room(RoomError::NotApproved) => "not-approved",
            SignalError::Room(RoomError::AlreadyExists) => "room-exists",
            SignalError::Room(RoomError::NotHost) => "not-host",
            SignalError::Room(RoomError::NoSuchRoom) => "room-not-found",
            SignalError::Room(RoomError::NoRequest) => "no-request",
            SignalError::Room(RoomError::TooManyRequests) => "rate-limited",
            SignalError::TargetBusy => "target-busy",
            SignalError::Overloaded | SignalError::TooManyRooms(_) => "rate-limited",
            SignalError::Unauthorized(_) => "unauthorized",
            SignalError::Unavailable | SignalError::Closing => "unavailable",
            SignalError::Route(RouteError::SenderNotAnnounced) => "not-announced",
            SignalError::Route(RouteError::TargetNotFound) => "target-not-found",
            SignalError::QueueFull(_) => "target-busy",
        }
    }

    /// `{ code, message }` for acks and `signaling-error`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }
}

impl From<StoreError> for SignalError {
    fn from(_: StoreError) -> Self {
        SignalError::Unavailable
    }
}

impl From<RoomStoreError> for SignalError {
    fn from(e: RoomStoreError) -> Self {
        match e {
            RoomStoreError::Rule(rule) => SignalError::Room(rule),
            RoomStoreError::Store(_) => SignalError::Unavailable,
        }
    }
}

impl From<EnqueueFailure> for SignalError {
    fn from(e: EnqueueFailure) -> Self {
        match e {
            EnqueueFailure::Full(max) => SignalError::QueueFull(max),
            EnqueueFailure::Store(_) => SignalError::Unavailable,
        }
    }
}

/// Logs a store call that failed for want of the store (call it before the
/// conversion to a wire error). An outage is logged once when it starts and
/// once when it ends, by the upkeep task; while it is known (`redis_up` is
/// `Some(false)`) each refused event is logged at debug only. A failure the
/// upkeep has not seen yet (the first second of an outage, or a slow Redis) is a
/// warning, at most one a second whatever the event rate.
pub fn report_store_failure(e: &impl StoreFailure, redis_up: Option<bool>, during: &'static str) {
    let Some(cause) = e.unavailable() else { return };
    if redis_up == Some(false) {
        tracing::debug!(%cause, during, "state store unavailable");
        return;
    }
    static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST_WARNING.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(%cause, during, "state store unavailable");
    }
}

/// Why a connection was refused at the handshake (the client gets
/// `connect_error` with this message).
#[derive(Debug, thiserror::Error)]
pub enum ConnectRefused {
    /// `MAX_CONNECTIONS_PER_IP` connections are open from this address.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// `JWT_SECRET` is set and the handshake has no valid token.
    #[error(transparent)]
    Unauthorized(#[from] super::auth::AuthError),
    /// `/devices`: the handshake's `deviceId` is missing or malformed.
    #[error("auth.deviceId {0}")]
    BadDevice(crate::domain::presence::PresenceError),
    /// `/devices` with JWT on: the device was not announced by the token's user.
    #[error("this device was not announced by this token's user: announce it first")]
    NotYourDevice,
    /// `/mesh`: the handshake lacks or breaks an identity field (the reason says which).
    #[error("{0}")]
    Mesh(String),
    /// `/workers`: the key or the worker's description is refused (the reason says which).
    #[error("{0}")]
    Worker(String),
    /// The store cannot be asked whether the connection may be admitted.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
}

/// A failed ack: `{ ok: false, error: { code, message } }`.
#[derive(Serialize)]
pub struct AckError {
    ok: bool,
    error: ErrorBody,
}

impl From<&SignalError> for AckError {
    fn from(e: &SignalError) -> Self {
        Self { ok: false, error: e.body() }
    }
}

/// `signaling-error`: `{ event, code, message }`, for events that carried no ack.
#[derive(Serialize)]
pub struct SignalingErrorEvent<'a> {
    event: &'a str,
    #[serde(flatten)]
    error: ErrorBody,
}

impl<'a> SignalingErrorEvent<'a> {
    /// The error of `event`.
    pub fn new(event: &'a str, e: &SignalError) -> Self {
        Self { event, error: e.body() }
    }
}

/// Why a REST request failed; the response is `{ error: { code, message } }`.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A query parameter is malformed.
    #[error("{0}")]
    BadQuery(String),
    /// A path id breaks the id rule.
    #[error("roomId {0}")]
    BadRoomId(IdError),
    /// No room has that id.
    #[error("no room with that id")]
    RoomNotFound,
    /// No route matches the path.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The socket.io client bundle is not installed under `WEB_DIR`.
    #[error("the socket.io client bundle is not installed: run `npm ci --omit=dev` in the web directory (WEB_DIR)")]
    ClientBundleMissing,
    /// A websocket upgrade from an origin not in `CLIENT_URL`.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The backing store cannot be reached.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
    /// A route that reveals rooms or users, without a valid token (JWT on).
    #[error(transparent)]
    Unauthorized(#[from] super::auth::AuthError),
    /// Too many requests from this address; retry after the given time.
    #[error("too many requests from this address; retry later")]
    RateLimited(std::time::Duration),
    /// Request fields that break their rules; each is listed in `errors`.
    #[error("invalid request: {}", .0.iter().map(|f| f.field).collect::<Vec<_>>().join(", "))]
    InvalidFields(Vec<FieldError>),
    /// The authenticated user may not do this (another user's device).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A device announced more often than `RATE_LIMIT_MAX_REQUESTS` per window.
    #[error("too many presence announcements from this device; retry later")]
    TooManyAnnouncements(std::time::Duration),
    /// `POST /bootstrap` with no healthy worker.
    #[error("no worker is available; retry later")]
    NoWorkers,
}

/// One field of a request that breaks its rule.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field's name as sent (`peerId`, `capabilities[1]`, ...).
    pub field: &'static str,
    /// The rule it breaks.
    pub message: String,
}

impl HttpError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            HttpError::BadQuery(_) => (StatusCode::BAD_REQUEST, "invalid-query"),
            HttpError::BadRoomId(_) => (StatusCode::BAD_REQUEST, "invalid-room-id"),
            HttpError::RoomNotFound => (StatusCode::NOT_FOUND, "room-not-found"),
            HttpError::NoRoute(_) => (StatusCode::NOT_FOUND, "not-found"),
            HttpError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            HttpError::ClientBundleMissing => (StatusCode::NOT_FOUND, "client-bundle-missing"),
            HttpError::OriginNotAllowed => (StatusCode::FORBIDDEN, "origin-not-allowed"),
            HttpError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            HttpError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            HttpError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            HttpError::InvalidFields(_) => (StatusCode::BAD_REQUEST, "invalid-payload"),
            HttpError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            HttpError::TooManyAnnouncements(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            HttpError::NoWorkers => (StatusCode::SERVICE_UNAVAILABLE, "no-workers"),
        }
    }
}

impl From<StoreError> for HttpError {
    fn from(_: StoreError) -> Self {
        HttpError::Unavailable
    }
}

impl From<RoomStoreError> for HttpError {
    fn from(_: RoomStoreError) -> Self {
        HttpError::Unavailable
    }
}

impl From<AnnounceFailure> for HttpError {
    fn from(e: AnnounceFailure) -> Self {
        match e {
            AnnounceFailure::Rule(_) => HttpError::Forbidden("this device id belongs to another user"),
            AnnounceFailure::Store(_) => HttpError::Unavailable,
        }
    }
}

#[derive(Serialize)]
struct HttpErrorBody {
    error: ErrorBody,
    /// The failing fields, for `invalid-payload`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.to_string();
        let (errors, wait) = match self {
            HttpError::InvalidFields(fields) => (fields, None),
            HttpError::RateLimited(wait) | HttpError::TooManyAnnouncements(wait) => (Vec::new(), Some(wait)),
            _ => (Vec::new(), None),
        };
        let body = HttpErrorBody { error: ErrorBody { code, message }, errors };
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = wait {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_rule_maps_to_its_contract_code() {
        let cases = [
            (SignalError::Room(RoomError::Full { max: 2 }), "room-full"),
            (SignalError::Room(RoomError::NotInRoom), "not-in-room"),
            (SignalError::Room(RoomError::TargetNotFound), "target-not-found"),
            (SignalError::TargetGone, "target-not-found"),
            (SignalError::TargetBusy, "target-busy"),
            (SignalError::Overloaded, "rate-limited"),
            (SignalError::Unavailable, "unavailable"),
            (SignalError::UnknownEvent("x".into()), "invalid-payload"),
            (SignalError::Payload(PayloadError::NotAnObject), "invalid-payload"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn a_store_outage_reaches_the_wire_without_its_cause() {
        let err = SignalError::from(StoreError::Unavailable("redis at 10.0.0.5 refused".into()));
        assert_eq!(err.code(), "unavailable");
        assert!(!err.body().message.contains("10.0.0.5"));
    }

    #[test]
    fn signaling_error_flattens_the_body() {
        let event = SignalingErrorEvent::new("offer", &SignalError::TargetBusy);
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["event"], "offer");
        assert_eq!(v["code"], "target-busy");
        assert!(v["message"].is_string());
    }
}
