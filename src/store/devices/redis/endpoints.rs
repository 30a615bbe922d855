//! [`Endpoints`] in Redis: each device's live connection as JSON, counted
//! only while its instance is alive, and wake-ups published to every instance.

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::codec::EndpointJson;
use super::device_key;
use crate::domain::presence::DeviceId;
use crate::store::StoreError;
use crate::store::devices::{Endpoint, Endpoints, WAKE_CAPACITY, Wake};
use crate::store::redis::instances::Instances;
use crate::store::redis::{decode, encode, unavailable};

/// The engine's name in the per-instance notes ([`Instances::note`]).
const ENGINE: &str = "d";

/// Deletes an endpoint if it is still the one given. KEYS: endpoint. ARGV: its JSON.
const UNREGISTER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Live connections and wake-ups in Redis.
pub struct RedisEndpoints {
    client: Client,
    prefix: String,
    instances: Instances,
    unregister: Script,
    wakes: broadcast::Sender<Wake>,
}

impl RedisEndpoints {
    /// The engine over `client` (connected), keys under `prefix`, for the
    /// instance `instance`: the id its endpoints carry, which it takes as
    /// alive without asking (it is running).
    pub fn new(client: Client, prefix: &str, instance: &str) -> Self {
        Self {
            instances: Instances::new(client.clone(), prefix, instance),
            client,
            prefix: prefix.to_owned(),
            unregister: Script::from_lua(UNREGISTER),
            wakes: broadcast::channel(WAKE_CAPACITY).0,
        }
    }

    /// Starts hearing wake-ups from every instance on `subscriber`, whose
    /// subscription to [`Self::wake_channel`] `ready` follows; each time it is
    /// back, [`Wake::All`], since wake-ups were missed.
    pub fn watch_wakes(&self, subscriber: SubscriberClient, ready: watch::Receiver<bool>) {
        tokio::spawn(watch_wakes(self.wakes.clone(), subscriber, self.wake_channel(), ready));
    }

    /// The channel wake-ups go on (to be kept subscribed).
    pub fn wake_channel(&self) -> String {
        device_key(&self.prefix, &["wake"])
    }

    fn at_key(&self, device: &DeviceId) -> String {
        device_key(&self.prefix, &["at", device.as_str()])
    }

    /// `raw` (an endpoint as stored, if any), if its instance is alive.
    async fn live(&self, key: &str, raw: Option<String>) -> Result<Option<Endpoint>, StoreError> {
        let Some(raw) = raw else { return Ok(None) };
        let at = decode(key, &raw, EndpointJson::into_endpoint)?;
        Ok(self.instances.is_alive(&at.instance).await?.then_some(at))
    }
}

/// Forwards the device ids published on `channel` to `wakes`.
/// Wake-ups missed (a lagging or reconnecting subscriber) become [`Wake::All`].
async fn watch_wakes(
    wakes: broadcast::Sender<Wake>,
    subscriber: SubscriberClient,
    channel: String,
    mut ready: watch::Receiver<bool>,
) {
    let mut messages = subscriber.message_rx();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(m) if &*m.channel == channel.as_str() => {
                    if let Some(id) = m.value.as_str().and_then(|id| DeviceId::parse(&id).ok()) {
                        // No receiver (no device connected here) is not an error.
                        let _ = wakes.send(Wake::Device(id));
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "device wake-ups were dropped: every local device reads its mail");
                    let _ = wakes.send(Wake::All);
                }
                Err(RecvError::Closed) => return,
            },
            change = ready.changed() => match change {
                // Subscribed again: wake-ups published while this instance was
                // away are lost, so every local device reads its mail.
                Ok(()) if *ready.borrow_and_update() => drop(wakes.send(Wake::All)),
                Ok(()) => {}
                Err(_) => return,
            },
        }
    }
}

#[async_trait]
impl Endpoints for RedisEndpoints {
    async fn register(&self, device: &DeviceId, at: Endpoint) -> Result<Option<Endpoint>, StoreError> {
        let key = self.at_key(device);
        let json = encode(&EndpointJson::from(&at))?;
        let previous: Option<String> = self.client.set(&key, json, None, None, true).await.map_err(unavailable)?;
        self.instances.note(ENGINE, device.as_str()).await?;
        self.live(&key, previous).await
    }

    async fn restore(&self, device: &DeviceId, at: Endpoint) -> Result<bool, StoreError> {
        let json = encode(&EndpointJson::from(&at))?;
        let set: Option<String> =
            self.client.set(self.at_key(device), json, None, Some(SetOptions::NX), false).await.map_err(unavailable)?;
        if set.is_some() {
            self.instances.note(ENGINE, device.as_str()).await?;
        }
        Ok(set.is_some())
    }

    async fn unregister(&self, device: &DeviceId, at: &Endpoint) -> Result<bool, StoreError> {
        let keys = vec![self.at_key(device)];
        let json = encode(&EndpointJson::from(at))?;
        let removed: i64 =
            self.unregister.evalsha_with_reload(&self.client, keys, vec![json]).await.map_err(unavailable)?;
        // This instance's connection is gone either way.
        self.instances.unnote(ENGINE, device.as_str()).await?;
        Ok(removed == 1)
    }

    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let locate = |noted: &str| Some((self.at_key(&DeviceId::parse(noted).ok()?), None));
        let theirs = |key: &str, raw: &str| Ok(&*decode(key, raw, EndpointJson::into_endpoint)?.instance == dead);
        self.instances.forget_leftovers(ENGINE, dead, locate, theirs).await
    }

    async fn endpoint(&self, device: &DeviceId) -> Result<Option<Endpoint>, StoreError> {
        let key = self.at_key(device);
        let raw: Option<String> = self.client.get(&key).await.map_err(unavailable)?;
        self.live(&key, raw).await
    }

    async fn wake(&self, device: &DeviceId) -> Result<(), StoreError> {
        let _: () = self.client.publish(self.wake_channel(), device.as_str()).await.map_err(unavailable)?;
        Ok(())
    }

    fn wakes(&self) -> broadcast::Receiver<Wake> {
        self.wakes.subscribe()
    }
}
