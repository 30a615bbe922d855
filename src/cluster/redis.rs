//! Redis connections for cluster mode (`REDIS_URL` set).
//!
//! Two fred clients: one for commands (the stores, liveness, publishing on
//! the cluster bus) and one subscriber for this process's channels (the
//! cluster bus, room changes for the route cache, device wake-ups). Both
//! reconnect forever with exponential backoff (the subscriber at most a
//! second apart, since nothing reaches this instance from the others until it
//! is back), and commands fail after `REDIS_TIMEOUT_MS` instead of queueing
//! without bound. The subscriber re-subscribes after every reconnect:
//! without that, instances stop hearing each other once Redis has come back.
//! [`Subscriptions`] says whether that has happened: the upkeep task keeps
//! the instance "down" until it has, the route cache stays off, and device
//! wake-ups missed meanwhile are made up. This is done here rather than by
//! fred's `manage_subscriptions`, which gives up on the first refused
//! re-subscription instead of retrying.

use std::collections::BTreeSet;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, RespVersion};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use crate::config::Config;

/// Capacity of fred's pub/sub fan-out channel; a slower reader beyond it
/// would lose messages, so it is sized for bursts of relays between instances.
const PUBSUB_CAPACITY: usize = 16_384;

/// Longest wait between two reconnection attempts of the command client.
const DATA_MAX_BACKOFF_MS: u32 = 5_000;

/// Longest wait between two reconnection attempts of the subscriber: while it
/// is away, what other instances publish to this one's connections is lost.
const SUBSCRIBER_MAX_BACKOFF_MS: u32 = 1_000;

/// How often a subscriber that lost its connection is checked for being back.
const RESUBSCRIBE_RETRY: Duration = Duration::from_millis(100);

/// Failed re-subscriptions on a connected subscriber before one warning.
const PERSISTENT_FAILURES: u32 = 10;

/// The connected clients.
pub struct RedisClients {
    /// For commands.
    pub data: Client,
    /// For this process's subscriptions.
    pub subscriber: SubscriberClient,
}

/// Builds both clients and connects the data client, waiting at most
/// `REDIS_TIMEOUT_MS` x 5 for Redis.
pub async fn connect(url: &str, config: &Config) -> Result<RedisClients, Error> {
    let mut redis_config = fred::prelude::Config::from_url(url)?;
    let data = builder(redis_config.clone(), config, DATA_MAX_BACKOFF_MS).build()?;
    // Pub/sub on the connection of a RESP3 client; fred ignores the URL's protocol parameter.
    redis_config.version = RespVersion::RESP3;
    let subscriber = builder(redis_config, config, SUBSCRIBER_MAX_BACKOFF_MS).build_subscriber_client()?;
    init_within(&data, config.redis_timeout * 5).await?;
    init_within(&subscriber, config.redis_timeout * 5).await?;
    Ok(RedisClients { data, subscriber })
}

fn builder(redis_config: fred::prelude::Config, config: &Config, max_backoff_ms: u32) -> Builder {
    let mut builder = Builder::from_config(redis_config);
    let timeout = config.redis_timeout;
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, max_backoff_ms, 2))
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

/// Whether the subscriber is connected and subscribed to every channel it
/// tracks and to this process's own channels. False until the first
/// subscription, and from a connection error or reconnect until it has
/// re-subscribed: in between, nothing other instances publish reaches this one.
#[derive(Clone, Debug)]
pub struct Subscriptions(watch::Receiver<bool>);

impl Subscriptions {
    /// True while every channel is subscribed.
    pub fn ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Follows readiness: each change, and the value now.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }

    /// Resolves once ready (at once if ready now).
    pub async fn until_ready(&self) {
        // An Err means the task keeping them ended: they will never be.
        if self.0.clone().wait_for(|ready| *ready).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Subscribes `subscriber` (connected) to `own` (this process's channels:
/// the cluster bus, room changes, device wake-ups), and after each connection
/// error or reconnect re-subscribes to those and every channel it tracks,
/// retrying until it succeeds.
pub fn keep_subscriptions(subscriber: SubscriberClient, own: Vec<String>) -> Subscriptions {
    let (ready, watch) = watch::channel(false);
    // Listening from now, so no trouble goes unseen before the task runs.
    let troubles = (subscriber.error_rx(), subscriber.reconnect_rx());
    tokio::spawn(keep(subscriber, own, ready, troubles));
    Subscriptions(watch)
}

async fn keep(
    subscriber: SubscriberClient,
    own: Vec<String>,
    ready: watch::Sender<bool>,
    (mut errors, mut reconnects): (Receiver<(Error, Option<Server>)>, Receiver<Server>),
) {
    // Tracked channels are those subscribed so far (`own` once subscribed, and
    // any other); a SUBSCRIBE to one already subscribed changes nothing.
    let channels = || {
        let mut all: BTreeSet<String> = own.iter().cloned().collect();
        all.extend(subscriber.tracked_channels().iter().map(|c| c.to_string()));
        all
    };
    loop {
        // Until connected and (re-)subscribed with no new trouble meanwhile.
        let mut failures = 0;
        loop {
            if !drain(&mut errors) || !drain(&mut reconnects) {
                return;
            }
            if subscriber.is_connected() {
                match subscribe_all(&subscriber, channels()).await {
                    Ok(()) if errors.is_empty() && reconnects.is_empty() => break,
                    Ok(()) => continue,
                    // The first tries may fall in the moment before fred sees the
                    // connection is gone; a refusal that lasts is worth a warning.
                    Err(e) if failures == PERSISTENT_FAILURES => {
                        tracing::warn!(error = %e, "Redis refuses to subscribe; retrying");
                    }
                    Err(e) => tracing::debug!(error = %e, "subscribing failed; retrying"),
                }
                failures += 1;
            }
            tokio::time::sleep(RESUBSCRIBE_RETRY).await;
        }
        ready.send_replace(true);
        tracing::debug!("Redis subscriptions in place");
        // Trouble: an error on the connection, or a new connection without subscriptions.
        let trouble = tokio::select! {
            error = errors.recv() => error.map(drop),
            reconnect = reconnects.recv() => reconnect.map(drop),
        };
        if matches!(trouble, Err(RecvError::Closed)) {
            return;
        }
        ready.send_replace(false);
    }
}

/// Empties `rx` of pending notices; false once it is closed.
fn drain<T: Clone>(rx: &mut Receiver<T>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Closed) => return false,
        }
    }
}

