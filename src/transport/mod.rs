//! Transport: everything that speaks a wire protocol.
//!
//! Shared parts: [`conn`] (admission, the per-connection pipeline, the
//! socket.io glue that makes each connection a core link), [`wire`] (the one
//! error mapping, payload and query parsing, shared event shapes) and
//! [`http`] (the router's frame, health, metrics, static files, CORS and
//! origin). One folder per namespace: [`rooms`] (`/`), [`dashboard`],
//! [`devices`], [`mesh`], [`workers`] (`/workers` and `/edge`), each with
//! its wire shapes and REST routes; [`peerjs`] (PeerJS's own protocol). Handlers parse, call the core, and
//! answer; feature folders never import each other.
//!
//! Must not be imported by anything below it (`core`, `store`, `cluster`, `domain`, `state.rs`).

pub mod conn;
pub mod dashboard;
pub mod devices;
pub mod http;
pub mod mesh;
pub mod peerjs;
pub mod rooms;
pub mod wire;
pub mod workers;
