//! REST failures: `{ error: { code, message } }` with the HTTP status the
//! contract gives each code (and `errors` for invalid fields, `Retry-After`
//! for rate limits).

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AuthError;
use super::ErrorBody;
use crate::core::CoreError;
use crate::domain::IdError;

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
    /// A websocket upgrade from an origin not in `CLIENT_URL`.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The backing store cannot be reached.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
    /// A route that reveals rooms or users, without a valid token (JWT on).
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// An engine.io handshake from an address with `MAX_CONNECTIONS_PER_IP` sessions open.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// Too many requests from this address; retry after the given time.
    #[error("too many requests from this address; retry later")]
    RateLimited(Duration),
    /// Request fields that break their rules; each is listed in `errors`.
    #[error("invalid request: {}", .0.iter().map(|f| f.field).collect::<Vec<_>>().join(", "))]
    InvalidFields(Vec<FieldError>),
    /// The authenticated user may not do this (another user's device).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A device announced more often than `RATE_LIMIT_MAX_REQUESTS` per window.
    #[error("too many presence announcements from this device; retry later")]
    TooManyAnnouncements(Duration),
    /// `POST /bootstrap` with no healthy worker.
    #[error("no worker is available; retry later")]
    NoWorkers,
    /// `GET {PEERJS_PATH}/{key}/peers` with `PEERJS_ALLOW_DISCOVERY` off.
    #[error("listing peers is off on this server (PEERJS_ALLOW_DISCOVERY)")]
    DiscoveryDisabled,
    /// A plain request to an endpoint that takes only WebSocket upgrades.
    #[error("this endpoint takes a WebSocket upgrade (GET with Upgrade: websocket, Sec-WebSocket-Version: 13)")]
    UpgradeRequired,
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
    /// `InvalidFields` with one field.
    pub fn invalid(field: &'static str, message: String) -> Self {
        HttpError::InvalidFields(vec![FieldError { field, message }])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            HttpError::BadQuery(_) => (StatusCode::BAD_REQUEST, "invalid-query"),
            HttpError::BadRoomId(_) => (StatusCode::BAD_REQUEST, "invalid-room-id"),
            HttpError::RoomNotFound => (StatusCode::NOT_FOUND, "room-not-found"),
            HttpError::NoRoute(_) => (StatusCode::NOT_FOUND, "not-found"),
            HttpError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            HttpError::OriginNotAllowed => (StatusCode::FORBIDDEN, "origin-not-allowed"),
            HttpError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            HttpError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            HttpError::TooManyConnections => (StatusCode::TOO_MANY_REQUESTS, "too-many-connections"),
            HttpError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            HttpError::InvalidFields(_) => (StatusCode::BAD_REQUEST, "invalid-payload"),
            HttpError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            HttpError::TooManyAnnouncements(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            HttpError::NoWorkers => (StatusCode::SERVICE_UNAVAILABLE, "no-workers"),
            HttpError::UpgradeRequired => (StatusCode::UPGRADE_REQUIRED, "upgrade-required"),
            HttpError::DiscoveryDisabled => (StatusCode::UNAUTHORIZED, "discovery-disabled"),
        }
    }
}

impl From<crate::store::StoreError> for HttpError {
    fn from(_: crate::store::StoreError) -> Self {
        HttpError::Unavailable
    }
}

impl From<CoreError> for HttpError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::TooManyAnnouncements(wait) => HttpError::TooManyAnnouncements(wait),
            CoreError::DeviceTaken => HttpError::Forbidden("this device id belongs to another user"),
            CoreError::DeviceTakenWhileSignalsWait => {
                HttpError::Forbidden("this device id belongs to another user, whose signals still wait for it")
            }
            CoreError::NotYourDevice => HttpError::Forbidden("a device may only read its own queue: announce it first"),
            CoreError::NotInNetwork(_) => HttpError::Forbidden("this token's network claim does not name this network"),
            // Anything else a REST route meets is the store's unavailability.
            _ => HttpError::Unavailable,
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
