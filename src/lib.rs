//! switchboard: a WebRTC signaling server that socket.io clients use unchanged.
//!
//! Data flows one way: [`transport`] (socket.io handlers, REST) calls
//! [`domain`] rules through a [`store`]; nothing calls back up. [`server::run`]
//! wires it all; [`config`] is the only reader of the environment.
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod domain;
pub mod healthcheck;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod transport;
