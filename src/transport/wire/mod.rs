//! Wire concerns every protocol shares: the one mapping of errors to wire
//! codes ([`error`]), reading payloads ([`payload`]) and query strings
//! ([`query`]), and the shapes of room events that several namespaces send
//! alike ([`rooms`]).
//!
//! Must not import `conn`, `http` or a feature folder (`transport/<feature>`):
//! `wire` is the lowest of the shared folders.

pub mod error;
pub mod payload;
pub mod query;
pub mod rooms;

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A time as the REST APIs show it (RFC 3339, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339() {
        assert_eq!(super::rfc3339(std::time::SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
