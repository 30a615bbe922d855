//! The suite's queue, notice and endpoint tests (see [`super`]).

use std::time::Duration;

use super::{at, id, max, signal, t, user};
use crate::domain::queue::OverBudget;
use crate::domain::signal::SignalKind;
use crate::store::devices::{Devices, EnqueueFailure, Wake};

pub async fn a_queue_is_read_in_order_and_cleared_only_up_to_what_was_confirmed(s: Devices) {
    for n in 1..=3 {
        s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(10)).await.unwrap();
    }
    s.queues.enqueue(signal("peer_a", "peer_c", 9), t(0), &max(10)).await.unwrap();
    let pending = s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap();
    // Ids increase by one per signal; where they start is the engine's own.
    let first = pending[0].id;
    assert_eq!(pending.iter().map(|q| q.id).collect::<Vec<_>>(), vec![first, first + 1, first + 2]);
    assert_eq!(pending[0].signal, signal("peer_a", "peer_b", 1));
    assert_eq!(pending[0].queued_at, t(1));
    assert_eq!(
        s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().len(),
        3,
        "reading removes nothing"
    );
    let taken = s.queues.ack(&id("peer_b"), &user("peer_b"), first + 1).await.unwrap();
    assert_eq!(taken.iter().map(|q| q.id).collect::<Vec<_>>(), vec![first, first + 1], "the removed signals come back");
    assert_eq!(
        s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap()[0].signal.data.json(),
        r#"{"n":3}"#
    );
    assert!(
        s.queues.ack(&id("peer_b"), &user("peer_b"), first + 1).await.unwrap().is_empty(),
        "acking again removes nothing"
    );
    let fourth = s.queues.enqueue(signal("peer_a", "peer_b", 4), t(5), &max(10)).await.unwrap().id;
    assert_eq!(fourth, first + 3, "ids keep increasing");
    assert_eq!(s.queues.queued().await.unwrap(), 3);
    assert_eq!(s.queues.ack(&id("peer_b"), &user("peer_b"), first + 10).await.unwrap().len(), 2);
    assert!(s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().is_empty());
    let fifth = s.queues.enqueue(signal("peer_a", "peer_b", 5), t(6), &max(10)).await.unwrap().id;
    assert_eq!(fifth, first + 4, "even once emptied");
}

pub async fn a_full_queue_refuses_a_signal_and_queues_nothing(s: Devices) {
    for n in 1..=2 {
        s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(2)).await.unwrap();
    }
    let refused = s.queues.enqueue(signal("peer_a", "peer_b", 3), t(3), &max(2)).await;
    assert!(matches!(refused, Err(EnqueueFailure::Full(OverBudget::Signals(2)))), "{refused:?}");
    let pending = s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap();
    assert_eq!(
        pending.iter().map(|q| q.signal.data.json().to_owned()).collect::<Vec<_>>(),
        [r#"{"n":1}"#, r#"{"n":2}"#]
    );
    assert_eq!(s.queues.queued().await.unwrap(), 2);
    s.queues.ack(&id("peer_b"), &user("peer_b"), pending[0].id).await.unwrap();
    let next = s.queues.enqueue(signal("peer_a", "peer_b", 3), t(4), &max(2)).await.unwrap();
    assert_eq!(next.id, pending[1].id + 1, "the refused signal took no id");
}

pub async fn concurrent_enqueues_get_distinct_increasing_ids(s: Devices) {
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move { s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(100)).await })
        })
        .collect();
    let mut given = Vec::new();
    for task in tasks {
        given.push(task.await.unwrap().unwrap().id);
    }
    given.sort();
    assert_eq!(given, (given[0]..given[0] + 20).collect::<Vec<_>>());
    let pending: Vec<u64> =
        s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().iter().map(|q| q.id).collect();
    assert_eq!(pending, given, "oldest first");
}

pub async fn removing_one_signal_leaves_the_others(s: Devices) {
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(10)).await.unwrap().id);
    }
    assert!(s.queues.remove(&id("peer_b"), ids[1]).await.unwrap());
    assert!(!s.queues.remove(&id("peer_b"), ids[1]).await.unwrap(), "already gone");
    assert!(!s.queues.remove(&id("peer_c"), ids[0]).await.unwrap(), "no such queue");
    let pending: Vec<u64> =
        s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().iter().map(|q| q.id).collect();
    assert_eq!(pending, vec![ids[0], ids[2]]);
    assert_eq!(s.queues.queued().await.unwrap(), 2);
}

pub async fn expired_signals_leave_the_queue_and_name_their_senders(s: Devices) {
    s.queues.enqueue(signal("peer_a", "peer_b", 1), t(0), &max(10)).await.unwrap();
    s.queues.enqueue(signal("peer_c", "peer_b", 2), t(100), &max(10)).await.unwrap();
    let ttl = Duration::from_secs(3600);
    assert!(s.queues.expire(t(3599), ttl).await.unwrap().is_empty());
    let expired = s.queues.expire(t(3600), ttl).await.unwrap();
    assert_eq!(expired.iter().map(|e| e.sender.clone()).collect::<Vec<_>>(), vec![id("peer_a")]);
    assert_eq!(
        (expired[0].to.clone(), expired[0].kind, expired[0].queued_at),
        (id("peer_b"), SignalKind::IceCandidate, t(0))
    );
    assert_eq!(s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().len(), 1);
    assert!(s.queues.expire(t(3600), ttl).await.unwrap().is_empty(), "expired once");
}

