//! The suite's ownership tests (see [`super`]), issue 17, problem 3: queues
//! and notices belong to (owner, device).

use std::time::Duration;

use super::{id, max, signal, t, user};
use crate::store::devices::Devices;

pub async fn signals_and_notices_are_read_only_by_the_owner_they_were_queued_for(s: Devices) {
    let q = &s.queues;
    for n in 1..=2 {
        q.enqueue(signal("peer_a", "peer_b", n), t(n), &max(10)).await.unwrap();
    }
    // peer_b's id changed hands (mallory's record): a signal queued since is hers.
    let mut to_mallory = signal("peer_a", "peer_b", 3);
    to_mallory.owner = user("mallory");
    q.enqueue(to_mallory.clone(), t(3), &max(10)).await.unwrap();

    let read = |owner: &'static str| async move {
        let page = q.pending(&id("peer_b"), &user(owner), 0, 100).await.unwrap();
        page.into_iter().map(|m| m.signal).collect::<Vec<_>>()
    };
    assert_eq!(read("mallory").await, vec![to_mallory.clone()], "the old owner's signals are not hers");
    assert_eq!(read("peer_b").await, vec![signal("peer_a", "peer_b", 1), signal("peer_a", "peer_b", 2)]);
    assert_eq!(q.pending(&id("peer_b"), &user("peer_b"), 0, 1).await.unwrap().len(), 1, "a page of mine only");
    assert!(q.others_waiting(&id("peer_b"), &user("mallory")).await.unwrap(), "peer_b's wait");
    assert!(q.others_waiting(&id("peer_b"), &user("peer_b")).await.unwrap(), "mallory's waits");
    assert!(!q.others_waiting(&id("peer_c"), &user("mallory")).await.unwrap(), "an empty queue");
    let taken = q.ack(&id("peer_b"), &user("mallory"), u64::MAX).await.unwrap();
    assert_eq!(taken.len(), 1, "confirming takes only her own");
    assert_eq!(read("peer_b").await.len(), 2);

    let ttl = Duration::from_secs(3600);
    assert_eq!(q.expire(t(3) + ttl, ttl).await.unwrap().len(), 2);
    assert_eq!(q.notices(&id("peer_a"), &user("peer_a")).await.unwrap().len(), 2);
    assert!(q.notices(&id("peer_a"), &user("mallory")).await.unwrap().is_empty(), "nor the notices");
}
