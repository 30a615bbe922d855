//! Domain: identifiers and rules (rooms, presence, signals, the mesh
//! election, the ring, workers, rate limits, addresses, ICE credentials) as
//! plain synchronous Rust; time is passed in.
//!
//! Nothing here does I/O or knows about sockets, so every rule is unit-tested
//! directly and every store engine applies the very same rules. Must not
//! import an I/O crate or anything of the crate outside `domain`.

pub mod ice;
pub mod ids;
pub mod mesh;
pub mod net;
pub mod peerjs;
pub mod presence;
pub mod queue;
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