pub async fn expiry_notices_are_numbered_per_sender_removed_one_by_one_and_dropped_after_retention(s: Devices) {
    let ttl = Duration::from_secs(3600);
    s.queues.enqueue(signal("peer_a", "peer_b", 1), t(0), &max(10)).await.unwrap();
    s.queues.enqueue(signal("peer_c", "peer_b", 2), t(5), &max(10)).await.unwrap();
    s.queues.enqueue(signal("peer_a", "peer_b", 3), t(10), &max(10)).await.unwrap();
    assert_eq!(s.queues.expire(t(3610), ttl).await.unwrap().len(), 3);
    let of_a = s.queues.notices(&id("peer_a"), &user("peer_a")).await.unwrap();
    // Numbered per sender, one apart; where they start is the engine's own.
    let a0 = of_a[0].id;
    let seen: Vec<_> = of_a.iter().map(|n| (n.id, n.expired.to.clone(), n.expired.queued_at)).collect();
    assert_eq!(seen, vec![(a0, id("peer_b"), t(0)), (a0 + 1, id("peer_b"), t(10))]);
    assert_eq!(s.queues.notices(&id("peer_c"), &user("peer_c")).await.unwrap().len(), 1);
    assert!(s.queues.notices(&id("peer_b"), &user("peer_b")).await.unwrap().is_empty(), "the receiver is told nothing");

    assert!(s.queues.remove_notice(&id("peer_a"), a0).await.unwrap());
    assert!(!s.queues.remove_notice(&id("peer_a"), a0).await.unwrap(), "already gone");
    assert!(!s.queues.remove_notice(&id("peer_z"), a0).await.unwrap(), "no notices at all");
    assert_eq!(
        s.queues.notices(&id("peer_a"), &user("peer_a")).await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![a0 + 1]
    );

    // A notice waits NOTICE_RETENTION (an hour) after its signal expired.
    s.queues.expire(t(7209), ttl).await.unwrap();
    assert!(
        s.queues.notices(&id("peer_c"), &user("peer_c")).await.unwrap().is_empty(),
        "peer_c's signal expired at 3605"
    );
    assert_eq!(s.queues.notices(&id("peer_a"), &user("peer_a")).await.unwrap().len(), 1, "peer_a's expired at 3610");
    s.queues.expire(t(7210), ttl).await.unwrap();
    assert!(s.queues.notices(&id("peer_a"), &user("peer_a")).await.unwrap().is_empty());

    s.queues.enqueue(signal("peer_a", "peer_d", 4), t(7210), &max(10)).await.unwrap();
    s.queues.expire(t(10_810), ttl).await.unwrap();
    assert_eq!(
        s.queues.notices(&id("peer_a"), &user("peer_a")).await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![a0 + 2]
    );
}

pub async fn register_returns_the_replaced_endpoint_and_unregister_forgets_only_the_current_one(s: Devices) {
    let (a, b) = (id("peer_a"), id("peer_b"));
    assert_eq!(s.endpoints.endpoint(&a).await.unwrap(), None);
    assert_eq!(s.endpoints.register(&a, at("c1")).await.unwrap(), None);
    assert_eq!(s.endpoints.register(&b, at("c9")).await.unwrap(), None);
    assert_eq!(s.endpoints.endpoint(&a).await.unwrap(), Some(at("c1")));
    assert_eq!(s.endpoints.register(&a, at("c2")).await.unwrap(), Some(at("c1")));
    assert!(!s.endpoints.unregister(&a, &at("c1")).await.unwrap(), "the replaced connection closing forgets nothing");
    assert_eq!(s.endpoints.endpoint(&a).await.unwrap(), Some(at("c2")));
    assert!(s.endpoints.unregister(&a, &at("c2")).await.unwrap());
    assert!(!s.endpoints.unregister(&a, &at("c2")).await.unwrap(), "once");
    assert_eq!(s.endpoints.endpoint(&a).await.unwrap(), None);
    assert_eq!(s.endpoints.endpoint(&b).await.unwrap(), Some(at("c9")), "another device's stays");

    // Putting back (after a data loss) fills a gap and never replaces an endpoint.
    assert!(!s.endpoints.restore(&b, at("c-stale")).await.unwrap());
    assert!(s.endpoints.restore(&a, at("c3")).await.unwrap());
    assert_eq!(s.endpoints.endpoint(&a).await.unwrap(), Some(at("c3")));
    assert_eq!(s.endpoints.endpoint(&b).await.unwrap(), Some(at("c9")));
}

pub async fn a_wake_reaches_every_wakes_receiver(s: Devices) {
    let (mut first, mut second) = (s.endpoints.wakes(), s.endpoints.wakes());
    s.endpoints.wake(&id("peer_a")).await.unwrap();
    s.endpoints.wake(&id("peer_b")).await.unwrap();
    for rx in [&mut first, &mut second] {
        for expected in ["peer_a", "peer_b"] {
            let woken = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("woken in time");
            assert_eq!(woken.unwrap(), Wake::Device(id(expected)));
        }
    }
}
