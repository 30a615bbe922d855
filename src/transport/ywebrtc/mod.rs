//! y-webrtc's signaling protocol over a raw WebSocket at `Y_WEBRTC_PATH`
//! (default `/y-webrtc`), as y-webrtc's reference server (`bin/server.js`,
//! 10.3.0) speaks it, so a Yjs app points `signaling: ['wss://host/y-webrtc']`
//! here unchanged: `subscribe` and `unsubscribe` topics, `publish` to every
//! subscriber of a topic (the sender too, if it is one) with `clients` set,
//! `ping` answered `{"type":"pong"}` ([`wire`]). Keepalive is the raw
//! transport's WebSocket ping every `PING_INTERVAL_MS`; a peer whose pong is
//! `PING_TIMEOUT_MS` late is closed, as the reference does every 30 s.
//!
//! Topics are core groups ([`crate::core::topics`]): a publish reaches
//! subscribers on every instance over the cluster bus, and `clients` counts
//! them cluster-wide (an estimate: other instances' counts arrive over the
//! bus). Unlike the reference, bad input never stops the server: a frame
//! that is not JSON, `topics` that is not an array, a missing or unknown
//! `type` are ignored (logged at debug level). A connection holds at most
//! `Y_WEBRTC_MAX_TOPICS` topics; more are ignored (logged at most once a
//! second). Frames are at most `MAX_PAYLOAD_BYTES` (a larger one closes the
//! connection with 1009) and pass the shared rate limit; the protocol has
//! no error frame, so a refused frame (rate limit, binary frame) is dropped
//! unanswered and logged at most once a second with the running count.

pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use tracing::{debug, info, warn};

use self::wire::Frame;
use crate::core::event::Event;
use crate::domain::rate::OncePerSecond;
use crate::domain::{ConnId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::raw::{self, Protocol, RawConn};
use crate::transport::wire::error::{Refused, SignalError};

/// The route of the upgrade, at `Y_WEBRTC_PATH`.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new().route(&state.config.ywebrtc.path, get(ws))
}

/// `GET Y_WEBRTC_PATH`: the WebSocket upgrade (a plain `GET` gets `426`).
pub async fn ws(State(state): State<AppState>, request: Request) -> Response {
    raw::upgrade::<YWebrtc>(&state, request, Ok(()))
}

/// One y-webrtc connection: its topics are its groups in the core.
pub struct YWebrtc;

/// Frames refused before they were read, since the start (in the log line).
static REFUSED: AtomicU64 = AtomicU64::new(0);

impl Protocol for YWebrtc {
    const NAME: &'static str = "y-webrtc";
    type Ask = ();

    async fn open(_: &AppState, _: &Admitted, _: (), _: &ConnId) -> Result<Self, Refused> {
        Ok(Self)
    }

    fn start(conn: &Arc<RawConn<Self>>) -> Option<raw::Work> {
        info!(conn_id = %conn.id(), "y-webrtc client connected");
        None
    }

    async fn handle(&self, conn: &RawConn<Self>, text: &str) {
        let (topics, id) = (conn.core.topics(), conn.id());
        match wire::parse(text) {
            Ok(Frame::Subscribe(names)) => {
                let ignored = topics.subscribe(id, names).await;
                static LOG: OncePerSecond = OncePerSecond::new();
                if ignored > 0 && LOG.ready(now_ms()) {
                    let max = conn.core.config.ywebrtc.max_topics;
                    info!(conn_id = %id, ignored, max, "y-webrtc topics past Y_WEBRTC_MAX_TOPICS ignored (logged at most once a second)");
                }
            }
            Ok(Frame::Unsubscribe(names)) => topics.unsubscribe(id, names).await,
            Ok(Frame::Publish { topic, message }) => {
                let message = wire::published(message, topics.subscribers(&topic));
                if let Err(e) = topics.publish(&topic, message).await {
                    debug!(conn_id = %id, error = %e, "a y-webrtc publish did not reach the other instances");
                }
            }
            Ok(Frame::Ping) => drop(conn.send(&wire::PONG)),
            Err(why) => debug!(conn_id = %id, reason = %why, "y-webrtc frame ignored"),
        }
    }

    fn refused(&self, conn: &RawConn<Self>, why: &SignalError) {
        let refused_total = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
        static LOG: OncePerSecond = OncePerSecond::new();
        if LOG.ready(now_ms()) {
            warn!(conn_id = %conn.id(), code = why.code(), reason = %why, refused_total, "y-webrtc frame refused unanswered: the protocol has no error frame (logged at most once a second)");
        }
    }

    async fn closed(&self, conn: &RawConn<Self>) {
        conn.core.topics().leave_all(conn.id()).await;
        info!(conn_id = %conn.id(), "y-webrtc client disconnected");
    }

    fn render(event: &Event) -> Option<String> {
        match event {
            Event::TopicMessage { message } => Some(message.json().to_owned()),
            _ => None,
        }
    }
}
