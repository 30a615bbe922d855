//! The Redis device engines: presence, queues, expiry notices, endpoints and
//! wake-ups, one cluster-wide view for every instance.
//!
//! Layout (`p` is the prefix in braces, a Redis Cluster hash tag: `{switchboard}` by default; device and network ids hold no `:`):
//! - `p:d:dev:{device}` string: the device's record (JSON, times in unix ms)
//! - `p:d:devices` set: every device with a record; `p:d:net:{network}` set: those in one network
//! - `p:d:q:{device}` sorted set: the signals waiting for the device, JSON scored by id;
//!   `p:d:q:{device}:seq`: the last id given (from Redis's time in µs when
//!   missing, so ids never repeat, even after Redis lost its data; kept a week
//!   after its last use); `p:d:queued` set: devices with a non-empty queue
//! - `p:d:q:{device}:bytes`, `p:d:u:{user}:bytes`, `p:d:bytes`: the bytes of
//!   signal bodies waiting for the device, sent by the user, and in all (the
//!   byte budgets; kept by the same scripts that add and remove signals, and
//!   deleted at zero)
//! - `p:d:n:{device}` sorted set: the expiry notices for the device as a sender, JSON scored by id;
//!   `p:d:n:{device}:seq`: the last id given (as the queue's); `p:d:noticed` set: devices with notices
//! - `p:d:at:{device}` string: the device's live connection, JSON `{instance, conn}`;
//!   `p:d:inst:{instance}` set: the devices an instance registered, so a
//!   survivor deletes their endpoints once it is dead
//! - `p:d:announce:{user}:{device}` string: the announcement limit's bucket
//!   (see `ANNOUNCE`), expiring once the bucket is full again
//! - `p:d:wake` channel: ids of devices that have mail
//! - `p:inst:{instance}:alive`: the instance's heartbeat (see
//!   [`crate::store::redis::instances`]), which tells whether an endpoint's instance is alive
//!
//! Atomicity: a record change reads the record, applies the [`Device`](crate::domain::presence::Device) rule and
//! writes the result with a Lua compare-and-set on the exact JSON it read,
//! retrying on conflict; the network sets change in the same script. Each
//! queue and notice change is one Lua script, so an id is never given twice
//! and two instances expiring at once move each signal to its sender's notices
//! exactly once. Promotion plans from fresh records and promotes one device at
//! a time through the same compare-and-set; a planned device that changed
//! meanwhile makes it plan again, so two instances promoting at once fill each
//! missing seat once.
//!
//! Times are the callers' `now`, never Redis's clock, except in the
//! announcement limit, which every instance must count alike: nothing but an
//! announcement bucket has a Redis TTL; the sweep and expiry
//! delete records and signals. The id counters
//! stay, so an id is not given again once its queue or notice list empties.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

mod codec;
mod endpoints;
mod presence;
mod queues;
mod scripts;
#[cfg(test)]
mod tests;

pub use endpoints::RedisEndpoints;
pub use presence::RedisPresence;
pub use queues::RedisQueues;

use std::sync::Arc;

use fred::prelude::Client;

use super::Devices;
use crate::store::redis::key;

/// `p:d:part:...`, where every key of these engines lives.
fn device_key(prefix: &str, parts: &[&str]) -> String {
    let all: Vec<&str> = std::iter::once("d").chain(parts.iter().copied()).collect();
    key(prefix, &all)
}

impl Devices {
    /// The Redis engines over `client` (connected), keys under `prefix`, for
    /// the instance `instance`; the endpoints engine is also returned, to be
    /// subscribed to wake-ups ([`RedisEndpoints::watch_wakes`]).
    pub fn redis(
        client: Client,
        prefix: &str,
        instance: &str,
        clock: Arc<crate::store::redis::clock::RedisClock>,
    ) -> (Self, Arc<RedisEndpoints>) {
        let endpoints = Arc::new(RedisEndpoints::new(client.clone(), prefix, instance));
        let devices = Self {
            presence: Arc::new(RedisPresence::new(client.clone(), prefix)),
            queues: Arc::new(RedisQueues::new(client, prefix, clock)),
            endpoints: endpoints.clone(),
        };
        (devices, endpoints)
    }
}
