//! The default namespace's payloads, parsed into typed requests at the edge.

use serde_json::Value;

use crate::domain::signal::SignalKind;
use crate::domain::{RoomId, UserId};
use crate::transport::wire::payload::{PayloadError, id, object};

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
pub fn relay(kind: SignalKind, payload: Option<Value>) -> Result<RelayRequest, PayloadError> {
    let mut map = object(payload)?;
    let room = id(&map, "roomId", RoomId::parse)?;
    let target = id(&map, "targetId", UserId::parse)?;
    let field = body_field(kind);
    let body = map.remove(field).ok_or(PayloadError::Missing(field))?;
    // `candidate: null` is the browser's end-of-candidates signal; other bodies need a value.
    if body.is_null() && kind != SignalKind::IceCandidate {
        return Err(PayloadError::Null(field));
    }
    Ok(RelayRequest { room, target, body })
}

/// The payload field that carries a relay's body: `offer`, `answer`, `candidate`.
pub fn body_field(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::Offer => "offer",
        SignalKind::Answer => "answer",
        SignalKind::IceCandidate => "candidate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IdError;
    use serde_json::json;

    #[test]
    fn a_join_payload_becomes_typed_ids_and_extra_fields_are_ignored() {
        let req = join(Some(json!({"roomId": "r", "userId": "u", "extra": 1}))).unwrap();
        assert_eq!((req.room.as_str(), req.user.as_str()), ("r", "u"));
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(join(Some(json!({"roomId": "r"}))), Err(PayloadError::Missing("userId")));
        let err = relay(SignalKind::Offer, Some(json!({"roomId": "r", "targetId": "t"})));
        assert_eq!(err, Err(PayloadError::Missing("offer")));
    }

    #[test]
    fn a_wrong_id_type_is_rejected() {
        assert_eq!(leave(Some(json!({"roomId": 7}))), Err(PayloadError::NotAString("roomId")));
        let err = relay(SignalKind::Answer, Some(json!({"roomId": "r", "targetId": null, "answer": {}})));
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
        let err = relay(SignalKind::Offer, Some(json!({"roomId": "r", "targetId": "t".repeat(129), "offer": {}})));
        assert_eq!(err, Err(PayloadError::BadId("targetId", IdError::TooLong(129))));
    }

    #[test]
    fn a_null_candidate_is_relayed_but_a_null_offer_is_not() {
        let ok = relay(SignalKind::IceCandidate, Some(json!({"roomId": "r", "targetId": "t", "candidate": null})));
        assert_eq!(ok.unwrap().body, Value::Null);
        let err = relay(SignalKind::Offer, Some(json!({"roomId": "r", "targetId": "t", "offer": null})));
        assert_eq!(err, Err(PayloadError::Null("offer")));
    }

    #[test]
    fn the_body_is_kept_exactly() {
        let body = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "n": [1.5, -2]});
        let req = relay(SignalKind::Offer, Some(json!({"roomId": "r", "targetId": "t", "offer": body}))).unwrap();
        assert_eq!(req.body, body);
    }
}
