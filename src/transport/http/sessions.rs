//! Every engine.io session counted against its address from its handshake.
//!
//! A session that never sends a namespace CONNECT still holds a connection
//! (a long-poll or a websocket), its heartbeat and its request head, so it
//! takes a slot of `MAX_CONNECTIONS_PER_IP` at its handshake (the polling
//! `GET` or the websocket upgrade without `sid`), not only at CONNECT.
//! [`count`] runs in front of the socket.io layer; past the limit the
//! handshake is answered `429 too-many-connections` and no session opens.
//! The slot rides in the request's extensions, which the session keeps for
//! its whole life ([`admission::open_session`]).

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::head::opens_session;
use crate::state::AppState;
use crate::transport::conn::admission;

/// Middleware: a session-opening request takes its address's slot, or is refused.
pub async fn count(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if request.method() == Method::GET && opens_session(request.uri()) {
        match admission::open_session(&state, request.extensions(), request.headers()) {
            Ok(slot) => drop(request.extensions_mut().insert(slot)),
            Err(refused) => return refused.into_response(),
        }
    }
    next.run(request).await
}
