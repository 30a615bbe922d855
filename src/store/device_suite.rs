//! The one test suite every [`DeviceStore`] engine must pass.
//!
//! Each engine's module invokes [`device_store_suite!`](crate::device_store_suite)
//! with a future that builds a fresh, empty store (and a guard); every
//! function below becomes a `#[tokio::test]` for that engine, so memory and
//! Redis honour the same rules. The suite's endpoints are on [`INSTANCE`],
//! which the store must take as alive: build it as that instance.

// Each function is named as the sentence it checks; that name is its documentation.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::devices::{DeviceStore, DeviceStoreError, Endpoint, PeerLookup, Wake};
use crate::domain::presence::{AnnounceError, Announcement, Capability, DeviceId, NetworkId, SignalAddress};
use crate::domain::signal::{Outgoing, SignalKind};
use crate::domain::{ConnId, UserId};

/// Declares the suite's tests for one engine:
/// `device_store_suite!(async { (MyDevices::new(), guard) })`, where the guard
/// keeps whatever the store needs alive for the test.
#[macro_export]
macro_rules! device_store_suite {
    ($make:expr) => {
        $crate::device_store_suite!(@tests $make;
            peers_are_the_online_devices_of_one_network_only,
            a_device_that_moves_leaves_its_old_network,
            concurrent_announcements_leave_a_device_in_one_network,
            the_sweep_marks_silent_devices_offline_and_forgets_them_after_retention,
            a_user_offline_gets_the_last_coordinators_instead,
            promotion_keeps_two_coordinators_per_network_and_no_more,
            concurrent_promotions_promote_exactly_the_missing_number,
            an_expired_record_can_be_taken_by_another_user,
            a_queue_is_read_in_order_and_cleared_only_up_to_what_was_confirmed,
            a_full_queue_refuses_a_signal_and_queues_nothing,
            concurrent_enqueues_get_distinct_increasing_ids,
            removing_one_signal_leaves_the_others,
            expired_signals_leave_the_queue_and_name_their_senders,
            expiry_notices_are_numbered_per_sender_removed_one_by_one_and_dropped_after_retention,
            register_returns_the_replaced_endpoint_and_unregister_forgets_only_the_current_one,
            a_wake_reaches_every_wakes_receiver,
            announcements_come_in_a_burst_of_max_then_one_per_interval_per_user_and_device,
            concurrent_announcements_never_exceed_the_burst);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                // The guard (a private redis-server, say) lives until the test ends.
                let (store, _guard) = $make.await;
                $crate::store::device_suite::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

/// The instance the suite's endpoints are on.
pub const INSTANCE: &str = "local";

/// The presence TTL of the tests.
pub const TTL: Duration = Duration::from_secs(600);

/// `secs` after a fixed instant (whole seconds: every engine keeps them exactly).
pub fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

pub fn announcement(network: &str, device: &str, user: &str, caps: &[Capability]) -> Announcement {
    Announcement {
        network: NetworkId::parse(network).unwrap(),
        device: DeviceId::parse(device).unwrap(),
        user: UserId::parse(user).unwrap(),
        signal_address: SignalAddress::parse("wss://signal.example/x").unwrap(),
        capabilities: caps.to_vec(),
    }
}

pub fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

pub fn net(s: &str) -> NetworkId {
    NetworkId::parse(s).unwrap()
}

pub fn signal(from: &str, to: &str, n: u64) -> Outgoing {
    Outgoing { kind: SignalKind::IceCandidate, from: id(from), to: id(to), data: serde_json::json!({ "n": n }) }
}

/// Connection `conn` on [`INSTANCE`].
pub fn at(conn: &str) -> Endpoint {
    Endpoint { instance: INSTANCE.into(), conn: ConnId::new(conn) }
}

fn ids(devices: Vec<crate::domain::presence::Device>) -> Vec<DeviceId> {
    devices.into_iter().map(|d| d.id).collect()
}

pub async fn peers_are_the_online_devices_of_one_network_only(s: Arc<dyn DeviceStore>) {
    s.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.announce(announcement("home", "peer_b", "bob", &[]), t(10)).await.unwrap();
    s.announce(announcement("work", "peer_c", "carol", &[]), t(0)).await.unwrap();
    assert_eq!(ids(s.peers(&net("home"), t(20), TTL).await.unwrap()), vec![id("peer_a"), id("peer_b")]);
    let later = ids(s.peers(&net("home"), t(605), TTL).await.unwrap());
    assert_eq!(later, vec![id("peer_b")], "peer_a is stale even before a sweep");
}

pub async fn a_device_that_moves_leaves_its_old_network(s: Arc<dyn DeviceStore>) {
    s.announce(announcement("home", "peer_a", "alice", &[Capability::Coordinator]), t(0)).await.unwrap();
    s.announce(announcement("work", "peer_b", "bob", &[]), t(5)).await.unwrap();
    s.announce(announcement("work", "peer_a", "alice", &[]), t(10)).await.unwrap();
    assert!(s.peers(&net("home"), t(20), TTL).await.unwrap().is_empty());
    assert_eq!(ids(s.peers(&net("work"), t(20), TTL).await.unwrap()), vec![id("peer_a"), id("peer_b")]);
    let home = s.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(20), TTL).await.unwrap();
    assert_eq!(home, PeerLookup::Offline { last_seen: None, last_coordinators: vec![] }, "nothing left in home");
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.active_devices, stats.coordinators), (2, vec![(net("work"), 0)]));
}

