//! The one test suite every device engine must pass.
//!
//! Each engine's module invokes [`device_store_suite!`](crate::device_store_suite)
//! with a future that builds a fresh, empty store (and a guard); every
//! function below becomes a `#[tokio::test]` for that engine, so memory and
//! Redis honour the same rules. The suite's endpoints are on [`INSTANCE`],
//! which the store must take as alive: build it as that instance.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

// Each function is named as the sentence it checks; that name is its documentation.
#![allow(missing_docs)]

mod budget;
mod mail;
mod owner;
pub use budget::*;
pub use mail::*;
pub use owner::*;

use std::time::{Duration, SystemTime};

use super::{AnnounceFailure, Devices, Endpoint};
use crate::domain::presence::{
    AnnounceError, Announcement, Capability, DeviceId, NetworkId, PeerLookup, SignalAddress,
};
use crate::domain::queue::{QueueBudget, SignalBody};
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
            concurrent_announcements_never_exceed_the_burst,
            each_byte_budget_holds_and_frees_up_as_signals_leave,
            a_queue_is_read_in_pages_after_an_id,
            signals_and_notices_are_read_only_by_the_owner_they_were_queued_for);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                // The guard (a private redis-server, say) lives until the test ends.
                let (store, _guard) = $make.await;
                $crate::store::devices::suite::$name(store).await;
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

/// A candidate from `from` to `to` (each owned by the user of the same name), body `{"n":n}`.
pub fn signal(from: &str, to: &str, n: u64) -> Outgoing {
    let data = SignalBody::from_value(&serde_json::json!({ "n": n }));
    Outgoing {
        kind: SignalKind::IceCandidate,
        from: id(from),
        sender_user: user(from),
        to: id(to),
        owner: user(to),
        data,
    }
}

/// The user named `s`.
pub fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// The default budgets, with at most `signals` per queue.
pub fn max(signals: usize) -> QueueBudget {
    QueueBudget { signals, ..QueueBudget::default() }
}

/// Connection `conn` on [`INSTANCE`].
pub fn at(conn: &str) -> Endpoint {
    Endpoint { instance: INSTANCE.into(), conn: ConnId::new(conn) }
}

fn ids(devices: Vec<crate::domain::presence::Device>) -> Vec<DeviceId> {
    devices.into_iter().map(|d| d.id).collect()
}

pub async fn peers_are_the_online_devices_of_one_network_only(s: Devices) {
    s.presence.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.presence.announce(announcement("home", "peer_b", "bob", &[]), t(10)).await.unwrap();
    s.presence.announce(announcement("work", "peer_c", "carol", &[]), t(0)).await.unwrap();
    assert_eq!(ids(s.presence.peers(&net("home"), t(20), TTL).await.unwrap()), vec![id("peer_a"), id("peer_b")]);
    let later = ids(s.presence.peers(&net("home"), t(605), TTL).await.unwrap());
    assert_eq!(later, vec![id("peer_b")], "peer_a is stale even before a sweep");
}

pub async fn a_device_that_moves_leaves_its_old_network(s: Devices) {
    s.presence.announce(announcement("home", "peer_a", "alice", &[Capability::Coordinator]), t(0)).await.unwrap();
    s.presence.announce(announcement("work", "peer_b", "bob", &[]), t(5)).await.unwrap();
    s.presence.announce(announcement("work", "peer_a", "alice", &[]), t(10)).await.unwrap();
    assert!(s.presence.peers(&net("home"), t(20), TTL).await.unwrap().is_empty());
    assert_eq!(ids(s.presence.peers(&net("work"), t(20), TTL).await.unwrap()), vec![id("peer_a"), id("peer_b")]);
    let home = s.presence.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(20), TTL).await.unwrap();
    assert_eq!(home, PeerLookup::Offline { last_seen: None, last_coordinators: vec![] }, "nothing left in home");
    let stats = s.presence.stats().await.unwrap();
    assert_eq!((stats.active_devices, stats.coordinators), (2, vec![(net("work"), 0)]));
}

