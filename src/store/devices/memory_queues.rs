//! The queues and expiry notices of the memory engine ([`MemoryQueues`]):
//! one lock over every list, each read a bounded page whose clones share
//! their bodies, and the bytes held per queue, per sending user and in all
//! kept beside the lists, so each budget is checked in constant time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::memory::lock;
use super::{EnqueueFailure, Queues};
use crate::domain::UserId;
use crate::domain::presence::DeviceId;
use crate::domain::queue::{Held, QueueBudget};
use crate::domain::signal::{Expired, Notice, Outgoing, Queued};
use crate::store::StoreError;

/// Queues and notices, each list numbered per owner, with the bytes each
/// queue, each sending user and all of them hold.
#[derive(Default)]
pub struct MemoryQueues(Mutex<Lists>);

#[derive(Default)]
struct Lists {
    queues: HashMap<DeviceId, Queue>,
    next_id: HashMap<DeviceId, u64>,
    notices: HashMap<DeviceId, VecDeque<Notice>>,
    next_notice: HashMap<DeviceId, u64>,
    sender_bytes: HashMap<UserId, usize>,
    total_bytes: usize,
}

/// One device's queue and the bytes its bodies hold (gone with it).
#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    bytes: usize,
}

impl Queue {
    /// Takes `q`, which left the queue, off its bytes.
    fn left(&mut self, q: &Queued) {
        self.bytes = self.bytes.saturating_sub(q.signal.data.len());
    }
}

/// Takes `bytes` off `key`'s count, dropping it at zero.
fn take_off<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K, bytes: usize) {
    if let Some(held) = counts.get_mut(key) {
        *held = held.saturating_sub(bytes);
        if *held == 0 {
            counts.remove(key);
        }
    }
}

impl Lists {
    /// Counts a signal that left its queue off its sender's and the total
    /// budget (its queue's count is the queue's own).
    fn release(&mut self, q: &Queued) {
        let bytes = q.signal.data.len();
        take_off(&mut self.sender_bytes, &q.signal.sender_user, bytes);
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
    }

    /// Removes the signals of `to`'s queue with an id up to `up_to` that
    /// match `is`, oldest first, in place: ids increase along the queue, and
    /// a device confirms from its front, so only that prefix is looked at.
    fn remove_signals(&mut self, to: &DeviceId, up_to: u64, is: impl Fn(&Queued) -> bool) -> Vec<Queued> {
        let Some(queue) = self.queues.get_mut(to) else { return Vec::new() };
        let (mut i, mut end) = (0, queue.items.partition_point(|q| q.id <= up_to));
        let mut removed = Vec::new();
        while i < end {
            if is(&queue.items[i]) {
                removed.extend(queue.items.remove(i));
                end -= 1;
            } else {
                i += 1;
            }
        }
        removed.iter().for_each(|q| queue.left(q));
        if queue.items.is_empty() {
            self.queues.remove(to);
        }
        removed.iter().for_each(|q| self.release(q));
        removed
    }
}

/// Removes the entry of `owner`'s list matching `is`, dropping the list once
/// empty; whether there was one.
fn remove_entry<T>(lists: &mut HashMap<DeviceId, VecDeque<T>>, owner: &DeviceId, is: impl Fn(&T) -> bool) -> bool {
    let Some(list) = lists.get_mut(owner) else { return false };
    let before = list.len();
    list.retain(|entry| !is(entry));
    let removed = before != list.len();
    if list.is_empty() {
        lists.remove(owner);
    }
    removed
}

#[async_trait]
impl Queues for MemoryQueues {
    async fn enqueue(&self, signal: Outgoing, now: SystemTime, budget: &QueueBudget) -> Result<Queued, EnqueueFailure> {
        let mut lists = lock(&self.0);
        let held = Held {
            signals: lists.queues.get(&signal.to).map_or(0, |q| q.items.len()),
            queue_bytes: lists.queues.get(&signal.to).map_or(0, |q| q.bytes),
            sender_bytes: lists.sender_bytes.get(&signal.sender_user).copied().unwrap_or(0),
            total_bytes: lists.total_bytes,
        };
        let bytes = signal.data.len();
        budget.admits(held, bytes)?;
        *lists.sender_bytes.entry(signal.sender_user.clone()).or_default() += bytes;
        lists.total_bytes += bytes;
        let next = lists.next_id.entry(signal.to.clone()).or_insert(0);
        *next += 1;
        let queued = Queued { id: *next, signal, queued_at: now };
        let queue = lists.queues.entry(queued.signal.to.clone()).or_default();
        queue.bytes += bytes;
        queue.items.push_back(queued.clone());
        Ok(queued)
    }

    async fn pending(
        &self,
        to: &DeviceId,
        owner: &UserId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let lists = lock(&self.0);
        let Some(queue) = lists.queues.get(to) else { return Ok(Vec::new()) };
        // Ids increase along the queue; each clone shares its body.
        let from = queue.items.partition_point(|q| q.id <= after);
        Ok(queue.items.range(from..).filter(|q| &q.signal.owner == owner).take(limit).cloned().collect())
    }

    async fn others_waiting(&self, to: &DeviceId, owner: &UserId) -> Result<bool, StoreError> {
        Ok(lock(&self.0).queues.get(to).is_some_and(|q| q.items.iter().any(|q| &q.signal.owner != owner)))
    }

    async fn ack(&self, to: &DeviceId, owner: &UserId, up_to: u64) -> Result<Vec<Queued>, StoreError> {
        Ok(lock(&self.0).remove_signals(to, up_to, |q| &q.signal.owner == owner))
    }

    async fn remove(&self, to: &DeviceId, id: u64) -> Result<bool, StoreError> {
        Ok(!lock(&self.0).remove_signals(to, id, |q| q.id == id).is_empty())
    }

    async fn expire(&self, now: SystemTime, ttl: Duration) -> Result<Vec<Expired>, StoreError> {
        let mut lists = lock(&self.0);
        let lists = &mut *lists;
        let mut gone = Vec::new();
        for queue in lists.queues.values_mut() {
            while let Some(q) = queue.items.pop_front_if(|q| q.is_expired(now, ttl)) {
                queue.left(&q);
                gone.push(q);
            }
        }
        lists.queues.retain(|_, q| !q.items.is_empty());
        gone.iter().for_each(|q| lists.release(q));
        let expired: Vec<Expired> = gone.iter().map(Expired::from).collect();
        for notices in lists.notices.values_mut() {
            notices.retain(|n| !n.is_past_retention(now, ttl));
        }
        for e in &expired {
            let next = lists.next_notice.entry(e.sender.clone()).or_insert(0);
            *next += 1;
            let notice = Notice { id: *next, expired: e.clone() };
            lists.notices.entry(e.sender.clone()).or_default().push_back(notice);
        }
        lists.notices.retain(|_, n| !n.is_empty());
        Ok(expired)
    }

    async fn notices(&self, sender: &DeviceId, owner: &UserId) -> Result<Vec<Notice>, StoreError> {
        let lists = lock(&self.0);
        let mine = lists.notices.get(sender).into_iter().flatten().filter(|n| &n.expired.sender_user == owner);
        Ok(mine.cloned().collect())
    }

    async fn remove_notice(&self, sender: &DeviceId, id: u64) -> Result<bool, StoreError> {
        Ok(remove_entry(&mut lock(&self.0).notices, sender, |n| n.id == id))
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        Ok(lock(&self.0).queues.values().map(|q| q.items.len()).sum())
    }

    async fn queued_bytes(&self) -> Result<usize, StoreError> {
        Ok(lock(&self.0).total_bytes)
    }
}
