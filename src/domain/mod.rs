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

pub use ids::{ConnId, IdError, MAX_ID_CHARS, RoomId, UserId};
pub use room::{Departure, Joined, Member, Request, Room, RoomError, RoomMeta, Route};
