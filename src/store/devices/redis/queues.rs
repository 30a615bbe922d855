//! [`Queues`] in Redis: each receiver's queue and each sender's notices a
//! sorted set scored by id, every change one Lua script.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind};
use serde::de::DeserializeOwned;

use super::codec::{NoticeJson, SignalJson};
use super::device_key;
use super::scripts::{COUNTER_TTL_MS, DROP, ENQUEUE, EXPIRE, NEXT_ID, RELEASE};
use crate::domain::UserId;
use crate::domain::presence::DeviceId;
use crate::domain::queue::{OverBudget, QueueBudget};
use crate::domain::signal::{Expired, Notice, Outgoing, Queued};
use crate::store::StoreError;
use crate::store::devices::{EnqueueFailure, Queues};
use crate::store::redis::clock::{LUA_NOW, RedisClock};
use crate::store::redis::{decode, encode, unavailable};

/// Signals of one queue read at a time by `expire`, which takes a queue's
/// signals oldest first and stops at the first one not expired.
const EXPIRE_PAGE: i64 = 100;

/// Queues and notices in Redis.
pub struct RedisQueues {
    client: Client,
    prefix: String,
    enqueue: Script,
    expire: Script,
    drop: Script,
    clock: Arc<RedisClock>,
}

impl RedisQueues {
    /// The engine over `client` (connected), keys under `prefix`.
    pub fn new(client: Client, prefix: &str, clock: Arc<RedisClock>) -> Self {
        Self {
            client,
            clock,
            prefix: prefix.to_owned(),
            enqueue: Script::from_lua(format!("{LUA_NOW}\n{NEXT_ID}{ENQUEUE}")),
            expire: Script::from_lua(format!("{NEXT_ID}{RELEASE}{EXPIRE}")),
            drop: Script::from_lua(format!("{RELEASE}{DROP}")),
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        device_key(&self.prefix, parts)
    }

    fn queue_key(&self, device: &str) -> String {
        self.key(&["q", device])
    }

    fn notices_key(&self, device: &str) -> String {
        self.key(&["n", device])
    }

    /// `p:d:`, from which the scripts name a signal's byte counters.
    fn base(&self) -> String {
        self.key(&[""])
    }

    /// id first: each as stored, and decoded.
    async fn entries<J: DeserializeOwned, T>(
        &self,
        key: &str,
        (start, stop): (i64, i64),
        convert: impl Fn(J) -> Result<T, String>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let raws: Vec<String> =
            self.client.zrange(key, start, stop, None, false, None, false).await.map_err(unavailable)?;
        raws.into_iter()
            .map(|raw| {
                let value = decode(key, &raw, &convert)?;
                Ok((raw, value))
            })
            .collect()
    }

    /// Up to `n` signals of `queue` with ids above `after`, oldest first (one ZRANGEBYSCORE).
    async fn page(&self, queue: &str, after: u64, n: usize) -> Result<Vec<Queued>, StoreError> {
        let above = ZRange { kind: ZRangeKind::Exclusive, range: ZRangeBound::Index(after as i64) };
        let limit = Some((0, n as i64));
        let raws: Vec<String> =
            self.client.zrangebyscore(queue, above, "+inf", false, limit).await.map_err(unavailable)?;
        raws.iter().map(|raw| decode(queue, raw, SignalJson::into_queued)).collect()
    }

    /// Removes the entries with ids from `(low, high)` from `device`'s
    /// sorted set `list` (its queue or notices), whose index is `index`, and
    /// with `of` only those queued for that user; the entries removed, as
    /// stored, oldest first.
    async fn drop_ids(
        &self,
        (list, index): (String, &str),
        device: &str,
        (low, high): (&str, &str),
        of: Option<&UserId>,
    ) -> Result<Vec<String>, StoreError> {
        let base = if index == "queued" { self.base() } else { String::new() };
        let keys = vec![list, self.key(&[index])];
        let of = of.map(|u| u.to_string()).unwrap_or_default();
        let args = vec![low.to_owned(), high.to_owned(), device.to_owned(), base, of];
        self.drop.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)
    }

