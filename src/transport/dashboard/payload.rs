//! The directory namespace's payloads: a payload may wrap its fields in
//! `data`, as seed 001's messages do, or give them directly.

use serde_json::{Map, Value};

use crate::domain::room::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::domain::{RoomId, RoomMeta, UserId};
use crate::transport::wire::payload::{PayloadError, fields, id, text};

/// Longest channel name.
const MAX_CHANNEL_CHARS: usize = 64;

/// `{ channel }` of `subscribe` and `unsubscribe`.
pub fn channel_of(payload: Option<Value>) -> Result<String, PayloadError> {
    channel(&fields(payload)?)
}

/// A channel name: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
pub fn channel(map: &Map<String, Value>) -> Result<String, PayloadError> {
    let raw = text(map, "channel", MAX_CHANNEL_CHARS)?.ok_or(PayloadError::Missing("channel"))?;
    let ok = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(raw).ok_or_else(|| {
        PayloadError::Invalid(
            "channel",
            format!("must be 1 to {MAX_CHANNEL_CHARS} letters, digits, '-', '_', '.' or ':'"),
        )
    })
}

/// `room-created`: the room and its metadata, the host being `hostId`.
pub fn creation(payload: Option<Value>) -> Result<(RoomId, RoomMeta), PayloadError> {
    let map = fields(payload)?;
    let room = id(&map, "id", RoomId::parse)?;
    let host_id = id(&map, "hostId", UserId::parse)?;
    let requires_approval = match map.get("requiresApproval") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(PayloadError::Invalid("requiresApproval", "must be true or false".into())),
    };
    let meta = RoomMeta {
        name: text(&map, "name", MAX_NAME_CHARS)?.unwrap_or_else(|| room.as_str().to_owned()),
        description: text(&map, "description", MAX_DESCRIPTION_CHARS)?.unwrap_or_default(),
        host: text(&map, "host", MAX_NAME_CHARS)?.unwrap_or_else(|| host_id.as_str().to_owned()),
        requires_approval,
        host_id,
        approved: vec![],
        names: vec![],
        requests: vec![],
    };
    Ok((room, meta))
}

/// `user-joined-room` and `join-request`: `{ roomId, userId, userName? }`.
pub fn joiner(payload: Option<Value>) -> Result<(RoomId, UserId, Option<String>), PayloadError> {
    let map = fields(payload)?;
    let room = id(&map, "roomId", RoomId::parse)?;
    let user = id(&map, "userId", UserId::parse)?;
    Ok((room, user, text(&map, "userName", MAX_NAME_CHARS)?))
}

/// `user-left-room { roomId, userId? }`: the room, and whose seat (the
/// sender's own when no `userId` is given).
pub fn leaver(payload: Option<Value>) -> Result<(RoomId, Option<UserId>), PayloadError> {
    let map = fields(payload)?;
    let room = id(&map, "roomId", RoomId::parse)?;
    let user = match map.get("userId") {
        None | Some(Value::Null) => None,
        Some(_) => Some(id(&map, "userId", UserId::parse)?),
    };
    Ok((room, user))
}

/// The room a seed-001 approval message (`join-request`, `join-approved`,
/// `join-rejected`) names, if it names one validly.
pub fn named_room(payload: &Value) -> Option<RoomId> {
    let map = payload.get("data").filter(|d| d.is_object()).unwrap_or(payload).as_object()?;
    id(map, "roomId", RoomId::parse).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_may_be_wrapped_in_data_or_given_directly() {
        let wrapped = joiner(Some(json!({"data": {"roomId": "r", "userId": "u", "userName": "Ann"}}))).unwrap();
        let direct = joiner(Some(json!({"roomId": "r", "userId": "u", "userName": "Ann"}))).unwrap();
        assert_eq!(wrapped, direct);
        assert_eq!(direct.2.as_deref(), Some("Ann"));
    }

    #[test]
    fn a_created_room_defaults_its_names_and_refuses_a_non_boolean_approval() {
        let (room, meta) = creation(Some(json!({"id": "standup", "hostId": "hank"}))).unwrap();
        assert_eq!((room.as_str(), meta.name.as_str(), meta.host.as_str()), ("standup", "standup", "hank"));
        assert!(!meta.requires_approval);
        let refused = creation(Some(json!({"id": "r", "hostId": "h", "requiresApproval": "yes"})));
        assert_eq!(refused.unwrap_err(), PayloadError::Invalid("requiresApproval", "must be true or false".into()));
    }

    #[test]
    fn a_channel_name_is_short_and_plain() {
        assert_eq!(channel_of(Some(json!({"channel": "webrtc-signaling"}))).unwrap(), "webrtc-signaling");
        for bad in [json!({"channel": ""}), json!({"channel": "a b"}), json!({"channel": "x".repeat(65)}), json!({})] {
            assert!(channel_of(Some(bad.clone())).is_err(), "{bad}");
        }
    }
}