pub async fn concurrent_announcements_leave_a_device_in_one_network(s: Devices) {
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let s = s.clone();
            let network = if i % 2 == 0 { "home" } else { "work" };
            tokio::spawn(async move { s.presence.announce(announcement(network, "peer_a", "alice", &[]), t(i)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let record = s.presence.device(&id("peer_a")).await.unwrap().unwrap();
    let (home, work) = (
        s.presence.peers(&net("home"), t(30), TTL).await.unwrap(),
        s.presence.peers(&net("work"), t(30), TTL).await.unwrap(),
    );
    assert_eq!(home.len() + work.len(), 1, "in exactly one network");
    assert_eq!([home, work].concat(), vec![record]);
}

pub async fn the_sweep_marks_silent_devices_offline_and_forgets_them_after_retention(s: Devices) {
    s.presence.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.presence.announce(announcement("home", "peer_b", "bob", &[]), t(300)).await.unwrap();
    let sweep = s.presence.sweep(t(600), TTL).await.unwrap();
    assert_eq!((sweep.went_offline, sweep.deleted), (vec![id("peer_a")], 0));
    assert!(!s.presence.device(&id("peer_a")).await.unwrap().unwrap().online);
    assert_eq!(s.presence.sweep(t(3600), TTL).await.unwrap().deleted, 1);
    assert!(s.presence.device(&id("peer_a")).await.unwrap().is_none());
    assert_eq!(s.presence.stats().await.unwrap().active_devices, 0, "peer_b went offline in the second sweep");
}

pub async fn a_user_offline_gets_the_last_coordinators_instead(s: Devices) {
    s.presence.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    s.presence.announce(announcement("home", "peer_k", "kim", &[Capability::Coordinator]), t(100)).await.unwrap();
    s.presence.announce(announcement("work", "peer_w", "walt", &[Capability::Coordinator]), t(100)).await.unwrap();
    match s.presence.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(10), TTL).await.unwrap() {
        PeerLookup::Online(d) => assert_eq!(d.id, id("peer_a")),
        other => panic!("{other:?}"),
    }
    let offline = s.presence.find_user(&net("home"), &UserId::parse("alice").unwrap(), t(700), TTL).await.unwrap();
    assert_eq!(offline, PeerLookup::Offline { last_seen: Some(t(0)), last_coordinators: vec![id("peer_k")] });
    let unknown = s.presence.find_user(&net("home"), &UserId::parse("zed").unwrap(), t(700), TTL).await.unwrap();
    assert_eq!(unknown, PeerLookup::Offline { last_seen: None, last_coordinators: vec![id("peer_k")] });
}

pub async fn promotion_keeps_two_coordinators_per_network_and_no_more(s: Devices) {
    for (i, dev) in ["peer_a", "peer_b", "peer_c"].iter().enumerate() {
        s.presence.announce(announcement("home", dev, dev, &[Capability::Store]), t(i as u64)).await.unwrap();
    }
    s.presence.announce(announcement("work", "peer_w", "walt", &[Capability::Relay]), t(0)).await.unwrap();
    assert_eq!(ids(s.presence.promote(2).await.unwrap()), vec![id("peer_a"), id("peer_w"), id("peer_b")]);
    assert!(s.presence.promote(2).await.unwrap().is_empty(), "nothing missing any more");
    let stats = s.presence.stats().await.unwrap();
    assert_eq!(stats.coordinators, vec![(net("home"), 2), (net("work"), 1)]);
    assert_eq!((stats.active_devices, stats.active_networks), (4, 2));
}

pub async fn concurrent_promotions_promote_exactly_the_missing_number(s: Devices) {
    for (i, dev) in ["peer_a", "peer_b", "peer_c", "peer_d", "peer_e"].iter().enumerate() {
        s.presence.announce(announcement("home", dev, dev, &[Capability::Relay]), t(i as u64)).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.presence.promote(2).await })
        })
        .collect();
    let mut promoted = Vec::new();
    for task in tasks {
        promoted.extend(ids(task.await.unwrap().unwrap()));
    }
    promoted.sort();
    assert_eq!(promoted, vec![id("peer_a"), id("peer_b")], "each promoted once, by one of the runs");
    assert_eq!(s.presence.stats().await.unwrap().coordinators, vec![(net("home"), 2)]);
}

pub async fn an_expired_record_can_be_taken_by_another_user(s: Devices) {
    s.presence.announce(announcement("home", "peer_a", "alice", &[]), t(0)).await.unwrap();
    let taken = s.presence.announce(announcement("home", "peer_a", "mallory", &[]), t(10)).await;
    assert!(matches!(taken, Err(AnnounceFailure::Rule(AnnounceError::OwnedByAnotherUser))));
    assert_eq!(
        s.presence.device(&id("peer_a")).await.unwrap().unwrap().user.as_str(),
        "alice",
        "a refusal writes nothing"
    );
    let later = s.presence.announce(announcement("home", "peer_a", "mallory", &[]), t(3600)).await.unwrap();
    assert_eq!((later.user.as_str(), later.created_at), ("mallory", t(3600)));
}

pub async fn announcements_come_in_a_burst_of_max_then_one_per_interval_per_user_and_device(s: Devices) {
    let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    let minute = (3, Duration::from_secs(60));
    for n in 0..3 {
        assert_eq!(
            s.presence.take_announcement(&alice, &id("peer_a"), minute).await.unwrap(),
            None,
            "announcement {n}"
        );
    }
    let wait =
        s.presence.take_announcement(&alice, &id("peer_a"), minute).await.unwrap().expect("the fourth is refused");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "one interval at most: {wait:?}");
    let again =
        s.presence.take_announcement(&alice, &id("peer_a"), minute).await.unwrap().expect("a refusal counts nothing");
    assert!(again <= wait, "{again:?} after {wait:?}");
    assert_eq!(s.presence.take_announcement(&alice, &id("peer_b"), minute).await.unwrap(), None, "another device");
    // A window that max does not divide (6 666.67 ms apart) still lets exactly max through.
    let nine = (9, Duration::from_secs(60));
    for n in 0..9 {
        assert_eq!(
            s.presence.take_announcement(&alice, &id("peer_d"), nine).await.unwrap(),
            None,
            "announcement {n} of 9"
        );
    }
    assert!(s.presence.take_announcement(&alice, &id("peer_d"), nine).await.unwrap().is_some(), "the tenth is refused");
    assert_eq!(s.presence.take_announcement(&bob, &id("peer_a"), minute).await.unwrap(), None, "another user");

    // A short window refills: the next one is let in once the wait is over.
    let fast = (1, Duration::from_millis(100));
    assert_eq!(s.presence.take_announcement(&alice, &id("peer_c"), fast).await.unwrap(), None);
    let wait =
        s.presence.take_announcement(&alice, &id("peer_c"), fast).await.unwrap().expect("refused within the window");
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.presence.take_announcement(&alice, &id("peer_c"), fast).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the bucket never refilled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn concurrent_announcements_never_exceed_the_burst(s: Devices) {
    let alice = UserId::parse("alice").unwrap();
    let tries = (0..40).map(|_| {
        let (s, alice) = (s.clone(), alice.clone());
        tokio::spawn(
            async move { s.presence.take_announcement(&alice, &id("peer_a"), (12, Duration::from_secs(60))).await },
        )
    });
    let mut granted = 0;
    for t in tries {
        granted += usize::from(t.await.unwrap().unwrap().is_none());
    }
    assert_eq!(granted, 12);
}
