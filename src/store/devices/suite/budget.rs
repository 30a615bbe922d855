//! The suite's byte budget and paging tests (see [`super`]), issue 17, problem 1.

use std::time::Duration;

use super::{id, signal, t, user};
use crate::domain::queue::{OverBudget, QueueBudget, SignalBody};
use crate::domain::signal::{Outgoing, SignalKind};
use crate::store::devices::{Devices, EnqueueFailure};

/// A signal from `from` (user `from`) to `to` whose body weighs exactly `bytes`.
fn weighing(from: &str, to: &str, bytes: usize) -> Outgoing {
    let data = SignalBody::from_value(&serde_json::Value::String("x".repeat(bytes - 2)));
    assert_eq!(data.len(), bytes);
    Outgoing { kind: SignalKind::Offer, from: id(from), sender_user: user(from), to: id(to), owner: user(to), data }
}

fn refused_by(result: Result<crate::domain::signal::Queued, EnqueueFailure>) -> OverBudget {
    match result {
        Err(EnqueueFailure::Full(over)) => over,
        other => panic!("expected a budget refusal, got {other:?}"),
    }
}

pub async fn each_byte_budget_holds_and_frees_up_as_signals_leave(s: Devices) {
    let budget = QueueBudget { signals: 100, queue_bytes: 30, sender_bytes: 50, total_bytes: 70 };
    let q = &s.queues;
    let mut to_b = Vec::new();
    for n in 0..3 {
        to_b.push(q.enqueue(weighing("peer_a", "peer_b", 10), t(n), &budget).await.unwrap().id);
    }
    // The attack: one more into a full queue, then the same sender at another receiver.
    assert_eq!(refused_by(q.enqueue(weighing("peer_a", "peer_b", 10), t(3), &budget).await), OverBudget::Queue(30));
    assert_eq!(refused_by(q.enqueue(weighing("peer_a", "peer_b", 2), t(3), &budget).await), OverBudget::Queue(30));
    for n in 0..2 {
        q.enqueue(weighing("peer_a", "peer_c", 10), t(4 + n), &budget).await.unwrap();
    }
    assert_eq!(refused_by(q.enqueue(weighing("peer_a", "peer_c", 10), t(6), &budget).await), OverBudget::Sender(50));
    q.enqueue(weighing("peer_d", "peer_c", 10), t(7), &budget).await.unwrap();
    q.enqueue(weighing("peer_d", "peer_e", 10), t(8), &budget).await.unwrap();
    assert_eq!(refused_by(q.enqueue(weighing("peer_d", "peer_e", 10), t(9), &budget).await), OverBudget::Total(70));
    assert_eq!((q.queued().await.unwrap(), q.queued_bytes().await.unwrap()), (7, 70), "refusals hold nothing");

    // Every way out gives its bytes back: confirm, remove one, expire.
    assert_eq!(q.ack(&id("peer_b"), &user("peer_b"), to_b[0]).await.unwrap().len(), 1);
    assert!(q.remove(&id("peer_b"), to_b[1]).await.unwrap());
    assert_eq!(q.queued_bytes().await.unwrap(), 50);
    q.enqueue(weighing("peer_a", "peer_b", 10), t(10), &budget).await.unwrap();
    q.enqueue(weighing("peer_x", "peer_f", 10), t(10), &budget).await.unwrap();
    assert_eq!(q.queued_bytes().await.unwrap(), 70);
    assert_eq!(refused_by(q.enqueue(weighing("peer_a", "peer_b", 10), t(11), &budget).await), OverBudget::Total(70));
    assert_eq!(q.expire(t(10) + Duration::from_secs(3600), Duration::from_secs(3600)).await.unwrap().len(), 7);
    assert_eq!((q.queued().await.unwrap(), q.queued_bytes().await.unwrap()), (0, 0));
    for n in 0..3 {
        q.enqueue(weighing("peer_a", "peer_b", 10), t(4000 + n), &budget).await.unwrap();
    }
    assert_eq!(q.queued_bytes().await.unwrap(), 30, "the counters start again from zero");
}

pub async fn a_queue_is_read_in_pages_after_an_id(s: Devices) {
    let q = &s.queues;
    let budget = QueueBudget::default();
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(q.enqueue(signal("peer_a", "peer_b", n), t(n), &budget).await.unwrap().id);
    }
    let page = |after: u64, limit: usize| async move {
        let read = q.pending(&id("peer_b"), &user("peer_b"), after, limit).await.unwrap();
        read.iter().map(|m| m.id).collect::<Vec<_>>()
    };
    assert_eq!(page(0, 2).await, ids[..2]);
    assert_eq!(page(ids[1], 2).await, ids[2..4]);
    assert_eq!(page(ids[3], 10).await, ids[4..]);
    assert!(page(ids[4], 10).await.is_empty());
    assert!(page(0, 0).await.is_empty(), "a zero limit reads nothing");
    assert_eq!(q.queued().await.unwrap(), 5, "reading removes nothing");
}
