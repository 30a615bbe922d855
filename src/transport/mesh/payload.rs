//! Reading seed 000's client messages, for both transports: a raw frame
//! `{type, data}` ([`frame`]) and the fields of `location-update` and
//! `peer-message` (given directly, or wrapped in `data` as seed 000 does).

use serde_json::Value;

use super::wire::MeshEvent;
use crate::core::mesh::Recipient;
use crate::domain::mesh::{ClientId, Location};
use crate::transport::conn::sio::WireName;
use crate::transport::wire::payload::{PayloadError, fields, object};

/// A raw text frame `{type, data}`: its event, and the frame itself as the
/// payload (its fields are read from `data`).
pub fn frame(text: &str) -> Result<(MeshEvent, Option<Value>), PayloadError> {
    let value: Value = serde_json::from_str(text).map_err(|_| PayloadError::NotJson)?;
    let map = object(Some(value))?;
    let event = match map.get("type") {
        Some(Value::String(name)) => MeshEvent::from_name(name),
        None => return Err(PayloadError::Missing("type")),
        Some(_) => return Err(PayloadError::NotAString("type")),
    };
    Ok((event, Some(Value::Object(map))))
}

/// `location-update { latitude, longitude, accuracy }`
pub fn location(data: Option<Value>) -> Result<Location, PayloadError> {
    let map = fields(data)?;
    let number =
        |f: &'static str| map.get(f).and_then(Value::as_f64).ok_or(PayloadError::Invalid(f, "must be a number".into()));
    let (latitude, longitude, accuracy) = (number("latitude")?, number("longitude")?, number("accuracy")?);
    Location::new(latitude, longitude, accuracy).map_err(|e| PayloadError::Invalid("location", e.to_string()))
}

/// `peer-message { targetId, message }`: `broadcast` or a client id.
pub fn peer_message(data: Option<Value>) -> Result<(Recipient, Value), PayloadError> {
    let mut map = fields(data)?;
    let to = match map.get("targetId") {
        Some(Value::String(t)) if t == "broadcast" => Recipient::Everyone,
        Some(Value::String(t)) => {
            Recipient::Client(ClientId::parse(t).map_err(|e| PayloadError::Invalid("targetId", e.to_string()))?)
        }
        None => return Err(PayloadError::Missing("targetId")),
        Some(_) => return Err(PayloadError::NotAString("targetId")),
    };
    let message = map.remove("message").ok_or(PayloadError::Missing("message"))?;
    Ok((to, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_raw_frame_is_one_json_object_with_a_string_type() {
        let (event, data) = frame(r#"{"type":"peer-message","data":{"targetId":"bob","message":1}}"#).unwrap();
        assert_eq!(event, MeshEvent::PeerMessage);
        assert_eq!(peer_message(data).unwrap(), (Recipient::Client(ClientId::parse("bob").unwrap()), json!(1)));
        assert_eq!(frame(r#"{"type":"dance"}"#).unwrap().0, MeshEvent::Unknown("dance".into()));
        assert_eq!(frame("not json"), Err(PayloadError::NotJson));
        assert_eq!(frame("[1,2]"), Err(PayloadError::NotAnObject));
        assert_eq!(frame(r#"{"data":{}}"#), Err(PayloadError::Missing("type")));
        assert_eq!(frame(r#"{"type":7}"#), Err(PayloadError::NotAString("type")));
    }

    #[test]
    fn a_location_is_three_numbers_in_range() {
        let ok = json!({"type": "location-update", "data": {"latitude": 40.7, "longitude": -74.0, "accuracy": 10}});
        assert_eq!(location(Some(ok)).unwrap().latitude, 40.7);
        let err = location(Some(json!({"latitude": "north", "longitude": 0, "accuracy": 1}))).unwrap_err();
        assert_eq!(err.to_string(), "latitude must be a number");
        assert!(location(Some(json!({"latitude": 91, "longitude": 0, "accuracy": 1}))).is_err());
    }
}
