//! The cluster bus: one Redis channel every instance publishes to and hears,
//! carrying what one instance sends to connections held by another (events,
//! group broadcasts, close requests). It moves opaque text; what it means is
//! the core's ([`crate::core::courier`]). An instance hears its own
//! messages too; the core skips them. Heard messages wait in the
//! subscriber's own queue (fred's, `PUBSUB_CAPACITY` in [`super::redis`]) until the core reads
//! them.
//!
//! A publish that is not answered within `REDIS_TIMEOUT_MS` fails, and its
//! sender is answered `unavailable`; so it must not go out later, when a
//! paused or busy Redis resumes (a retry would deliver it twice). Each
//! publish is therefore a script with a deadline on Redis's clock
//! ([`RedisClock`]): past it, Redis drops the message.
//!
//! Ordering: messages one instance publishes arrive at every other in the
//! order published (one connection each way), so relays from one sender stay
//! in order across instances. A message published while an instance is not
//! subscribed (a Redis outage) does not reach it: `/health` shows that
//! window as "down" (see [`super::redis::Subscriptions`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{Message, Value};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::store::StoreError;
use crate::store::redis::clock::{LUA_NOW, RedisClock};
use crate::store::redis::{key, unavailable};

/// Publishes ARGV[2] on channel ARGV[1] unless Redis's clock is past ARGV[3];
/// -1 if it was too late.
const PUBLISH: &str = "if now > tonumber(ARGV[3]) then return -1 end return redis.call('PUBLISH', ARGV[1], ARGV[2])";

/// Publishing to, and hearing from, the other instances.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    channel: String,
    timeout: Duration,
    clock: Arc<RedisClock>,
    script: Arc<Script>,
}

impl Bus {
    /// The bus of the cluster under `prefix`, published through `client`,
    /// each publish waiting at most `timeout` and fenced by `clock`.
    pub fn new(client: Client, prefix: &str, timeout: Duration, clock: Arc<RedisClock>) -> Self {
        let script = Arc::new(Script::from_lua(format!("{LUA_NOW} {PUBLISH}")));
        Self { client, channel: key(prefix, &["bus"]), timeout, clock, script }
    }

    /// The channel (to be kept subscribed).
    pub fn channel(&self) -> String {
        self.channel.clone()
    }

    /// Publishes `message` to every instance.
    pub async fn publish(&self, message: String) -> Result<(), StoreError> {
        // Boxed: fred's future is kilobytes, and every future that may publish
        // (each relay's) would carry it inline, local deliveries included.
        let args = vec![self.channel.clone(), message, self.clock.deadline().to_string()];
        let publish = Box::pin(self.script.evalsha_with_reload::<i64, _, _>(&self.client, Vec::<String>::new(), args));
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(-1)) => Err(StoreError::Unavailable("Redis ran a publish past its deadline: not sent".into())),
            Ok(published) => published.map(drop).map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable(format!("no answer from Redis within {:?}", self.timeout))),
        }
    }

    /// Every message heard on the bus through `subscriber`, in order.
    pub fn listen(&self, subscriber: &SubscriberClient) -> Heard {
        Heard { messages: subscriber.message_rx(), channel: self.channel.clone() }
    }
}

/// The messages heard on the bus, read straight from the subscriber's queue.
pub struct Heard {
    messages: broadcast::Receiver<Message>,
    channel: String,
}

/// One message heard on the bus.
pub struct BusMessage(Value);

impl BusMessage {
    /// Its text (every message is published as text).
    pub fn text(&self) -> Option<Cow<'_, str>> {
        self.0.as_str()
    }
}

impl Heard {
    /// The next message on the bus; `None` once the subscriber is gone. A
    /// reader that lagged past the subscriber's queue is told in the log, and
    /// goes on with what is still queued.
    pub async fn next(&mut self) -> Option<BusMessage> {
        loop {
            match self.messages.recv().await {
                Ok(m) if *m.channel == *self.channel => return Some(BusMessage(m.value)),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "cluster bus messages were dropped: this instance lagged");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