fn keys<T: Into<Key>>(set: impl IntoIterator<Item = T>) -> Vec<Key> {
    set.into_iter().map(Into::into).collect()
}

/// Subscribes to `channels` and to every tracked pattern and sharded channel,
/// then checks with Redis that the connection holds them: fred answers a
/// refused `SUBSCRIBE` (an ACL that forbids the channel) with `Ok`.
async fn subscribe_all(subscriber: &SubscriberClient, channels: BTreeSet<String>) -> Result<(), Error> {
    let wanted = channels.len();
    if !channels.is_empty() {
        subscriber.subscribe(keys(channels)).await?;
    }
    let patterns = keys(subscriber.tracked_patterns());
    if !patterns.is_empty() {
        subscriber.psubscribe(patterns).await?;
    }
    let shard_channels = keys(subscriber.tracked_shard_channels());
    if !shard_channels.is_empty() {
        subscriber.ssubscribe(shard_channels).await?;
    }
    let held = subscribed_channels(subscriber).await?;
    if held < wanted {
        let why = format!("Redis holds {held} of this instance's {wanted} subscriptions");
        return Err(Error::new(ErrorKind::Unknown, why));
    }
    Ok(())
}

/// How many channels the subscriber's connection holds, as Redis says (`CLIENT INFO`'s `sub=`).
/// On a Redis Cluster, fred sends a subscriber's `SUBSCRIBE`s to the node of
/// the slot of its id, so that node is asked.
async fn subscribed_channels(subscriber: &SubscriberClient) -> Result<usize, Error> {
    let node = match subscriber.is_clustered() {
        true => ClusterHash::Custom(fred::util::redis_keyslot(subscriber.id().as_bytes())),
        false => ClusterHash::Random,
    };
    let info: String = subscriber.custom(CustomCommand::new_static("CLIENT", node, false), vec!["INFO"]).await?;
    let count = info.split_whitespace().find_map(|field| field.strip_prefix("sub=")).and_then(|n| n.parse().ok());
    count.ok_or_else(|| Error::new(ErrorKind::Parse, format!("no subscription count in CLIENT INFO: {info}")))
}

/// `init` with a deadline.
async fn init_within(client: &impl ClientLike, wait: Duration) -> Result<(), Error> {
    match tokio::time::timeout(wait, client.init()).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(Error::new(ErrorKind::Timeout, format!("no answer from Redis within {wait:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisProcess;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_redis_refuses_is_not_taken_for_one() {
        let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
        let config = Config { redis_timeout: Duration::from_millis(500), ..Config::default() };
        let clients = connect(&redis.url(), &config).await.unwrap();
        let subscriber = clients.subscriber;
        let channels = || BTreeSet::from(["a".to_owned(), "b".to_owned()]);
        subscribe_all(&subscriber, channels()).await.expect("allowed: subscribed");
        assert_eq!(subscribed_channels(&subscriber).await.unwrap(), 2);
        // An ACL without channels: Redis drops the subscriber, and refuses it again.
        tokio::task::block_in_place(|| redis.command(&["ACL", "SETUSER", "default", "resetchannels"]));
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if subscriber.is_connected() && subscribe_all(&subscriber, channels()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        refused.await.expect("a refused subscription is reported");
        tokio::task::block_in_place(|| redis.command(&["ACL", "SETUSER", "default", "allchannels"]));
        let allowed = tokio::time::timeout(Duration::from_secs(10), async {
            while subscribe_all(&subscriber, channels()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        allowed.await.expect("allowed again: subscribed");
        assert_eq!(subscribed_channels(&subscriber).await.unwrap(), 2);
    }
}
