//! The worker namespaces' wire (seed 002): `signal { to, type, data }` both
//! ways (received as `signal { from, type, data }`), `welcome { clientId }`
//! on `/edge`, the answers, and how core events are rendered ([`emit`]). The
//! reference is `docs/protocol/workers.md`.

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::domain::signal::SignalKind;
use crate::domain::worker;
use crate::transport::conn::sio::{WireName, delivered};
use crate::transport::wire::payload::{PayloadError, body, object, signal_kind};

/// Both ways: a signal between a worker and a client.
pub const SIGNAL: &str = "signal";
/// Worker -> server: the worker is alive.
pub const HEARTBEAT: &str = "heartbeat";
/// Server -> `/edge` client, on connect: its id.
pub const WELCOME: &str = "welcome";

/// The client events of `/workers` and `/edge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerEvent {
    /// `heartbeat` (workers only)
    Heartbeat,
    /// `signal { to, type, data }`
    Signal,
    /// Any other name.
    Unknown(String),
}

impl WireName for WorkerEvent {
    fn from_name(name: &str) -> Self {
        match name {
            HEARTBEAT => Self::Heartbeat,
            SIGNAL => Self::Signal,
            other => Self::Unknown(other.chars().take(64).collect()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Heartbeat => HEARTBEAT,
            Self::Signal => SIGNAL,
            Self::Unknown(name) => name,
        }
    }
}

/// `signal { to, type, data }`, validated.
#[derive(Debug, PartialEq)]
pub struct SignalRequest {
    /// A worker id, or a client's id (its `/edge` connection id).
    pub to: String,
    /// Offer, answer or candidate.
    pub kind: SignalKind,
    /// The body, as sent.
    pub data: Value,
}

/// Parses a `signal` payload.
pub fn signal_request(payload: Option<Value>) -> Result<SignalRequest, PayloadError> {
    let mut map = object(payload)?;
    let to = match map.get("to") {
        Some(Value::String(to)) if worker::valid_id(to) => to.clone(),
        Some(_) => return Err(PayloadError::Invalid("to", "must be a worker or client id".into())),
        None => return Err(PayloadError::Missing("to")),
    };
    let kind = signal_kind(&map, "type")
        .map_err(|_| PayloadError::Invalid("type", "must be offer, answer or ice-candidate".into()))?;
    Ok(SignalRequest { to, kind, data: body(&mut map, "data").map_err(|_| PayloadError::Missing("data"))? })
}

/// A successful answer: `{ ok: true }`.
#[derive(Serialize)]
pub struct Answer {
    /// Always true.
    pub ok: bool,
}

/// `welcome { clientId }`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome<'a> {
    /// The client's id: its connection id.
    pub client_id: &'a str,
}

#[derive(Serialize)]
struct SignalOut<'a> {
    from: &'a str,
    #[serde(rename = "type")]
    kind: SignalKind,
    data: &'a Value,
}

/// Renders a core event for a worker or an `/edge` client.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    match event {
        Event::WorkerSignal { from, kind, data } => {
            delivered(socket.emit(SIGNAL, &SignalOut { from, kind: *kind, data }))
        }
        _ => Err(Undelivered::Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signal_names_its_target_kind_and_body() {
        let req = signal_request(Some(json!({"to": "w-1", "type": "answer", "data": {"sdp": "x"}}))).unwrap();
        assert_eq!((req.to.as_str(), req.kind, req.data), ("w-1", SignalKind::Answer, json!({"sdp": "x"})));
        let cases = [
            (json!({"type": "offer", "data": 1}), PayloadError::Missing("to")),
            (
                json!({"to": "a b", "type": "offer", "data": 1}),
                PayloadError::Invalid("to", "must be a worker or client id".into()),
            ),
            (
                json!({"to": "w", "type": "hi", "data": 1}),
                PayloadError::Invalid("type", "must be offer, answer or ice-candidate".into()),
            ),
            (json!({"to": "w", "type": "offer", "data": null}), PayloadError::Missing("data")),
        ];
        for (payload, error) in cases {
            assert_eq!(signal_request(Some(payload.clone())), Err(error), "{payload}");
        }
    }
}
