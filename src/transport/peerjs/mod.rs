//! PeerJS over a raw WebSocket at `{PEERJS_PATH}/peerjs?key=&id=&token=`,
//! as peerjs-server 1.0.2 speaks it (its source is the reference; the
//! differences are in `docs/peerjs.md`), with its REST routes ([`rest`]).
//!
//! Every refusal comes after the upgrade, as a frame and a close: missing
//! parameters first, then the key, the id, the token (with `JWT_SECRET`
//! set, a JWT whose user is the id), the concurrent limit, and `ID-TAKEN`.
//! An open connection gets `OPEN`, then what waited for its id. A takeover
//! by the same token (or, with JWT, any valid token for the id) also gets
//! `OPEN`, and the older connection is closed wherever it is. Only
//! `HEARTBEAT` keeps a client alive (`PEERJS_ALIVE_TIMEOUT_MS`).

pub mod rest;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, info};

use self::wire::Inbound;
use crate::core::event::Event;
use crate::core::link::Link;
use crate::domain::peerjs::PeerId;
use crate::domain::{ConnId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::raw::{Protocol, RawConn, Work};
use crate::transport::wire::error::{Refused, SignalError};
use crate::transport::wire::query;

/// What the socket's query asked for.
pub struct Ask {
    id: PeerId,
    token: String,
}

/// Longest `token` (a JWT fits).
const MAX_TOKEN_BYTES: usize = 8192;

/// The takeover token of every connection with JWT on: the token proves the id.
const JWT_HOLDER: &str = "\u{1}jwt";

/// Reads `?key=&id=&token=` in peerjs-server's order (parameters, then key), then switchboard's id bound.
pub fn ask(state: &AppState, raw_query: Option<&str>) -> Result<Ask, Refused> {
    let get = |name| query::decoded(raw_query, name).filter(|v| !v.is_empty());
    let (Some(id), Some(token), Some(key)) = (get("id"), get("token"), get("key")) else {
        return Err(Refused::PeerJsParameters);
    };
    if key != state.config.peerjs.key {
        return Err(Refused::PeerJsKey);
    }
    let id = PeerId::parse(&id).map_err(|_| Refused::PeerJsId)?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refused::Unauthorized(crate::transport::wire::error::AuthError::Missing));
    }
    Ok(Ask { id, token })
}

/// One PeerJS client: its id, and when it last sent `HEARTBEAT`.
pub struct PeerSocket {
    id: PeerId,
    heartbeat: AtomicU64,
}

impl Protocol for PeerSocket {
    const NAME: &'static str = "peerjs";
    type Ask = Ask;

    async fn open(state: &AppState, admitted: &Admitted, ask: Ask, conn: &ConnId) -> Result<Self, Refused> {
        let token = match &admitted.user {
            Some(user) if user.as_str() != ask.id.as_str() => {
                return Err(Refused::NotTokenUser("id", user.as_str().to_owned()));
            }
            Some(_) => JWT_HOLDER,
            None => ask.token.as_str(),
        };
        state.core.peerjs().open(&ask.id, token, conn).await?;
        Ok(Self { id: ask.id, heartbeat: AtomicU64::new(now_ms()) })
    }

    fn start(conn: &Arc<RawConn<Self>>) -> Option<Work> {
        let _ = conn.send_text(wire::open());
        let conn = conn.clone();
        Some(Box::pin(async move {
            info!(conn_id = %conn.id(), peer_id = %conn.ns.id, "peerjs client connected");
            for message in conn.core.peerjs().waiting(&conn.ns.id).await {
                let _ = Link::send(&*conn, &Event::PeerJs(message));
            }
            let alive = conn.core.config.peerjs.alive_timeout;
            loop {
                let last = conn.ns.heartbeat.load(Ordering::Relaxed);
                let silent = Duration::from_millis(now_ms().saturating_sub(last));
                if silent >= alive {
                    info!(conn_id = %conn.id(), peer_id = %conn.ns.id, "peerjs client closed: no HEARTBEAT within PEERJS_ALIVE_TIMEOUT_MS");
                    return Link::close(&*conn);
                }
                tokio::time::sleep(alive - silent).await;
            }
        }))
    }

    async fn handle(&self, conn: &RawConn<Self>, text: &str) {
        match wire::inbound(text, &self.id) {
            Inbound::Heartbeat => self.heartbeat.store(now_ms(), Ordering::Relaxed),
            Inbound::Forward(message) => conn.core.peerjs().forward(message).await,
            Inbound::Unregister => {
                info!(conn_id = %conn.id(), peer_id = %self.id, "peerjs client gave its id up (LEAVE without dst): closed");
                Link::close(conn);
            }
            Inbound::Ignored(why) => {
                debug!(conn_id = %conn.id(), why, "a PeerJS frame was ignored, as peerjs-server does")
            }
        }
    }

    fn refused(&self, conn: &RawConn<Self>, why: &SignalError) {
        let _ = conn.send_text(wire::error(&why.to_string()));
    }

    async fn closed(&self, conn: &RawConn<Self>) {
        conn.core.peerjs().close(conn.id()).await;
        info!(conn_id = %conn.id(), peer_id = %self.id, "peerjs client disconnected");
    }

    fn refusal(refused: &Refused) -> Option<String> {
        Some(wire::refusal(refused))
    }

    fn render(event: &Event) -> Option<String> {
        match event {
            Event::PeerJs(message) => wire::relay(message),
            _ => None,
        }
    }
}
