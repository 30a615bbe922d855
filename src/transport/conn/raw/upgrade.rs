//! The WebSocket handshake of a raw endpoint: a plain request gets `426`
//! JSON; an upgrade is admitted (origin was checked by the router's layer;
//! here the token and the address slot), answered `101`, and handed to its
//! connection task. A full address (`MAX_CONNECTIONS_PER_IP`) is refused
//! before the upgrade, `429` as a socket.io handshake is; every other
//! refusal comes after it, as a close frame with its code (1008 for a bad or
//! missing token, as seed 004's server does) and the reason.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::SinkExt;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{debug, info};

use super::socket::{self, Ws};
use super::{Protocol, RawConn, Work, attach};
use crate::domain::rate::OncePerSecond;
use crate::domain::{ConnId, now_ms};
use crate::state::AddressSlot;
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::admission::{Credential, Handshake, admit};
use crate::transport::wire::error::{HttpError, Refused};

/// Each connection's read buffer: signaling frames are small, and every
/// idle peer holds one (tungstenite's default is 128 KiB; a larger frame
/// grows it while it is read).
const READ_BUFFER_BYTES: usize = 512;

/// Answers a request to a raw endpoint of protocol `P`, which asked for
/// `ask` (or was refused already, by the protocol's own reading of the
/// request: then the refusal follows the upgrade, as any other).
pub fn upgrade<P: Protocol>(state: &AppState, mut request: Request, ask: Result<P::Ask, Refused>) -> Response {
    if !state.config.protocols.serves(P::NAME) {
        return HttpError::NoRoute(request.uri().path().to_owned()).into_response();
    }
    let Some(key) = websocket_key(request.method(), request.headers()) else {
        return HttpError::UpgradeRequired.into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let handshake = Handshake { parts: &parts, auth: None };
    let admission = match ask {
        Ok(ask) => admit(state, &handshake, Credential::Token).map(|admitted| (admitted, ask)),
        Err(refused) => Err(refused),
    };
    let admitted = match admission {
        Ok(admitted) => Ok(admitted),
        Err(Refused::TooManyConnections) => return HttpError::TooManyConnections.into_response(),
        // A refused upgrade holds a slot of its address too, while it is closed.
        Err(refused) => match state.limits.slot(handshake.ip(state), state.config.max_connections_per_ip) {
            Some(slot) => Err((refused, Arc::new(slot))),
            None => return HttpError::TooManyConnections.into_response(),
        },
    };
    drop(parts);
    let opening = Box::new(Opening::<P> { on_upgrade, admitted });
    tokio::spawn(socket::serve(state.clone(), opening));
    let accept = HeaderValue::try_from(derive_accept_key(key.as_bytes())).expect("base64 is a valid header value");
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(header::CONNECTION, HeaderValue::from_static("Upgrade"))
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("constant parts")
}

/// What an accepted upgrade carries into its connection's task (boxed: the
/// task keeps only what the connection needs for its life).
pub(super) struct Opening<P: Protocol> {
    on_upgrade: hyper::upgrade::OnUpgrade,
    admitted: Result<(Admitted, P::Ask), (Refused, Arc<AddressSlot>)>,
}

impl<P: Protocol> Opening<P> {
    /// The upgraded connection, admitted and attached; `None` once a refusal
    /// was sent (or the upgrade failed).
    pub(super) async fn open(self, state: &AppState) -> Option<(Ws, Arc<RawConn<P>>, Option<Work>)> {
        let io = match self.on_upgrade.await {
            Ok(io) => TokioIo::new(io),
            Err(e) => {
                debug!(protocol = P::NAME, error = %e, "websocket upgrade failed");
                return None;
            }
        };
        // Writes go straight out (no 128 KiB write buffer kept per peer), and
        // what tungstenite may hold is bounded by the outbox's budget.
        let budget = state.config.socket_buffer_bytes + state.config.max_payload_bytes;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_write_buffer_size(budget.saturating_mul(2))
            .max_message_size(Some(state.config.max_payload_bytes))
            .max_frame_size(Some(state.config.max_payload_bytes));
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        let id = new_id();
        let opened = match self.admitted {
            Ok((admitted, ask)) => match P::open(state, &admitted, ask, &id).await {
                Ok(ns) => Ok((admitted, ns)),
                Err(refused) => Err((refused, admitted.slot)),
            },
            Err(refused) => Err(refused),
        };
        match opened {
            Ok((admitted, ns)) => {
                let (conn, work) = attach(state, admitted, id, ns);
                Some((ws, conn, work))
            }
            Err((refused, _slot)) => {
                static REFUSALS: OncePerSecond = OncePerSecond::new();
                if REFUSALS.ready(now_ms()) {
                    info!(protocol = P::NAME, conn_id = %id, reason = %refused, "raw connection refused (logged at most once a second)");
                }
                if let Some(frame) = P::refusal(&refused) {
                    let _ = tokio::time::timeout(socket::CLOSE_WAIT, ws.send(Message::text(frame))).await;
                }
                socket::refuse(&mut ws, refused.close_code(), &refused.to_string()).await;
                None
            }
        }
    }
}

/// Whether `headers` ask for a WebSocket upgrade (RFC 6455 4.2.1): `GET`,
/// `Upgrade: websocket`, `Connection: upgrade`, version 13; the key if so.
pub fn websocket_key(method: &Method, headers: &HeaderMap) -> Option<String> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let upgrade = has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade");
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    (method == Method::GET && upgrade && version).then(|| key.to_owned())
}

/// A fresh connection id: random, 16 characters, like a socket.io connection's public id.
fn new_id() -> ConnId {
    let bytes = uuid::Uuid::new_v4();
    ConnId::new(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes.as_bytes()[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn only_a_get_with_upgrade_websocket_connection_upgrade_version_13_and_a_key_upgrades() {
        let full = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(websocket_key(&Method::GET, &headers(&full)).as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(websocket_key(&Method::POST, &headers(&full)), None);
        for missing in 0..full.len() {
            let some: Vec<_> = full.iter().enumerate().filter(|(i, _)| *i != missing).map(|(_, p)| *p).collect();
            assert_eq!(websocket_key(&Method::GET, &headers(&some)), None, "without {}", full[missing].0);
        }
        let old = [full[0], full[1], ("sec-websocket-version", "8"), full[3]];
        assert_eq!(websocket_key(&Method::GET, &headers(&old)), None);
    }
}