pub async fn concurrent_announcements_leave_a_device_in_one_network(s: Arc<dyn DeviceStore>) {
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let s = s.clone();
            let network = if i % 2 == 0 { "home" } else { "work" };
            tokio::spawn(async move { s.announce(announcement(network, "peer_a", "alice", &[]), t(i)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let record = s.device(&id("peer_a")).await.unwrap().unwrap();
    let (home, work) =
        (s.peers(&net("home"), t(30), TTL).await.unwrap(), s.peers(&net("work"), t(30), TTL).await.unwrap());
    assert_eq!(home.len() + work.len(), 1, "in exactly one network");
    assert_eq!([home, work].concat(), vec![record]);
}

pub async fn the_sweep_marks_silent_devices_offline_and_forgets_them_after_retention(s: Arc<dyn DeviceStore>) {
    s.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.announce(announcement("home", "peer_b", "bob", &[]), t(300)).await.unwrap();
    let sweep = s.sweep(t(600), TTL).await.unwrap();
    assert_eq!((sweep.went_offline, sweep.deleted), (vec![id("peer_a")], 0));
    assert!(!s.device(&id("peer_a")).await.unwrap().unwrap().online);
    assert_eq!(s.sweep(t(3600), TTL).await.unwrap().deleted, 1);
    assert!(s.device(&id("peer_a")).await.unwrap().is_none());
    assert_eq!(s.stats().await.unwrap().active_devices, 0, "peer_b went offline in the second sweep");
}

pub async fn a_user_offline_gets_the_last_coordinators_instead(s: Arc<dyn DeviceStore>) {
    s.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.announce(announcement("home", "peer_k", "kim", &[Capability::Coordinator]), t(100)).await.unwrap();
    s.announce(announcement("work", "peer_w", "walt", &[Capability::Coordinator]), t(100)).await.unwrap();
    match s.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(10), TTL).await.unwrap() {
        PeerLookup::Online(d) => assert_eq!(d.id, id("peer_a")),
        other => panic!("{other:?}"),
    }
    let offline = s.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(700), TTL).await.unwrap();
    assert_eq!(offline, PeerLookup::Offline { last_seen: Some(t(0)), last_coordinators: vec![id("peer_k")] });
    let unknown = s.find_user(&net("home"), &UserId::parse("zed").unwrap(), t(700), TTL).await.unwrap();
    assert_eq!(unknown, PeerLookup::Offline { last_seen: None, last_coordinators: vec![id("peer_k")] });
}

pub async fn promotion_keeps_two_coordinators_per_network_and_no_more(s: Arc<dyn DeviceStore>) {
    for (i, dev) in ["peer_a", "peer_b", "peer_c"].iter().enumerate() {
        s.announce(announcement("home", dev, dev, &[Capability::Store]), t(i as u64)).await.unwrap();
    }
    s.announce(announcement("work", "peer_w", "walt", &[Capability::Relay]), t(0)).await.unwrap();
    assert_eq!(ids(s.promote(2).await.unwrap()), vec![id("peer_a"), id("peer_w"), id("peer_b")]);
    assert!(s.promote(2).await.unwrap().is_empty(), "nothing missing any more");
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.coordinators, vec![(net("home"), 2), (net("work"), 1)]);
    assert_eq!((stats.active_devices, stats.active_networks), (4, 2));
}

