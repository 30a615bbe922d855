//! The cluster bus: one Redis channel every instance publishes to and hears,
//! carrying what one instance sends to connections held by another (events,
//! group broadcasts, close requests). It moves opaque text; what it means is
//! the core's ([`crate::core::courier`]). An instance hears its own
//! messages too; the core skips them.
//!
//! Ordering: messages one instance publishes arrive at every other in the
//! order published (one connection each way), so relays from one sender stay
//! in order across instances. A message published while an instance is not
//! subscribed (a Redis outage) does not reach it: `/health` shows that
//! window as "down" (see [`super::redis::Subscriptions`]).

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::store::StoreError;
use crate::store::redis::{key, unavailable};

/// Messages heard but not yet taken by the core, at most; past it the
/// oldest are not waited for (the reader lags, and is told so).
const INBOUND: usize = 16_384;

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

    /// Every message heard on the bus through `subscriber`, in order; `None`
    /// in the stream marks messages lost by a lagging reader.
    pub fn listen(&self, subscriber: &SubscriberClient) -> mpsc::Receiver<Option<String>> {
        let (tx, rx) = mpsc::channel(INBOUND);
        let mut messages = subscriber.message_rx();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            loop {
                let heard = match messages.recv().await {
                    Ok(m) if *m.channel == *channel => m.value.as_string(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "cluster bus messages were dropped: this instance lagged");
                        None
                    }
                    Err(RecvError::Closed) => return,
                };
                if tx.send(heard).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}
