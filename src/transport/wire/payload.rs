//! Reading client payloads at the edge, for every protocol: each event's
//! single JSON object becomes typed values (validated ids, bounded text) or a
//! [`PayloadError`] naming the field at fault. Unknown extra fields are
//! ignored, as clients expect; bodies are moved out untouched. Each feature's
//! requests are parsed with these beside the feature (`transport/<feature>`).

use serde_json::{Map, Value};

use crate::domain::IdError;
use crate::domain::signal::SignalKind;

/// Why a payload is not what the event needs (wire code `invalid-payload`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// A raw WebSocket frame that is binary: every raw protocol is JSON text.
    #[error("frames must be JSON text, not binary")]
    NotText,
    /// A raw WebSocket text frame that is not JSON.
    #[error("the frame is not JSON")]
    NotJson,
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

/// The payload as one JSON object.
pub fn object(payload: Option<Value>) -> Result<Map<String, Value>, PayloadError> {
    match payload {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(PayloadError::NotAnObject),
    }
}

/// A required id field, parsed by its rule.
pub fn id<T>(
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
pub fn fields(payload: Option<Value>) -> Result<Map<String, Value>, PayloadError> {
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
pub fn text(map: &Map<String, Value>, field: &'static str, max: usize) -> Result<Option<String>, PayloadError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max && !s.chars().any(char::is_control) => Ok(Some(s.clone())),
        Some(Value::String(_)) => {
            Err(PayloadError::Invalid(field, format!("must be at most {max} characters, without control characters")))
        }
        Some(_) => Err(PayloadError::NotAString(field)),
    }
}

/// A required `offer`, `answer` or `ice-candidate` field named `field`.
pub fn signal_kind(map: &Map<String, Value>, field: &'static str) -> Result<SignalKind, PayloadError> {
    match map.get(field) {
        None => Err(PayloadError::Missing(field)),
        Some(Value::String(t)) => SignalKind::parse(t)
            .ok_or_else(|| PayloadError::Invalid(field, "must be offer, answer or ice-candidate".into())),
        Some(_) => Err(PayloadError::NotAString(field)),
    }
}

/// A required body field that must not be `null`, moved out as sent.
pub fn body(map: &mut Map<String, Value>, field: &'static str) -> Result<Value, PayloadError> {
    match map.remove(field) {
        None => Err(PayloadError::Missing(field)),
        Some(Value::Null) => Err(PayloadError::Null(field)),
        Some(body) => Ok(body),
    }
}

/// `{ roomId, userId }`, fields given directly or wrapped in `data` (seed 001's form).
pub fn room_and_user(payload: Option<Value>) -> Result<(crate::domain::RoomId, crate::domain::UserId), PayloadError> {
    let map = fields(payload)?;
    Ok((id(&map, "roomId", crate::domain::RoomId::parse)?, id(&map, "userId", crate::domain::UserId::parse)?))
}
