//! Group sizes summed over the cluster: each instance publishes how many
//! members it has, on every change and every upkeep round; the others'
//! counts are kept here, and an instance not heard from within the instance
//! TTL no longer counts.

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
    /// Woken when another instance's count changed.
    pub changed: Notify,
}

impl Tally {
    /// Records `instance`'s count of `group`.
    pub fn set(&self, group: Group, instance: &str, count: usize) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let old = counts.entry(group).or_default().insert(instance.to_owned(), (count, Instant::now()));
        if old.map(|(n, _)| n) != Some(count) {
            self.changed.notify_one();
        }
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
}
