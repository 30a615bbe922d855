//! One admission path for every connection, whatever its protocol: the
//! browser origin (for websocket upgrades), the credential (a JWT with
//! `JWT_SECRET` set, or the worker key) and a slot of the client address's
//! `MAX_CONNECTIONS_PER_IP`, each refusal typed ([`Refused`]). What a feature
//! asks of its handshake beyond that (a device id, a mesh identity) it checks
//! itself, with the same refusals.
//!
//! The address slot is taken once per engine.io session, at its handshake
//! ([`open_session`], before any namespace CONNECT), and kept in the
//! handshake request's extensions: engineioxide keeps that request's head
//! (`req_parts()`) in the session for its whole life, so the slot is given
//! back when the session is dropped. A namespace CONNECT on the session
//! shares that slot ([`admit`]), so a socket.io connection counts once.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use serde_json::Value;
use tracing::{info, warn};

use super::address;
use super::auth::{self, TokenScope, Verified};
use crate::domain::UserId;
use crate::domain::presence::NetworkAccess;
use crate::domain::rate::OncePerSecond;
use crate::state::{AddressSlot, AppState};
use crate::transport::wire::error::AuthError;
use crate::transport::wire::error::HttpError;
use crate::transport::wire::error::Refused;
use crate::transport::wire::query;

/// What a client presents when it connects.
pub struct Handshake<'a> {
    /// The request that opened the connection.
    pub parts: &'a Parts,
    /// socket.io's CONNECT `auth` payload, if any.
    pub auth: Option<&'a Value>,
}

impl Handshake<'_> {
    /// A field from `auth` (a string), else from the query (percent-decoded).
    pub fn field(&self, name: &str) -> Option<String> {
        query::handshake(self.auth, self.parts.uri.query(), name)
    }

    /// The client's address (see [`address::of`]).
    pub fn ip(&self, state: &AppState) -> Option<IpAddr> {
        address::of(&self.parts.extensions, &self.parts.headers, &state.config.trusted_proxies)
    }
}

/// The credential a protocol needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A valid token when `JWT_SECRET` is set; nothing otherwise.
    Token,
    /// The shared `WORKER_KEY`, in `auth.key`.
    WorkerKey,
}

/// An admitted connection: its address slot (released when the last holder
/// drops it), and the user and scope its token names.
pub struct Admitted {
    /// Counted against `MAX_CONNECTIONS_PER_IP` while held: its session's.
    pub slot: Arc<AddressSlot>,
    /// The token's user (with `JWT_SECRET` set).
    pub user: Option<UserId>,
    /// The token's scope claims (with `JWT_SECRET` set).
    pub scope: Option<TokenScope>,
    /// The token's `exp` (Unix seconds): the connection is closed then.
    pub expires: Option<u64>,
    /// The device networks it may use: those its `DEVICE_NETWORK_CLAIM` names, or any.
    pub networks: NetworkAccess,
}

/// The address slot an engine.io session took at its handshake, in the
/// extensions of the request the session keeps (see the module documentation).
#[derive(Clone)]
pub struct SessionSlot(Arc<AddressSlot>);

/// Counts a session-opening request (an engine.io handshake) against its
/// address's `MAX_CONNECTIONS_PER_IP`: the slot goes into the request's
/// extensions; past the limit, `429 too-many-connections`.
pub fn open_session(state: &AppState, extensions: &Extensions, headers: &HeaderMap) -> Result<SessionSlot, HttpError> {
    let ip = address::of(extensions, headers, &state.config.trusted_proxies);
    match address_slot(state, ip) {
        Ok(slot) => Ok(SessionSlot(Arc::new(slot))),
        Err(_) => Err(HttpError::TooManyConnections),
    }
}

/// A slot of `ip`'s `MAX_CONNECTIONS_PER_IP`; refusals are logged at most once a second.
fn address_slot(state: &AppState, ip: Option<IpAddr>) -> Result<AddressSlot, Refused> {
    state.limits.slot(ip, state.config.max_connections_per_ip).ok_or_else(|| {
        static WARNING: OncePerSecond = OncePerSecond::new();
        if WARNING.ready(crate::domain::now_ms()) {
            warn!(?ip, "connection refused: too many from this address (logged at most once a second)");
        }
        Refused::TooManyConnections
    })
}

/// Admits a connection: its session's address slot (or a slot of its own,
/// for a session that was not counted at its handshake), then its
/// credential: an address at its limit costs no token check.
pub fn admit(state: &AppState, handshake: &Handshake<'_>, credential: Credential) -> Result<Admitted, Refused> {
    let slot = match handshake.parts.extensions.get::<SessionSlot>() {
        Some(SessionSlot(slot)) => slot.clone(),
        None => Arc::new(address_slot(state, handshake.ip(state))?),
    };
    let verified = match credential {
        Credential::Token => token(state, handshake)?,
        Credential::WorkerKey => {
            worker_key(state, handshake)?;
            None
        }
    };
    let (user, scope, expires, networks) = match verified {
        Some(v) => (Some(v.user), Some(v.scope), Some(v.expires), v.networks),
        None => (None, None, None, NetworkAccess::Any),
    };
    Ok(Admitted { slot, user, scope, expires, networks })
}

/// The handshake's verified token, with `JWT_SECRET` set.
fn token(state: &AppState, handshake: &Handshake<'_>) -> Result<Option<Verified>, Refused> {
    let Some(jwt) = &state.config.jwt else { return Ok(None) };
    let parts = handshake.parts;
    let token = auth::token_from(handshake.auth, &parts.headers, parts.uri.query()).ok_or(AuthError::Missing);
    let claim = state.config.presence.network_claim.as_deref();
    match token.and_then(|token| auth::verify_scoped(&token, jwt, claim)) {
        Ok(verified) => Ok(Some(verified)),
        Err(e) => {
            static REFUSALS: OncePerSecond = OncePerSecond::new();
            if REFUSALS.ready(crate::domain::now_ms()) {
                info!(reason = %e, "connection refused: not authenticated (logged at most once a second)");
            }
            Err(Refused::Unauthorized(e))
        }
    }
}

/// The worker key: wrong guesses are limited per address (a burst of
/// [`crate::state::KEY_FAILURE_BURST`], then one every five seconds) and logged at most once a second.
fn worker_key(state: &AppState, handshake: &Handshake<'_>) -> Result<(), Refused> {
    let expected = state.config.workers.key.as_ref().ok_or(Refused::NoWorkerKey)?;
    let (ip, now) = (handshake.ip(state), std::time::Instant::now());
    if ip.is_some_and(|ip| !state.limits.may_try_key(ip, now)) {
        return Err(Refused::TooManyKeyFailures);
    }
    let given = handshake.auth.and_then(|a| a.get("key")).and_then(Value::as_str).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.0.as_bytes()) {
        if let Some(ip) = ip {
            state.limits.key_failed(ip, now);
        }
        static WARNING: OncePerSecond = OncePerSecond::new();
        if WARNING.ready(crate::domain::now_ms()) {
            warn!(?ip, "worker refused: wrong or missing key (logged at most once a second)");
        }
        return Err(Refused::WrongWorkerKey);
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_keys_compare_whole() {
        assert!(constant_time_eq(b"key", b"key"));
        assert!(!constant_time_eq(b"key", b"ke") && !constant_time_eq(b"key", b"kez") && !constant_time_eq(b"", b"k"));
    }
}
