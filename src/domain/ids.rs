//! Identifier newtypes that can only hold valid values.
//!
//! Wire strings become [`RoomId`] and [`UserId`] at the transport edge; past it
//! no function takes a bare `String` id. The rule (contract v1): non-empty, at
//! most [`MAX_ID_CHARS`] characters, no control characters. Ids are `Arc<str>`
//! so the copies kept in rooms and relays cost a reference count, not an allocation.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Longest room or user id, in characters (not bytes).
pub const MAX_ID_CHARS: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string has more than [`MAX_ID_CHARS`] characters.
    #[error("must be at most {MAX_ID_CHARS} characters (got {0})")]
    TooLong(usize),
    /// The string holds a control character such as a newline or NUL.
    #[error("must not contain control characters")]
    ControlCharacter,
}

fn validate(raw: &str) -> Result<Arc<str>, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    let chars = raw.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(IdError::TooLong(chars));
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(Arc::from(raw))
}

/// A newtype over `Arc<str>` with `as_str`, `Display`, `Debug` (as a quoted
/// string) and transparent serialisation; each type adds its own `parse`.
macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}
pub(crate) use string_newtype;

/// `Deserialize` through the type's own `parse`, so a stored or relayed value
/// holds the same rule as one from the wire.
macro_rules! deserialize_by_parse {
    ($($name:ident),*) => {
        $(
            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    let raw = String::deserialize(d)?;
                    $name::parse(&raw).map_err(serde::de::Error::custom)
                }
            }
        )*
    };
}
pub(crate) use deserialize_by_parse;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        string_newtype!($(#[$doc])* $name);

        impl $name {
            /// Parses a wire string, enforcing the id rule.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                validate(raw).map(Self)
            }
        }
    };
}

id_type!(
    /// A room's id, as chosen by clients.
    RoomId
);
id_type!(
    /// A participant's id within rooms, as chosen by clients (or by a token later).
    UserId
);
deserialize_by_parse!(RoomId, UserId);

/// One client connection, whatever its protocol: opaque to the domain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ConnId(Arc<str>);

impl ConnId {
    /// Wraps a transport connection id.
    pub fn new(raw: &str) -> Self {
        Self(Arc::from(raw))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_128_char_room_id_is_accepted() {
        let raw = "r".repeat(128);
        assert_eq!(RoomId::parse(&raw).unwrap().as_str(), raw);
    }

    #[test]
    fn a_129_char_room_id_is_rejected() {
        assert_eq!(RoomId::parse(&"r".repeat(129)), Err(IdError::TooLong(129)));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let raw = "é".repeat(128); // 256 bytes
        assert!(UserId::parse(&raw).is_ok());
    }

    #[test]
    fn an_empty_id_is_rejected() {
        assert_eq!(UserId::parse(""), Err(IdError::Empty));
    }

    #[test]
    fn control_characters_are_rejected() {
        for raw in ["a\nb", "nul\0", "tab\t", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(UserId::parse(raw), Err(IdError::ControlCharacter), "{raw:?}");
        }
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = RoomId::parse("lobby").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"lobby\"");
    }
}
