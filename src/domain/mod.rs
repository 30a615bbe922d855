//! Domain: identifiers and room rules as plain synchronous Rust.
//!
//! Nothing here does I/O or knows about sockets, so every rule is unit-tested
//! directly and both stores (memory now, Redis later) apply the very same rules.

pub mod ice;
pub mod ids;
pub mod mesh;
pub mod net;
pub mod presence;
pub mod rate;
pub mod ring;
pub mod room;
pub mod signal;
pub mod worker;

/// `t` in Unix milliseconds (0 before 1970): the wire's and the stores' time.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(std::time::SystemTime::now())
}

pub use ids::{ConnId, IdError, MAX_ID_CHARS, RoomId, UserId};
pub use room::{Departure, Joined, Member, Request, Room, RoomError, RoomMeta, Route};
