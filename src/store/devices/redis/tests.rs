//! The Redis device engines beyond the shared suite: several instances at
//! once, restarts, corrupt data.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;

use crate::domain::ConnId;
use crate::domain::presence::{Capability, NetworkId};
use crate::store::StoreError;
use crate::store::devices::suite::{INSTANCE, announcement, at, id, max, signal, t, user};
use crate::store::devices::{Devices, Endpoint, Wake};
use crate::store::redis::instances::alive_key;
use crate::testing::RedisProcess;

/// The engines of one instance, and a client to reach under them. (The
/// cluster keeps the wake-up subscription in `server::run`; here it is made
/// once, and `_ready` says it stands.)
struct Instance {
    d: Devices,
    client: Client,
    _ready: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for Instance {
    type Target = Devices;
    fn deref(&self) -> &Devices {
        &self.d
    }
}

/// The engines for `instance`, hearing wake-ups, as `server::run` builds them.
async fn devices(redis: &RedisProcess, instance: &str) -> Instance {
    let mut config = Config::from_url(&redis.url()).unwrap();
    let client = Builder::from_config(config.clone()).build().unwrap();
    client.init().await.unwrap();
    // The subscriber speaks RESP3, as the cluster's does.
    config.version = fred::types::RespVersion::RESP3;
    let subscriber = Builder::from_config(config).build_subscriber_client().unwrap();
    subscriber.init().await.unwrap();
    let clock = Arc::new(crate::store::redis::clock::RedisClock::new(Duration::from_secs(2)));
    let (d, endpoints) = Devices::redis(client.clone(), "test", instance, clock);
    subscriber.subscribe(endpoints.wake_channel()).await.unwrap();
    let (ready, watch) = tokio::sync::watch::channel(true);
    endpoints.watch_wakes(subscriber, watch);
    Instance { d, client, _ready: ready }
}

async fn store() -> ((Devices, Instance), RedisProcess) {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let instance = devices(&redis, INSTANCE).await;
    ((instance.d.clone(), instance), redis)
}

async fn two() -> (Arc<Instance>, Arc<Instance>, RedisProcess) {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let (a, b) = (devices(&redis, "instance-a").await, devices(&redis, "instance-b").await);
    (Arc::new(a), Arc::new(b), redis)
}

crate::device_store_suite!(async {
    let ((devices, instance), redis) = store().await;
    (devices, (instance, redis))
});

#[tokio::test]
async fn an_endpoint_counts_only_while_its_instance_is_alive() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let s = devices(&redis, INSTANCE).await;
    let (device, alive) = (id("peer_a"), alive_key("test", "instance-b"));
    let _: () = s.client.set(&alive, 1, None, None, false).await.unwrap();
    let on_b = Endpoint { instance: "instance-b".into(), conn: ConnId::new("cb") };
    assert_eq!(s.endpoints.register(&device, on_b.clone()).await.unwrap(), None);
    assert_eq!(s.endpoints.endpoint(&device).await.unwrap(), Some(on_b.clone()));

    // instance-b dies: its heartbeat key is gone (as when its TTL runs out).
    let _: () = s.client.del(&alive).await.unwrap();
    assert_eq!(s.endpoints.endpoint(&device).await.unwrap(), None);
    assert_eq!(s.endpoints.register(&device, at("c1")).await.unwrap(), None, "nothing live was replaced");
    assert_eq!(
        s.endpoints.endpoint(&device).await.unwrap(),
        Some(at("c1")),
        "this instance is alive without a heartbeat"
    );
    assert!(!s.endpoints.unregister(&device, &on_b).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_expiring_at_once_file_exactly_one_notice_per_signal() {
    let (a, b, _redis) = two().await;
    // 150 signals per queue: more than one page each.
    for n in 0..300 {
        let (from, to) = (["peer_x", "peer_y", "peer_z"][n as usize % 3], ["peer_p", "peer_q"][n as usize % 2]);
        a.queues.enqueue(signal(from, to, n), t(n), &max(1000)).await.unwrap();
    }
    let ttl = Duration::from_secs(60);
    let runs: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|s| tokio::spawn(async move { s.queues.expire(t(1_000), ttl).await.unwrap() }))
        .collect();
    let mut expired = 0;
    for run in runs {
        expired += run.await.unwrap().len();
    }
    assert_eq!(expired, 300, "each expired signal is reported by one run");
    for sender in ["peer_x", "peer_y", "peer_z"] {
        let notices: Vec<u64> =
            b.queues.notices(&id(sender), &user(sender)).await.unwrap().iter().map(|n| n.id).collect();
        assert_eq!(notices, (notices[0]..notices[0] + 100).collect::<Vec<_>>(), "{sender}: one notice per signal");
    }
    assert_eq!(a.queues.queued().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_from_two_instances_get_distinct_increasing_ids() {
    let (a, b, _redis) = two().await;
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let s = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(
                async move { s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(1000)).await.unwrap().id },
            )
        })
        .collect();
    let mut given = Vec::new();
    for task in tasks {
        given.push(task.await.unwrap());
    }
    given.sort();
    assert_eq!(given, (given[0]..given[0] + 40).collect::<Vec<_>>());
    let pending: Vec<u64> =
        b.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().iter().map(|q| q.id).collect();
    assert_eq!(pending, given);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_promotions_on_two_instances_promote_exactly_the_missing_number() {
    let (a, b, _redis) = two().await;
    for (i, dev) in ["peer_a", "peer_b", "peer_c", "peer_d"].iter().enumerate() {
        a.presence.announce(announcement("home", dev, dev, &[Capability::Store]), t(i as u64)).await.unwrap();
    }
    let runs: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|s| tokio::spawn(async move { s.presence.promote(3).await.unwrap() }))
        .collect();
    let mut promoted = Vec::new();
    for run in runs {
        promoted.extend(run.await.unwrap().into_iter().map(|d| d.id));
    }
    promoted.sort();
    assert_eq!(promoted, vec![id("peer_a"), id("peer_b"), id("peer_c")]);
    assert_eq!(b.presence.stats().await.unwrap().coordinators, vec![(NetworkId::parse("home").unwrap(), 3)]);
}