pub async fn concurrent_promotions_promote_exactly_the_missing_number(s: Arc<dyn DeviceStore>) {
    for (i, dev) in ["peer_a", "peer_b", "peer_c", "peer_d", "peer_e"].iter().enumerate() {
        s.announce(announcement("home", dev, dev, &[Capability::Relay]), t(i as u64)).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.promote(2).await })
        })
        .collect();
    let mut promoted = Vec::new();
    for task in tasks {
        promoted.extend(ids(task.await.unwrap().unwrap()));
    }
    promoted.sort();
    assert_eq!(promoted, vec![id("peer_a"), id("peer_b")], "each promoted once, by one of the runs");
    assert_eq!(s.stats().await.unwrap().coordinators, vec![(net("home"), 2)]);
}

pub async fn an_expired_record_can_be_taken_by_another_user(s: Arc<dyn DeviceStore>) {
    s.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    let taken = s.announce(announcement("home", "peer_a", "mallory", &[]), t(10)).await;
    assert!(matches!(taken, Err(DeviceStoreError::Rule(AnnounceError::OwnedByAnotherUser))));
    assert_eq!(s.device(&id("peer_a")).await.unwrap().unwrap().user.as_str(), "alice", "a refusal writes nothing");
    let later = s.announce(announcement("home", "peer_a", "mallory", &[]), t(3600)).await.unwrap();
    assert_eq!((later.user.as_str(), later.created_at), ("mallory", t(3600)));
}

