//! What running as a cluster takes, beyond the stores: the Redis connections
//! and the subscriptions kept through outages ([`redis`]), and the leader
//! lease that picks the one instance running the cluster-wide jobs
//! ([`lease`]).
//!
//! Must not import `core` or `transport`: the core is built over this.

pub mod bus;
pub mod lease;
pub mod redis;
