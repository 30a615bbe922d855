//! Transport: everything that speaks a wire protocol.
//!
//! socket.io handlers ([`socket`]), REST routes ([`http`]), CORS and the
//! websocket origin check ([`origin`]), the wire names and shapes ([`events`],
//! [`payload`]) and the one mapping of errors to `{ code, message }` ([`error`]).
//! Handlers parse, call the store, and emit; rules live in [`crate::domain`].

pub mod address;
pub mod auth;
pub mod dashboard;
pub mod deliver;
pub mod device_socket;
pub mod devices;
pub mod error;
pub mod events;
mod handlers;
pub mod head;
pub mod http;
pub mod inbox;
pub mod mesh;
pub mod origin;
pub mod payload;
pub mod presence_jobs;
pub mod query;
pub mod serial;
pub mod socket;
pub mod static_files;
pub mod upkeep;
pub mod workers;
