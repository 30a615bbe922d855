//! The `/devices` namespace's wire (seed 004): `signal` both ways,
//! `signal-expired`, the payload of a sent signal, and how core events are
//! rendered and confirmed ([`emit`], [`emit_confirmed`]). The reference is
//! `docs/protocol/devices.md`.

use serde::Serialize;
use serde_json::Value;
use socketioxide::AckError;
use socketioxide::extract::SocketRef;
use std::time::Duration;

use crate::core::event::Event;
use crate::core::link::{Confirmation, Confirmed, Undelivered};
use crate::domain::presence::DeviceId;
use crate::domain::queue::SignalBody;
use crate::domain::signal::SignalKind;
use crate::transport::conn::sio::delivered;
use crate::transport::wire::payload::{PayloadError, body, object, signal_kind};

/// Both ways: a signal (client -> server to send, server -> client to take).
pub const SIGNAL: &str = "signal";
/// Server -> client: a signal this device sent expired unconfirmed.
pub const SIGNAL_EXPIRED: &str = "signal-expired";

/// `signal { type, toPeerId, data }` as a device sends it.
#[derive(Debug, PartialEq)]
pub struct SignalRequest {
    /// Offer, answer or candidate.
    pub kind: SignalKind,
    /// The receiving device.
    pub to: DeviceId,
    /// The body, relayed as sent (kept as its JSON text).
    pub data: SignalBody,
}

/// Parses a `signal` payload.
pub fn signal_request(payload: Option<Value>) -> Result<SignalRequest, PayloadError> {
    let mut map = object(payload)?;
    let kind = signal_kind(&map, "type")?;
    let to = match map.get("toPeerId") {
        None => return Err(PayloadError::Missing("toPeerId")),
        Some(Value::String(id)) => DeviceId::parse(id).map_err(|e| PayloadError::Invalid("toPeerId", e.to_string()))?,
        Some(_) => return Err(PayloadError::NotAString("toPeerId")),
    };
    Ok(SignalRequest { kind, to, data: SignalBody::from_value(&body(&mut map, "data")?) })
}

/// The sender's ack: `{ ok: true, status: "delivered" | "queued", id }`.
#[derive(Serialize)]
pub struct SignalAck {
    /// Always true.
    pub ok: bool,
    /// `delivered`: the receiver is connected and is pushed it now; `queued`: it waits.
    pub status: &'static str,
    /// Its id in the receiver's queue.
    pub id: u64,
}

/// `signal` as a receiver gets it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignalOut<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: SignalKind,
    from_peer_id: &'a DeviceId,
    to_peer_id: &'a DeviceId,
    data: &'a SignalBody,
    /// When it was sent, in Unix milliseconds.
    timestamp: u64,
}

/// `signal-expired` as a sender gets it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExpiredOut<'a> {
    to_peer_id: &'a DeviceId,
    #[serde(rename = "type")]
    kind: SignalKind,
    /// When it was sent, in Unix milliseconds.
    queued_at: u64,
}

/// Renders a core event for a device, without asking for confirmation.
pub fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
    emit_confirmed(socket, event, Duration::ZERO).map(drop)
}

/// Renders a core event for a device and asks it to ack within `timeout`
/// (zero: no ack asked). Any answer confirms, whatever it carries.
pub fn emit_confirmed(socket: &SocketRef, event: &Event, timeout: Duration) -> Result<Confirmation, Undelivered> {
    match event {
        Event::Signal { id, kind, from, to, data, timestamp } => {
            let out =
                SignalOut { id: *id, kind: *kind, from_peer_id: from, to_peer_id: to, data, timestamp: *timestamp };
            push(socket, SIGNAL, &out, timeout)
        }
        Event::SignalExpired { to, kind, queued_at } => {
            push(socket, SIGNAL_EXPIRED, &ExpiredOut { to_peer_id: to, kind: *kind, queued_at: *queued_at }, timeout)
        }
        _ => Err(Undelivered::Gone),
    }
}

fn push<T: Serialize>(
    socket: &SocketRef,
    name: &str,
    data: &T,
    timeout: Duration,
) -> Result<Confirmation, Undelivered> {
    if timeout.is_zero() {
        delivered(socket.emit(name, data))?;
        return Ok(Box::pin(async { Confirmed::Yes }));
    }
    let ack = socket.timeout(timeout).emit_with_ack::<_, Value>(name, data);
    let ack = ack.map_err(|e| delivered(Err(e)).expect_err("a failed emit is undelivered"))?;
    Ok(Box::pin(async move {
        match ack.await {
            // A bare `ack()` has nothing to decode: it confirms too.
            Ok(_) | Err(AckError::Decode(_)) => Confirmed::Yes,
            Err(AckError::Timeout) => Confirmed::TimedOut,
            Err(_) => Confirmed::Closed,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_device_signal_names_its_type_target_and_body() {
        let req = signal_request(Some(json!({"type": "offer", "toPeerId": "peer_b", "data": {"sdp": "v=0"}}))).unwrap();
        assert_eq!((req.kind, req.to.as_str(), req.data.json()), (SignalKind::Offer, "peer_b", r#"{"sdp":"v=0"}"#));
        let cases = [
            (json!({"toPeerId": "peer_b", "data": 1}), "type is required"),
            (json!({"type": "hello", "toPeerId": "peer_b", "data": 1}), "type must be offer, answer or ice-candidate"),
            (json!({"type": "offer", "toPeerId": "bob", "data": 1}), "toPeerId must match"),
            (json!({"type": "offer", "toPeerId": 7, "data": 1}), "toPeerId must be a string"),
            (json!({"type": "offer", "toPeerId": "peer_b"}), "data is required"),
            (json!({"type": "offer", "toPeerId": "peer_b", "data": null}), "data must not be null"),
        ];
        for (payload, message) in cases {
            let err = signal_request(Some(payload.clone())).unwrap_err().to_string();
            assert!(err.starts_with(message), "{payload}: {err}");
        }
        assert_eq!(signal_request(None), Err(PayloadError::NotAnObject));
    }
}
