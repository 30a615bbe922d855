//! The one place errors become wire `{ code, message }`.
//!
//! [`SignalError`] is every way a client's event can fail (a core refusal,
//! a malformed payload, the connection's own limits); [`Refused`] every way
//! a connection can be refused at its handshake; [`HttpError`] every way a
//! REST request can fail. Each maps to the contract's codes here and nowhere
//! else. Internal causes (a store that is down) are logged where they
//! happen, never sent.
//!
//! Must not import `conn`, `http` or a feature folder of `transport` (as all of `wire`).

use serde::Serialize;

use super::payload::PayloadError;
use crate::core::CoreError;
use crate::domain::RoomError;
use crate::domain::signal::RouteError;

/// `{ code, message }`, the body of every error on the wire.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// A stable machine-readable code from the contract.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

/// Why a client's event failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The payload is malformed.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The event is not one this protocol knows.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// The core refused or could not do it.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Events came faster than `EVENTS_PER_SECOND` (bursts of `EVENT_BURST`) allow.
    #[error("events are coming faster than this server allows on one connection; slow down")]
    RateLimited,
    /// `MAX_PENDING_EVENTS` events are waiting on this connection already.
    #[error("too many events are waiting to be handled on this connection; wait for their answers")]
    Overloaded,
    /// This connection is being closed (it disconnected, or the server is shutting down).
    #[error("this connection is closing; reconnect and retry")]
    Closing,
}

impl From<RoomError> for SignalError {
    fn from(e: RoomError) -> Self {
        SignalError::Core(e.into())
    }
}

impl SignalError {
    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            SignalError::Payload(_) | SignalError::UnknownEvent(_) => "invalid-payload",
            SignalError::RateLimited | SignalError::Overloaded => "rate-limited",
            SignalError::Closing => "unavailable",
            SignalError::Core(e) => core_code(e),
        }
    }

    /// `{ code, message }` for acks and `signaling-error`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }
}

fn core_code(e: &CoreError) -> &'static str {
    match e {
        CoreError::Room(rule) => room_code(rule),
        CoreError::Route(RouteError::SenderNotAnnounced) => "not-announced",
        CoreError::Route(RouteError::TargetNotFound) | CoreError::TargetGone => "target-not-found",
        CoreError::TargetBusy | CoreError::QueueFull(_) => "target-busy",
        CoreError::Unavailable => "unavailable",
        CoreError::TooManyRooms(_)
        | CoreError::TooManyChannels(_)
        | CoreError::TooManyAnnouncements(_)
        | CoreError::TooManyJoinRequests(_) => "rate-limited",
        CoreError::NotYourUser(_) | CoreError::NotYourDevice => "unauthorized",
        CoreError::DeviceTaken
        | CoreError::DeviceTakenWhileSignalsWait
        | CoreError::NotInNetwork(_)
        | CoreError::IdTaken => "forbidden",
        CoreError::ConcurrentLimit => "unavailable",
        // A worker's heartbeat from a connection that lost its id: it holds nothing any more.
        CoreError::Replaced => "not-in-room",
    }
}

fn room_code(rule: &RoomError) -> &'static str {
    match rule {
        RoomError::AlreadyJoinedAs(_) => "invalid-payload",
        RoomError::Full { .. } => "room-full",
        RoomError::NotInRoom => "not-in-room",
        RoomError::TargetNotFound => "target-not-found",
        RoomError::NotApproved => "not-approved",
        RoomError::AlreadyExists => "room-exists",
        RoomError::NotHost => "not-host",
        RoomError::NoSuchRoom => "room-not-found",
        RoomError::NoRequest => "no-request",
        RoomError::TooManyRequests => "rate-limited",
    }
}

/// Why a token was refused (sent to the client; no secrets in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token anywhere in the request.
    #[error("unauthorized: a token is required (auth.token, Authorization: Bearer, or ?token=)")]
    Missing,
    /// The token does not verify, has expired, or names no valid user.
    #[error("unauthorized: {0}")]
    Invalid(String),
}

/// Why a connection was refused at its handshake (the client gets
/// `connect_error`, or its protocol's refusal, with this message).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// `MAX_CONNECTIONS_PER_IP` connections are open from this address.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// `JWT_SECRET` is set and the handshake has no valid token.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// A field the protocol needs is absent.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A field breaks its rule (the rule is named).
    #[error("{0} {1}")]
    Invalid(&'static str, String),
    /// With JWT on, the handshake names another identity than the token's user.
    #[error("this token may only connect as {0} {1:?}")]
    NotTokenUser(&'static str, String),
    /// With JWT on (and `MESH_OPEN_WITH_JWT` not `true`), the token lacks a claim `/mesh` requires.
    #[error("unauthorized: the token has no {0} claim, which /mesh requires")]
    MissingClaim(&'static str),
    /// The token's `organizationId` claim does not list this organization.
    #[error("this token may not join organizationId {0:?}")]
    OrganizationNotAllowed(String),
    /// The token's `capabilities` claim does not list this capability.
    #[error("this token may not declare the capability {0:?}")]
    CapabilityNotAllowed(String),
    /// With JWT on, the device was not announced by the token's user.
    #[error("this device was not announced by this token's user: announce it first")]
    NotYourDevice,
    /// `WORKER_KEY` is not set: workers cannot register.
    #[error("WORKER_KEY is not set on this server: no worker is admitted")]
    NoWorkerKey,
    /// The worker key is wrong or absent.
    #[error("wrong or missing worker key")]
    WrongWorkerKey,
    /// This address tried too many wrong worker keys lately.
    #[error("too many wrong worker keys from this address; retry in a few seconds")]
    TooManyKeyFailures,
    /// The store cannot be asked whether the connection may be admitted.
    #[error("the server's state store is unavailable; retry later")]
    Unavailable,
    /// PeerJS: the socket's query lacks `id`, `token` or `key` (peerjs-server's words).
    #[error("No id, token, or key supplied to websocket server")]
    PeerJsParameters,
    /// PeerJS: the key is not `PEERJS_KEY` (peerjs-server's words).
    #[error("Invalid key provided")]
    PeerJsKey,
    /// PeerJS: the id breaks switchboard's bound on ids.
    #[error("Invalid id")]
    PeerJsId,
    /// PeerJS: the id is held under another token.
    #[error("ID is taken")]
    IdTaken,
    /// PeerJS: `PEERJS_CONCURRENT_LIMIT` ids are registered (peerjs-server's words).
    #[error("Server has reached its concurrent user limit")]
    ConcurrentLimit,
}

impl Refused {
    /// The WebSocket close code a raw connection is refused with: 1008
    /// (policy violation) for what the client must change, 1013 (try again
    /// later) for what may pass.
    pub fn close_code(&self) -> u16 {
        match self {
            Refused::TooManyConnections
            | Refused::TooManyKeyFailures
            | Refused::Unavailable
            | Refused::ConcurrentLimit => 1013,
            _ => 1008,
        }
    }
}

impl From<CoreError> for Refused {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotYourDevice => Refused::NotYourDevice,
            CoreError::IdTaken => Refused::IdTaken,
            CoreError::ConcurrentLimit => Refused::ConcurrentLimit,
            _ => Refused::Unavailable,
        }
    }
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

mod http;
pub use http::{FieldError, HttpError};

#[cfg(test)]
mod tests;
