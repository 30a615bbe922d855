//! switchboard: a WebRTC signaling server that existing clients connect to
//! unchanged.
//!
//! Data flows one way, nothing calls back up:
//! [`transport`] (one folder per namespace or protocol over one connection
//! pipeline; REST; wire shapes and error mapping) calls the protocol-neutral
//! [`core`] (seats, relays, queues, elections, pools), which applies
//! [`domain`] rules (pure, no I/O) to state in a [`store`] (one folder per
//! kind of state, memory and Redis engines). [`cluster`] holds the Redis
//! connections, the bus between instances and the leader lease.
//! [`server::run`] wires it all from one table of namespaces; [`config`] is
//! the only reader of the environment. The architecture test
//! (`tests/architecture.rs`) keeps these rules.
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod core;
pub mod domain;
pub mod healthcheck;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod transport;
