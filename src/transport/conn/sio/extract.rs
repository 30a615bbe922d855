//! The extractors the socket.io glue reads each message and handshake with.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{FromConnectParts, FromMessageParts};
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;
use tracing::{debug, warn};

use super::{Namespace, SIGNALING_ERROR, Socket, WireName, public_id};
use crate::domain::now_ms;
use crate::domain::rate::OncePerSecond;
use crate::transport::wire::error::{AckError, SignalError, SignalingErrorEvent};

/// The socket a connect middleware runs for, as the [`Arc`] socketioxide
/// holds (so a connection can keep a weak reference to it).
pub struct Handle(pub Arc<Socket>);

impl FromConnectParts<LocalAdapter> for Handle {
    type Error = Infallible;
    fn from_connect_parts(s: &Arc<Socket>, _: &Option<socketioxide_core::Value>) -> Result<Self, Infallible> {
        Ok(Self(s.clone()))
    }
}

/// The namespace's event a message names, read in place from the packet:
/// socketioxide's `Event` extractor copies the name into a new `String` for
/// every message, an allocation on the relay path.
pub(super) struct Named<N: Namespace>(pub(super) N::Event);

impl<N: Namespace> FromMessageParts<LocalAdapter> for Named<N> {
    type Error = socketioxide_core::parser::ParserError;
    fn from_message_parts(
        _: &Arc<Socket>,
        v: &mut socketioxide_core::Value,
        _: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        // The common (JSON) parser is the one `server::configure` installs.
        Ok(Self(N::Event::from_name(CommonParser.read_event(v)?)))
    }
}

/// An event's ack callback, and whether the client asked for one
/// (socketioxide's `AckSender` does not say, and without an ack errors go
/// out as `signaling-error`).
pub struct Reply {
    ack: AckSender,
    wanted: bool,
}

impl FromMessageParts<LocalAdapter> for Reply {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self { ack: AckSender::from_message_parts(s, v, ack_id)?, wanted: ack_id.is_some() })
    }
}

impl Reply {
    /// Answers `event`: the ack, or `signaling-error` if it failed and asked for none.
    pub fn send(self, socket: &SocketRef, event: &str, result: Result<impl Serialize, SignalError>) {
        let sent = match &result {
            Ok(ok) => self.ack.send(ok),
            Err(e) if self.wanted => self.ack.send(&AckError::from(e)),
            Err(e) => socket.emit(SIGNALING_ERROR, &SignalingErrorEvent::new(event, e)),
        };
        if let Err(e) = &result {
            debug!(conn_id = %public_id(socket.ns(), socket.id.as_str()), event, code = e.code(), reason = %e, "event refused");
        }
        // A client that reads nothing makes every answer fail: one line a second at most.
        static WARNING: OncePerSecond = OncePerSecond::new();
        if let Err(err) = sent
            && WARNING.ready(now_ms())
        {
            warn!(conn_id = %public_id(socket.ns(), socket.id.as_str()), event, %err, "could not answer the client (logged at most once a second)");
        }
    }
}
