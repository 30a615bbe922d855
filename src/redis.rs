//! Redis connections for cluster mode (`REDIS_URL` set).
//!
//! Two fred clients: one for commands (the room store, liveness) and one
//! subscriber for the socket.io adapter's pub/sub. Both reconnect forever with
//! exponential backoff, and commands fail after `REDIS_TIMEOUT_MS` instead of
//! queueing without bound. The subscriber re-subscribes after every reconnect:
//! without that, instances stop hearing each other once Redis has come back.
//! fred's own `manage_subscriptions` cannot be used: it sends `SUBSCRIBE` with
//! an empty channel list (the adapter uses only sharded channels), gets an
//! error, and gives up before re-subscribing the sharded ones. Sharded pub/sub
//! needs Redis 7 or later.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::RespVersion;
use tokio::sync::broadcast::error::RecvError;

use crate::config::Config;

/// Capacity of fred's pub/sub fan-out channel; a slower reader beyond it
/// would lose messages, so it is sized for bursts of relays between instances.
const PUBSUB_CAPACITY: usize = 16_384;

/// The connected clients.
pub struct RedisClients {
    /// For commands.
    pub data: Client,
    /// For the socket.io adapter's subscriptions.
    pub subscriber: SubscriberClient,
}

/// Builds both clients and connects the data client, waiting at most
/// `REDIS_TIMEOUT_MS` x 5 for Redis.
pub async fn connect(url: &str, config: &Config) -> Result<RedisClients, Error> {
    let mut redis_config = fred::prelude::Config::from_url(url)?;
    let data = builder(redis_config.clone(), config).build()?;
    // The adapter's driver expects RESP3 pub/sub; fred ignores the URL's protocol parameter.
    redis_config.version = RespVersion::RESP3;
    let subscriber = builder(redis_config, config).build_subscriber_client()?;
    // Only the data client is initialised here: the adapter's fred driver calls
    // `init` on the subscriber itself, and a second `init` races the first.
    init_within(&data, config.redis_timeout * 5).await?;
    Ok(RedisClients { data, subscriber })
}

fn builder(redis_config: fred::prelude::Config, config: &Config) -> Builder {
    let mut builder = Builder::from_config(redis_config);
    let timeout = config.redis_timeout;
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = timeout;
            p.broadcast_channel_capacity = PUBSUB_CAPACITY;
        });
    builder
}

/// Re-subscribes to every tracked channel after each reconnect. Start it once
/// the adapter has subscribed, so the two never race on the same channels.
pub fn keep_subscriptions(subscriber: SubscriberClient) {
    tokio::spawn(async move {
        let mut reconnects = subscriber.reconnect_rx();
        loop {
            match reconnects.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    if let Err(e) = resubscribe(&subscriber).await {
                        tracing::error!(error = %e, "could not re-subscribe after a Redis reconnect");
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn keys<T: Into<Key>>(set: impl IntoIterator<Item = T>) -> Vec<Key> {
    set.into_iter().map(Into::into).collect()
}

async fn resubscribe(subscriber: &SubscriberClient) -> Result<(), Error> {
    let channels = keys(subscriber.tracked_channels());
    if !channels.is_empty() {
        subscriber.subscribe(channels).await?;
    }
    let patterns = keys(subscriber.tracked_patterns());
    if !patterns.is_empty() {
        subscriber.psubscribe(patterns).await?;
    }
    let shard_channels = keys(subscriber.tracked_shard_channels());
    if !shard_channels.is_empty() {
        subscriber.ssubscribe(shard_channels).await?;
    }
    Ok(())
}

/// `init` with a deadline.
async fn init_within(client: &impl ClientLike, wait: Duration) -> Result<(), Error> {
    match tokio::time::timeout(wait, client.init()).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(Error::new(ErrorKind::Timeout, format!("no answer from Redis within {wait:?}"))),
    }
}