    /// Moves the expired signals of `receiver`'s queue to their senders' notices.
    async fn expire_queue(&self, receiver: &str, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, StoreError> {
        let mut expired = Vec::new();
        let queue = self.queue_key(receiver);
        loop {
            let page = self.entries(&queue, (0, EXPIRE_PAGE - 1), SignalJson::into_queued).await?;
            let more = page.len() == EXPIRE_PAGE as usize;
            for (raw, q) in page {
                if !q.is_expired(now, ttl) {
                    return Ok(expired);
                }
                let e = Expired::from(&q);
                let sender = e.sender.as_str();
                let keys = vec![
                    queue.clone(),
                    self.key(&["queued"]),
                    self.notices_key(sender),
                    self.key(&["n", sender, "seq"]),
                    self.key(&["noticed"]),
                ];
                let notice = encode(&NoticeJson::from(&e))?;
                let args =
                    vec![raw, receiver.to_owned(), notice, sender.to_owned(), self.base(), COUNTER_TTL_MS.to_string()];
                let filed: u64 =
                    self.expire.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
                // 0: another instance expired it first, and filed its notice.
                if filed > 0 {
                    expired.push(e);
                }
            }
            // The page is gone (here or elsewhere): the next one starts at rank 0 again.
            if !more {
                return Ok(expired);
            }
        }
    }
}

#[async_trait]
impl Queues for RedisQueues {
    async fn enqueue(&self, signal: Outgoing, now: SystemTime, budget: &QueueBudget) -> Result<Queued, EnqueueFailure> {
        let to = signal.to.as_str();
        let keys = vec![
            self.queue_key(to),
            self.key(&["q", to, "seq"]),
            self.key(&["queued"]),
            self.key(&["q", to, "bytes"]),
            self.key(&["u", signal.sender_user.as_str(), "bytes"]),
            self.key(&["bytes"]),
        ];
        let signal_json = encode(&SignalJson::new(&signal, now))?;
        let deadline = self.clock.deadline().to_string();
        let args = vec![
            budget.signals.to_string(),
            signal_json,
            to.to_owned(),
            deadline,
            signal.data.len().to_string(),
            budget.queue_bytes.to_string(),
            budget.sender_bytes.to_string(),
            budget.total_bytes.to_string(),
            COUNTER_TTL_MS.to_string(),
        ];
        let id: i64 = self.enqueue.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        match id {
            0 => Err(OverBudget::Signals(budget.signals).into()),
            -2 => Err(OverBudget::Queue(budget.queue_bytes).into()),
            -3 => Err(OverBudget::Sender(budget.sender_bytes).into()),
            -4 => Err(OverBudget::Total(budget.total_bytes).into()),
            id if id < 0 => {
                Err(StoreError::Unavailable("Redis ran an enqueue past its deadline: not queued".into()).into())
            }
            id => Ok(Queued { id: id as u64, signal, queued_at: now }),
        }
    }

    async fn pending(
        &self,
        to: &DeviceId,
        owner: &UserId,
        mut after: u64,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let queue = self.queue_key(to.as_str());
        let mut mine = Vec::new();
        // Pages until `limit` of `owner`'s (another owner's are skipped, and rare).
        while mine.len() < limit {
            let page = self.page(&queue, after, limit - mine.len()).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            mine.extend(page.into_iter().filter(|q| &q.signal.owner == owner));
        }
        Ok(mine)
    }

    async fn others_waiting(&self, to: &DeviceId, owner: &UserId) -> Result<bool, StoreError> {
        let queue = self.queue_key(to.as_str());
        let mut after = 0;
        loop {
            let page = self.page(&queue, after, EXPIRE_PAGE as usize).await?;
            if page.iter().any(|q| &q.signal.owner != owner) {
                return Ok(true);
            }
            match page.last() {
                Some(last) if page.len() == EXPIRE_PAGE as usize => after = last.id,
                _ => return Ok(false),
            }
        }
    }

    async fn ack(&self, to: &DeviceId, owner: &UserId, up_to: u64) -> Result<Vec<Queued>, StoreError> {
        let queue = self.queue_key(to.as_str());
        let up_to = up_to.to_string();
        let removed = self.drop_ids((queue.clone(), "queued"), to.as_str(), ("-inf", &up_to), Some(owner)).await?;
        removed.iter().map(|raw| decode(&queue, raw, SignalJson::into_queued)).collect()
    }

    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, StoreError> {
        let id = id.to_string();
        let list = (self.queue_key(to.as_str()), "queued");
        Ok(!self.drop_ids(list, to.as_str(), (&id, &id), None).await?.is_empty())
    }

    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, StoreError> {
        let senders: Vec<String> = self.client.smembers(self.key(&["noticed"])).await.map_err(unavailable)?;
        for sender in senders {
            for (_, n) in self.entries(&self.notices_key(&sender), (0, -1), NoticeJson::into_notice).await? {
                if n.is_past_retention(now, ttl) {
                    let id = n.id.to_string();
                    self.drop_ids((self.notices_key(&sender), "noticed"), &sender, (&id, &id), None).await?;
                }
            }
        }
        let mut expired = Vec::new();
        let receivers: Vec<String> = self.client.smembers(self.key(&["queued"])).await.map_err(unavailable)?;
        for receiver in receivers {
            expired.extend(self.expire_queue(&receiver, now, ttl).await?);
        }
        Ok(expired)
    }

    async fn notices(&self, sender: &DeviceId, owner: &UserId) -> Result<Vec<Notice>, StoreError> {
        let entries = self.entries(&self.notices_key(sender.as_str()), (0, -1), NoticeJson::into_notice).await?;
        Ok(entries.into_iter().map(|(_, n)| n).filter(|n| &n.expired.sender_user == owner).collect())
    }

    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, StoreError> {
        let id = id.to_string();
        let list = (self.notices_key(sender.as_str()), "noticed");
        Ok(!self.drop_ids(list, sender.as_str(), (&id, &id), None).await?.is_empty())
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        let receivers: Vec<String> = self.client.smembers(self.key(&["queued"])).await.map_err(unavailable)?;
        let pipeline = self.client.pipeline();
        for receiver in &receivers {
            let _: () = pipeline.zcard(self.queue_key(receiver)).await.map_err(unavailable)?;
        }
        let lengths: Vec<u64> = pipeline.all().await.map_err(unavailable)?;
        Ok(lengths.iter().sum::<u64>() as usize)
    }

    async fn queued_bytes(&self) -> Result<usize, StoreError> {
        let bytes: Option<u64> = self.client.get(self.key(&["bytes"])).await.map_err(unavailable)?;
        Ok(bytes.unwrap_or(0) as usize)
    }
}