#[tokio::test]
async fn everything_survives_a_restart_of_switchboard() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let before = devices(&redis, "instance-a").await;
    let device =
        before.presence.announce(announcement("home", "peer_a", "alice", &[Capability::Relay]), t(0)).await.unwrap();
    before.queues.enqueue(signal("peer_b", "peer_a", 1), t(0), &max(10)).await.unwrap();
    let second = before.queues.enqueue(signal("peer_b", "peer_a", 2), t(100), &max(10)).await.unwrap().id;
    before.queues.expire(t(60), Duration::from_secs(60)).await.unwrap();
    drop(before);

    let after = devices(&redis, "instance-a2").await;
    assert_eq!(after.presence.device(&id("peer_a")).await.unwrap(), Some(device));
    let pending = after.queues.pending(&id("peer_a"), &user("peer_a"), 0, 1000).await.unwrap();
    assert_eq!((pending.len(), pending[0].id, pending[0].signal.clone()), (1, second, signal("peer_b", "peer_a", 2)));
    assert_eq!(after.queues.notices(&id("peer_b"), &user("peer_b")).await.unwrap().len(), 1);
    assert_eq!(after.queues.enqueue(signal("peer_b", "peer_a", 3), t(200), &max(10)).await.unwrap().id, second + 1);
}

#[tokio::test]
async fn a_wake_on_one_instance_reaches_every_instance() {
    let (a, b, _redis) = two().await;
    let (mut on_a, mut on_b) = (a.endpoints.wakes(), b.endpoints.wakes());
    a.endpoints.wake(&id("peer_a")).await.unwrap();
    for rx in [&mut on_b, &mut on_a] {
        let woken = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("woken in time");
        assert_eq!(woken.unwrap(), Wake::Device(id("peer_a")));
    }
}

#[tokio::test]
async fn a_corrupt_record_is_reported_as_unavailable() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let s = devices(&redis, INSTANCE).await;
    let _: () = s.client.set("{test}:d:dev:peer_a", "{not json", None, None, false).await.unwrap();
    let _: () = s.client.sadd("{test}:d:devices", "peer_a").await.unwrap();
    for result in [s.presence.device(&id("peer_a")).await.map(|_| ()), s.presence.stats().await.map(|_| ())] {
        match result {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.starts_with("{test}:d:dev:peer_a in Redis is corrupt"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Issue 16, problem 9: after Redis lost its data, a queue's ids go on
/// above every id given before (a client that drops repeats by id drops
/// nothing new).
#[tokio::test]
async fn signal_ids_never_repeat_after_redis_loses_its_data() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let s = devices(&redis, INSTANCE).await;
    let mut before = Vec::new();
    for n in 1..=3 {
        before.push(s.queues.enqueue(signal("peer_a", "peer_b", n), t(n), &max(10)).await.unwrap().id);
    }
    let _: () = s.client.flushall(false).await.unwrap();
    let after = s.queues.enqueue(signal("peer_a", "peer_b", 4), t(4), &max(10)).await.unwrap().id;
    assert!(after > *before.iter().max().unwrap(), "{after} after {before:?}");
    // Counters carry a TTL (a week idle): none is kept for good.
    let left: i64 = s.client.pttl("{test}:d:q:peer_b:seq").await.unwrap();
    assert!(left > 6 * 24 * 3_600 * 1_000, "the counter expires: {left} ms left");
}

/// Issue 16, problem 5 for `/devices`: an enqueue Redis runs past its
/// deadline (a write pause longer than half the timeout) queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_redis_runs_after_its_deadline_queues_nothing() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let s = devices(&redis, INSTANCE).await;
    // The script loaded, as on a running server.
    s.queues.enqueue(signal("peer_a", "peer_c", 1), t(1), &max(10)).await.unwrap();
    // The clock's timeout is 2 s: a deadline 1 s out, a pause of 1.5 s.
    tokio::task::block_in_place(|| redis.command(&["CLIENT", "PAUSE", "1500", "WRITE"]));
    let late = s.queues.enqueue(signal("peer_a", "peer_b", 2), t(2), &max(10)).await;
    assert!(matches!(late, Err(crate::store::devices::EnqueueFailure::Store(StoreError::Unavailable(_)))), "{late:?}");
    assert!(s.queues.pending(&id("peer_b"), &user("peer_b"), 0, 1000).await.unwrap().is_empty(), "nothing was queued");
}
