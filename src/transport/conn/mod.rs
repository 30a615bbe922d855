//! The per-connection machinery every protocol shares: admission (origin,
//! credential, address slot: [`admission`], with [`auth`] and [`address`];
//! the close at the token's expiry: [`expiry`]),
//! the pipeline of events (arrival order, rate and pending limits, flood
//! disconnect, the clean-up last: [`pipeline`] over [`inbox`]), and the
//! socket.io glue that runs a namespace's connections on it and makes each a
//! core [`Link`](crate::core::link::Link) ([`sio`]).
//!
//! Must not import `http` or a feature folder (`transport/<feature>`); of the
//! shared folders, only `wire`.

pub mod address;
pub mod admission;
pub mod auth;
pub mod expiry;
pub mod inbox;
pub mod pipeline;
pub mod raw;
pub mod sio;
