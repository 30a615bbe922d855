//! Topics: publish/subscribe by name across the cluster (y-webrtc's
//! signaling rooms). A connection subscribes to topics, each a core
//! [`Group::Topic`], at most `Y_WEBRTC_MAX_TOPICS` at once; a message
//! published to a topic reaches every subscriber on every instance (the
//! publisher too, if it is one), through the courier's group broadcast.
//!
//! How many subscribers a topic has cluster-wide ([`Topics::subscribers`])
//! is an estimate: this instance's own, plus the counts the other instances
//! published on every change and every upkeep round ([`super::upkeep`]). A
//! change elsewhere shows once its count has crossed the bus, and a count
//! from an instance silent for `INSTANCE_TTL_MS` no longer counts.

use std::sync::Arc;

use super::Core;
use super::courier::DeliveryError;
use super::event::Event;
use super::groups::Group;
use crate::domain::ConnId;
use crate::domain::queue::SignalBody;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;

/// Whether `group` is a topic.
fn is_topic(group: &Group) -> bool {
    matches!(group, Group::Topic(_))
}

/// Topics (a view over [`Core`]).
pub struct Topics<'a>(pub(super) &'a Arc<Core>);

impl Topics<'_> {
    /// Subscribes `conn` to each of `topics` it is not subscribed to yet, while
    /// it holds fewer than `Y_WEBRTC_MAX_TOPICS`; how many it could not take.
    pub async fn subscribe(&self, conn: &ConnId, topics: impl IntoIterator<Item = String>) -> usize {
        let (courier, max) = (&self.0.courier, self.0.config.ywebrtc.max_topics);
        let mut held = courier.groups.count_of(conn, is_topic);
        let (mut joined, mut refused) = (Vec::new(), 0);
        for topic in topics {
            let group = Group::Topic(topic);
            if courier.groups.contains(&group, conn) {
                continue;
            }
            if held >= max {
                refused += 1;
                continue;
            }
            courier.groups.join(&group, conn);
            held += 1;
            joined.push(group);
        }
        courier.publish_counts(joined).await;
        refused
    }

    /// Ends `conn`'s subscription to each of `topics` (those it has).
    pub async fn unsubscribe(&self, conn: &ConnId, topics: impl IntoIterator<Item = String>) {
        let groups = &self.0.courier.groups;
        let left: Vec<_> = topics.into_iter().map(Group::Topic).filter(|group| groups.leave(group, conn)).collect();
        self.0.courier.publish_counts(left).await;
    }

    /// Ends every subscription of `conn` (it is closing: it leaves every group).
    pub async fn leave_all(&self, conn: &ConnId) {
        let left = self.0.courier.groups.leave_all(conn).into_iter().filter(is_topic);
        self.0.courier.publish_counts(left).await;
    }

    /// How many subscribers `topic` has, cluster-wide (an estimate: see the module's header).
    pub fn subscribers(&self, topic: &str) -> usize {
        let courier = &self.0.courier;
        let group = Group::Topic(topic.to_owned());
        courier.tally.total(&group, courier.groups.len(&group), self.0.config.instance_ttl)
    }

    /// Hands `message` to every subscriber of `topic`, on every instance.
    pub async fn publish(&self, topic: &str, message: SignalBody) -> Result<(), DeliveryError> {
        let event = Event::TopicMessage { message };
        self.0.courier.broadcast(&Group::Topic(topic.to_owned()), &event, None).await
    }

    /// An upkeep round: this instance's count of each of its topics goes to
    /// the others again (so theirs stay fresh), and counts gone silent are forgotten.
    pub async fn refresh_counts(&self) {
        let courier = &self.0.courier;
        courier.publish_counts(courier.groups.all(is_topic)).await;
        courier.tally.prune(self.0.config.instance_ttl);
    }
}
