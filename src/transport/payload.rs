//! Client payloads parsed into typed requests at the edge.
//!
//! Each event's single JSON object becomes a request holding validated ids, or a
//! [`PayloadError`] naming the field at fault. Unknown extra fields are ignored,
//! as socket.io clients expect; relay bodies are moved out untouched.

use serde_json::{Map, Value};

use super::events::RelayKind;
use crate::domain::presence::DeviceId;
use crate::domain::signal::SignalKind;
use crate::domain::{IdError, RoomId, UserId};

/// Why a payload is not what the event needs (wire code `invalid-payload`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// No argument, or an argument that is not a JSON object.
    #[error("payload must be one JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("{0} is required")]
    Missing(&'static str),
    /// An id field is not a string.
    #[error("{0} must be a string")]
    NotAString(&'static str),
    /// A body field is `null` where a value is required.
    #[error("{0} must not be null")]
    Null(&'static str),
    /// An id field breaks the id rule.
    #[error("{0} {1}")]
    BadId(&'static str, IdError),
    /// A field breaks its rule (the message says which).
    #[error("{0} {1}")]
    Invalid(&'static str, String),
}

/// `join-room { roomId, userId }`
#[derive(Debug, PartialEq)]
pub struct JoinRequest {
    /// The room to join.
    pub room: RoomId,
    /// The joiner's user id.
    pub user: UserId,
}

/// `leave-room { roomId }`
#[derive(Debug, PartialEq)]
pub struct LeaveRequest {
    /// The room to leave.
    pub room: RoomId,
}

/// `offer|answer|ice-candidate { roomId, targetId, <body> }`
#[derive(Debug, PartialEq)]
pub struct RelayRequest {
    /// The room both peers are in.
    pub room: RoomId,
    /// The target's user id.
    pub target: UserId,
    /// The body, relayed exactly as sent.
    pub body: Value,
}

pub(super) fn object(payload: Option<Value>) -> Result<Map<String, Value>, PayloadError> {
    match payload {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(PayloadError::NotAnObject),
    }
}

pub(super) fn id<T>(
    map: &Map<String, Value>,
    field: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, PayloadError> {
    match map.get(field) {
        None => Err(PayloadError::Missing(field)),
        Some(Value::String(s)) => parse(s).map_err(|e| PayloadError::BadId(field, e)),
        Some(_) => Err(PayloadError::NotAString(field)),
    }
}

/// A payload's fields: `data`'s when it has one (seed 000's and 001's
/// messages wrap their fields so), else its own.
pub(super) fn fields(payload: Option<Value>) -> Result<Map<String, Value>, PayloadError> {
    let mut map = object(payload)?;
    match map.remove("data") {
        Some(Value::Object(data)) => Ok(data),
        Some(other) => {
            map.insert("data".into(), other);
            Ok(map)
        }
        None => Ok(map),
    }
}

/// An optional text field of at most `max` characters, without control characters.
pub(super) fn text(map: &Map<String, Value>, field: &'static str, max: usize) -> Result<Option<String>, PayloadError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max && !s.chars().any(char::is_control) => Ok(Some(s.clone())),
        Some(Value::String(_)) => {
            Err(PayloadError::Invalid(field, format!("must be at most {max} characters, without control characters")))
        }
        Some(_) => Err(PayloadError::NotAString(field)),
    }
}

/// Parses a `join-room` payload (`None`: the event carried no argument).
pub fn join(payload: Option<Value>) -> Result<JoinRequest, PayloadError> {
    let map = object(payload)?;
    Ok(JoinRequest { room: id(&map, "roomId", RoomId::parse)?, user: id(&map, "userId", UserId::parse)? })
}

/// Parses a `leave-room` payload.
pub fn leave(payload: Option<Value>) -> Result<LeaveRequest, PayloadError> {
    let map = object(payload)?;
    Ok(LeaveRequest { room: id(&map, "roomId", RoomId::parse)? })
}

/// Parses an `offer`, `answer` or `ice-candidate` payload.
pub fn relay(kind: RelayKind, payload: Option<Value>) -> Result<RelayRequest, PayloadError> {
    let mut map = object(payload)?;
    let room = id(&map, "roomId", RoomId::parse)?;
    let target = id(&map, "targetId", UserId::parse)?;
    let field = kind.body_field();
    let body = map.remove(field).ok_or(PayloadError::Missing(field))?;
    if body.is_null() && !kind.body_may_be_null() {
        return Err(PayloadError::Null(field));
    }
    Ok(RelayRequest { room, target, body })
}

/// `signal { type, toPeerId, data }` on `/devices`
#[derive(Debug, PartialEq)]
pub struct DeviceSignalRequest {
    /// Offer, answer or candidate.
    pub kind: SignalKind,
    /// The receiving device.
    pub to: DeviceId,
    /// The body, relayed as sent.
    pub data: Value,
}

/// Parses a `/devices` `signal` payload.
pub fn device_signal(payload: Option<Value>) -> Result<DeviceSignalRequest, PayloadError> {
    let mut map = object(payload)?;
    let kind = match map.get("type") {
        None => return Err(PayloadError::Missing("type")),
        Some(Value::String(t)) => SignalKind::parse(t)
            .ok_or_else(|| PayloadError::Invalid("type", "must be offer, answer or ice-candidate".into()))?,
        Some(_) => return Err(PayloadError::NotAString("type")),
    };
    let to = match map.get("toPeerId") {
        None => return Err(PayloadError::Missing("toPeerId")),
        Some(Value::String(id)) => DeviceId::parse(id).map_err(|e| PayloadError::Invalid("toPeerId", e.to_string()))?,
        Some(_) => return Err(PayloadError::NotAString("toPeerId")),
    };
    let data = map.remove("data").ok_or(PayloadError::Missing("data"))?;
    if data.is_null() {
        return Err(PayloadError::Null("data"));
    }
    Ok(DeviceSignalRequest { kind, to, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_join_payload_becomes_typed_ids_and_extra_fields_are_ignored() {
        let req = join(Some(json!({"roomId": "r", "userId": "u", "extra": 1}))).unwrap();
        assert_eq!((req.room.as_str(), req.user.as_str()), ("r", "u"));
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(join(Some(json!({"roomId": "r"}))), Err(PayloadError::Missing("userId")));
        let err = relay(RelayKind::Offer, Some(json!({"roomId": "r", "targetId": "t"})));
        assert_eq!(err, Err(PayloadError::Missing("offer")));
    }

    #[test]
    fn a_wrong_id_type_is_rejected() {
        assert_eq!(leave(Some(json!({"roomId": 7}))), Err(PayloadError::NotAString("roomId")));
        let err = relay(RelayKind::Answer, Some(json!({"roomId": "r", "targetId": null, "answer": {}})));
        assert_eq!(err, Err(PayloadError::NotAString("targetId")));
    }

    #[test]
    fn non_object_payloads_are_rejected() {
        for payload in [None, Some(json!("r")), Some(json!([1])), Some(json!(null)), Some(json!(3))] {
            assert_eq!(leave(payload), Err(PayloadError::NotAnObject));
        }
    }

    #[test]
    fn a_129_char_target_id_is_rejected() {
        let err = relay(RelayKind::Offer, Some(json!({"roomId": "r", "targetId": "t".repeat(129), "offer": {}})));
        assert_eq!(err, Err(PayloadError::BadId("targetId", IdError::TooLong(129))));
    }

    #[test]
    fn a_null_candidate_is_relayed_but_a_null_offer_is_not() {
        let ok = relay(RelayKind::IceCandidate, Some(json!({"roomId": "r", "targetId": "t", "candidate": null})));
        assert_eq!(ok.unwrap().body, Value::Null);
        let err = relay(RelayKind::Offer, Some(json!({"roomId": "r", "targetId": "t", "offer": null})));
        assert_eq!(err, Err(PayloadError::Null("offer")));
    }

    #[test]
    fn the_body_is_kept_exactly() {
        let body = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "n": [1.5, -2]});
        let req = relay(RelayKind::Offer, Some(json!({"roomId": "r", "targetId": "t", "offer": body}))).unwrap();
        assert_eq!(req.body, body);
    }

    #[test]
    fn a_device_signal_names_its_type_target_and_body() {
        let req = device_signal(Some(json!({"type": "offer", "toPeerId": "peer_b", "data": {"sdp": "v=0"}}))).unwrap();
        assert_eq!((req.kind, req.to.as_str(), req.data), (SignalKind::Offer, "peer_b", json!({"sdp": "v=0"})));
        let cases = [
            (json!({"toPeerId": "peer_b", "data": 1}), "type is required"),
            (json!({"type": "hello", "toPeerId": "peer_b", "data": 1}), "type must be offer, answer or ice-candidate"),
            (json!({"type": "offer", "toPeerId": "bob", "data": 1}), "toPeerId must match"),
            (json!({"type": "offer", "toPeerId": 7, "data": 1}), "toPeerId must be a string"),
            (json!({"type": "offer", "toPeerId": "peer_b"}), "data is required"),
            (json!({"type": "offer", "toPeerId": "peer_b", "data": null}), "data must not be null"),
        ];
        for (payload, message) in cases {
            let err = device_signal(Some(payload.clone())).unwrap_err().to_string();
            assert!(err.starts_with(message), "{payload}: {err}");
        }
        assert_eq!(device_signal(None), Err(PayloadError::NotAnObject));
    }
}
