//! The cluster bus: one Redis channel every instance publishes to and hears,
//! carrying what one instance sends to connections held by another (events,
//! group broadcasts, close requests). It moves opaque text; what it means is
//! the core's ([`crate::core::courier`]). An instance hears its own
//! messages too; the core skips them. Heard messages wait in the
//! subscriber's own queue (fred's, `PUBSUB_CAPACITY` in [`super::redis`]) until the core reads
//! them.
//!
//! Ordering: messages one instance publishes arrive at every other in the
//! order published (one connection each way), so relays from one sender stay
//! in order across instances. A message published while an instance is not
//! subscribed (a Redis outage) does not reach it: `/health` shows that
//! window as "down" (see [`super::redis::Subscriptions`]).

use std::borrow::Cow;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::{Message, Value};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::store::StoreError;
use crate::store::redis::{key, unavailable};

/// Publishing to, and hearing from, the other instances.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    channel: String,
    timeout: Duration,
}

impl Bus {
    /// The bus of the cluster under `prefix`, published through `client`,
    /// each publish waiting at most `timeout`.
    pub fn new(client: Client, prefix: &str, timeout: Duration) -> Self {
        Self { client, channel: key(prefix, &["bus"]), timeout }
    }

    /// The channel (to be kept subscribed).
    pub fn channel(&self) -> String {
        self.channel.clone()
    }

    /// Publishes `message` to every instance.
    pub async fn publish(&self, message: String) -> Result<(), StoreError> {
        // Boxed: fred's future is kilobytes, and every future that may publish
        // (each relay's) would carry it inline, local deliveries included.
        let publish = Box::pin(self.client.publish::<(), _, _>(&self.channel, message));
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(published) => published.map_err(unavailable),
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