pub async fn a_queue_is_read_in_order_and_cleared_only_up_to_what_was_confirmed(s: Arc<dyn DeviceStore>) {
    for n in 1..=3 {
        s.enqueue(signal("peer_a", "peer_b", n), t(n), 10).await.unwrap();
    }
    s.enqueue(signal("peer_a", "peer_c", 9), t(0), 10).await.unwrap();
    let pending = s.pending(&id("peer_b")).await.unwrap();
    assert_eq!(pending.iter().map(|q| q.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(pending[0].signal, signal("peer_a", "peer_b", 1));
    assert_eq!(pending[0].queued_at, t(1));
    assert_eq!(s.pending(&id("peer_b")).await.unwrap().len(), 3, "reading removes nothing");
    let taken = s.ack(&id("peer_b"), 2).await.unwrap();
    assert_eq!(taken.iter().map(|q| q.id).collect::<Vec<_>>(), vec![1, 2], "the removed signals come back");
    assert_eq!(s.pending(&id("peer_b")).await.unwrap()[0].signal.data, serde_json::json!({"n": 3}));
    assert!(s.ack(&id("peer_b"), 2).await.unwrap().is_empty(), "acking again removes nothing");
    assert_eq!(s.enqueue(signal("peer_a", "peer_b", 4), t(5), 10).await.unwrap().id, 4, "ids keep increasing");
    assert_eq!(s.stats().await.unwrap().queued_signals, 3);
    assert_eq!(s.ack(&id("peer_b"), 10).await.unwrap().len(), 2);
    assert!(s.pending(&id("peer_b")).await.unwrap().is_empty());
    assert_eq!(s.enqueue(signal("peer_a", "peer_b", 5), t(6), 10).await.unwrap().id, 5, "even once emptied");
}

pub async fn a_full_queue_refuses_a_signal_and_queues_nothing(s: Arc<dyn DeviceStore>) {
    for n in 1..=2 {
        s.enqueue(signal("peer_a", "peer_b", n), t(n), 2).await.unwrap();
    }
    let refused = s.enqueue(signal("peer_a", "peer_b", 3), t(3), 2).await;
    assert!(matches!(refused, Err(DeviceStoreError::QueueFull(2))), "{refused:?}");
    let pending = s.pending(&id("peer_b")).await.unwrap();
    assert_eq!(pending.iter().map(|q| q.signal.data["n"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.stats().await.unwrap().queued_signals, 2);
    s.ack(&id("peer_b"), 1).await.unwrap();
    let next = s.enqueue(signal("peer_a", "peer_b", 3), t(4), 2).await.unwrap();
    assert_eq!(next.id, 3, "the refused signal took no id");
}

pub async fn concurrent_enqueues_get_distinct_increasing_ids(s: Arc<dyn DeviceStore>) {
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move { s.enqueue(signal("peer_a", "peer_b", n), t(n), 100).await })
        })
        .collect();
    let mut given = Vec::new();
    for task in tasks {
        given.push(task.await.unwrap().unwrap().id);
    }
    given.sort();
    assert_eq!(given, (1..=20).collect::<Vec<_>>());
    let pending: Vec<u64> = s.pending(&id("peer_b")).await.unwrap().iter().map(|q| q.id).collect();
    assert_eq!(pending, given, "oldest first");
}

pub async fn removing_one_signal_leaves_the_others(s: Arc<dyn DeviceStore>) {
    for n in 1..=3 {
        s.enqueue(signal("peer_a", "peer_b", n), t(n), 10).await.unwrap();
    }
    assert!(s.remove(&id("peer_b"), 2).await.unwrap());
    assert!(!s.remove(&id("peer_b"), 2).await.unwrap(), "already gone");
    assert!(!s.remove(&id("peer_c"), 1).await.unwrap(), "no such queue");
    let pending: Vec<u64> = s.pending(&id("peer_b")).await.unwrap().iter().map(|q| q.id).collect();
    assert_eq!(pending, vec![1, 3]);
    assert_eq!(s.stats().await.unwrap().queued_signals, 2);
}

pub async fn expired_signals_leave_the_queue_and_name_their_senders(s: Arc<dyn DeviceStore>) {
    s.enqueue(signal("peer_a", "peer_b", 1), t(0), 10).await.unwrap();
    s.enqueue(signal("peer_c", "peer_b", 2), t(100), 10).await.unwrap();
    let ttl = Duration::from_secs(3600);
    assert!(s.expire(t(3599), ttl).await.unwrap().is_empty());
    let expired = s.expire(t(3600), ttl).await.unwrap();
    assert_eq!(expired.iter().map(|e| e.sender.clone()).collect::<Vec<_>>(), vec![id("peer_a")]);
    assert_eq!(
        (expired[0].to.clone(), expired[0].kind, expired[0].queued_at),
        (id("peer_b"), SignalKind::IceCandidate, t(0))
    );
    assert_eq!(s.pending(&id("peer_b")).await.unwrap().len(), 1);
    assert!(s.expire(t(3600), ttl).await.unwrap().is_empty(), "expired once");
}

pub async fn expiry_notices_are_numbered_per_sender_removed_one_by_one_and_dropped_after_retention(
    s: Arc<dyn DeviceStore>,
) {
    let ttl = Duration::from_secs(3600);
    s.enqueue(signal("peer_a", "peer_b", 1), t(0), 10).await.unwrap();
    s.enqueue(signal("peer_c", "peer_b", 2), t(5), 10).await.unwrap();
    s.enqueue(signal("peer_a", "peer_b", 3), t(10), 10).await.unwrap();
    assert_eq!(s.expire(t(3610), ttl).await.unwrap().len(), 3);
    let of_a = s.notices(&id("peer_a")).await.unwrap();
    let seen: Vec<_> = of_a.iter().map(|n| (n.id, n.expired.to.clone(), n.expired.queued_at)).collect();
    assert_eq!(seen, vec![(1, id("peer_b"), t(0)), (2, id("peer_b"), t(10))]);
    assert_eq!(s.notices(&id("peer_c")).await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>(), vec![1]);
    assert!(s.notices(&id("peer_b")).await.unwrap().is_empty(), "the receiver is told nothing");

    assert!(s.remove_notice(&id("peer_a"), 1).await.unwrap());
    assert!(!s.remove_notice(&id("peer_a"), 1).await.unwrap(), "already gone");
    assert!(!s.remove_notice(&id("peer_z"), 1).await.unwrap(), "no notices at all");
    assert_eq!(s.notices(&id("peer_a")).await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>(), vec![2]);

    // A notice waits NOTICE_RETENTION (an hour) after its signal expired.
    s.expire(t(7209), ttl).await.unwrap();
    assert!(s.notices(&id("peer_c")).await.unwrap().is_empty(), "peer_c's signal expired at 3605");
    assert_eq!(s.notices(&id("peer_a")).await.unwrap().len(), 1, "peer_a's expired at 3610");
    s.expire(t(7210), ttl).await.unwrap();
    assert!(s.notices(&id("peer_a")).await.unwrap().is_empty());

    s.enqueue(signal("peer_a", "peer_d", 4), t(7210), 10).await.unwrap();
    s.expire(t(10_810), ttl).await.unwrap();
    assert_eq!(s.notices(&id("peer_a")).await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>(), vec![3]);
}

pub async fn register_returns_the_replaced_endpoint_and_unregister_forgets_only_the_current_one(
    s: Arc<dyn DeviceStore>,
) {
    let (a, b) = (id("peer_a"), id("peer_b"));
    assert_eq!(s.endpoint(&a).await.unwrap(), None);
    assert_eq!(s.register(&a, at("c1")).await.unwrap(), None);
    assert_eq!(s.register(&b, at("c9")).await.unwrap(), None);
    assert_eq!(s.endpoint(&a).await.unwrap(), Some(at("c1")));
    assert_eq!(s.register(&a, at("c2")).await.unwrap(), Some(at("c1")));
    assert!(!s.unregister(&a, &at("c1")).await.unwrap(), "the replaced connection closing forgets nothing");
    assert_eq!(s.endpoint(&a).await.unwrap(), Some(at("c2")));
    assert!(s.unregister(&a, &at("c2")).await.unwrap());
    assert!(!s.unregister(&a, &at("c2")).await.unwrap(), "once");
    assert_eq!(s.endpoint(&a).await.unwrap(), None);
    assert_eq!(s.endpoint(&b).await.unwrap(), Some(at("c9")), "another device's stays");
}

pub async fn a_wake_reaches_every_wakes_receiver(s: Arc<dyn DeviceStore>) {
    let (mut first, mut second) = (s.wakes(), s.wakes());
    s.wake(&id("peer_a")).await.unwrap();
    s.wake(&id("peer_b")).await.unwrap();
    for rx in [&mut first, &mut second] {
        for expected in ["peer_a", "peer_b"] {
            let woken = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("woken in time");
            assert_eq!(woken.unwrap(), Wake::Device(id(expected)));
        }
    }
}

pub async fn announcements_come_in_a_burst_of_max_then_one_per_interval_per_user_and_device(s: Arc<dyn DeviceStore>) {
    let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    let minute = (3, Duration::from_secs(60));
    for n in 0..3 {
        assert_eq!(s.take_announcement(&alice, &id("peer_a"), minute).await.unwrap(), None, "announcement {n}");
    }
    let wait = s.take_announcement(&alice, &id("peer_a"), minute).await.unwrap().expect("the fourth is refused");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "one interval at most: {wait:?}");
    let again = s.take_announcement(&alice, &id("peer_a"), minute).await.unwrap().expect("a refusal counts nothing");
    assert!(again <= wait, "{again:?} after {wait:?}");
    assert_eq!(s.take_announcement(&alice, &id("peer_b"), minute).await.unwrap(), None, "another device");
    // A window that max does not divide (6 666.67 ms apart) still lets exactly max through.
    let nine = (9, Duration::from_secs(60));
    for n in 0..9 {
        assert_eq!(s.take_announcement(&alice, &id("peer_d"), nine).await.unwrap(), None, "announcement {n} of 9");
    }
    assert!(s.take_announcement(&alice, &id("peer_d"), nine).await.unwrap().is_some(), "the tenth is refused");
    assert_eq!(s.take_announcement(&bob, &id("peer_a"), minute).await.unwrap(), None, "another user");

    // A short window refills: the next one is let in once the wait is over.
    let fast = (1, Duration::from_millis(100));
    assert_eq!(s.take_announcement(&alice, &id("peer_c"), fast).await.unwrap(), None);
    let wait = s.take_announcement(&alice, &id("peer_c"), fast).await.unwrap().expect("refused within the window");
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.take_announcement(&alice, &id("peer_c"), fast).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the bucket never refilled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn concurrent_announcements_never_exceed_the_burst(s: Arc<dyn DeviceStore>) {
    let alice = UserId::parse("alice").unwrap();
    let tries = (0..40).map(|_| {
        let (s, alice) = (s.clone(), alice.clone());
        tokio::spawn(async move { s.take_announcement(&alice, &id("peer_a"), (12, Duration::from_secs(60))).await })
    });
    let mut granted = 0;
    for t in tries {
        granted += usize::from(t.await.unwrap().unwrap().is_none());
    }
    assert_eq!(granted, 12);
}
