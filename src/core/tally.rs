//! Group sizes summed over the cluster: each instance publishes how many
//! members it has, on every change and every upkeep round; the others'
//! counts are kept here, and an instance not heard from within the instance
//! TTL no longer counts. A count of 0 is forgotten at once, and
//! [`Tally::prune`] forgets what went silent, so groups that come and go
//! (topics) leave nothing behind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::groups::Group;

/// Each other instance's last count, and when it was heard.
type Heard = HashMap<String, (usize, Instant)>;

/// Per group, each other instance's last count and when it was heard.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<HashMap<Group, Heard>>,
    /// Woken when another instance's count of a group other than a topic
    /// changed (topic counts are read when a message is published; nobody
    /// waits on them).
    pub changed: Notify,
}

impl Tally {
    /// Records `instance`'s count of `group`.
    pub fn set(&self, group: Group, instance: &str, count: usize) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let watched = !matches!(group, Group::Topic(_));
        let old = if count == 0 {
            let Some(by_instance) = counts.get_mut(&group) else { return };
            let old = by_instance.remove(instance);
            if by_instance.is_empty() {
                counts.remove(&group);
            }
            old
        } else {
            counts.entry(group).or_default().insert(instance.to_owned(), (count, Instant::now()))
        };
        if watched && old.map_or(0, |(n, _)| n) != count {
            self.changed.notify_one();
        }
    }

    /// Forgets every count not heard from within `fresh`.
    pub fn prune(&self, fresh: Duration) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.retain(|_, by_instance| {
            by_instance.retain(|_, (_, heard)| heard.elapsed() <= fresh);
            !by_instance.is_empty()
        });
    }

    /// `group`'s members: `here` on this instance, plus the other instances'
    /// heard from within `fresh`.
    pub fn total(&self, group: &Group, here: usize, fresh: Duration) -> usize {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(by_instance) = counts.get_mut(group) else { return here };
        by_instance.retain(|_, (_, heard)| heard.elapsed() <= fresh);
        here + by_instance.values().map(|(n, _)| n).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_instances_and_a_silent_instance_stops_counting() {
        let tally = Tally::default();
        let minute = Duration::from_secs(60);
        tally.set(Group::Directory, "a", 2);
        tally.set(Group::Directory, "b", 3);
        assert_eq!(tally.total(&Group::Directory, 1, minute), 6);
        tally.set(Group::Directory, "b", 1);
        assert_eq!(tally.total(&Group::Directory, 1, minute), 4, "the latest count replaces");
        assert_eq!(tally.total(&Group::Directory, 1, Duration::ZERO), 1, "only this instance's is sure");
        assert_eq!(tally.total(&Group::Channel("x".into()), 0, minute), 0);
    }

    #[test]
    fn a_count_of_zero_and_silent_counts_are_forgotten_and_topic_counts_wake_nobody() {
        let tally = Tally::default();
        let topic = Group::Topic("room".into());
        let woken = || futures_util::FutureExt::now_or_never(tally.changed.notified()).is_some();
        tally.set(topic.clone(), "a", 2);
        assert!(!woken(), "nobody waits on a topic's count");
        tally.set(Group::Directory, "a", 1);
        assert!(woken());
        tally.set(topic.clone(), "a", 0);
        assert_eq!(tally.total(&topic, 0, Duration::from_secs(60)), 0);
        assert_eq!(tally.counts.lock().unwrap().len(), 1, "nothing kept for the topic");
        tally.prune(Duration::ZERO);
        assert!(tally.counts.lock().unwrap().is_empty());
    }
}
