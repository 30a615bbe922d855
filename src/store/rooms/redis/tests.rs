//! The Redis room engine beyond the shared suite: reconciliation, reaping,
//! the route cache across instances, versions.

use super::*;
use crate::domain::{RoomError, Route};
use crate::store::redis::instances::alive_key;
use crate::store::rooms::{RoomStore, RoomStoreError};
use crate::testing::RedisProcess;

async fn store() -> (RedisStore, RedisProcess) {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    (RedisStore::new(client, "test", "instance-a", Duration::from_secs(10)), redis)
}

crate::store_suite!(store());

#[tokio::test]
async fn reconcile_restores_lost_seats_keeps_moved_ones_and_removes_ghosts() {
    let (s, redis) = store().await;
    let id = |x: &str| (RoomId::parse(x).unwrap(), UserId::parse(x).unwrap());
    let (r, alice) = id("alice");
    let bob = UserId::parse("bob").unwrap();
    s.join(&r, &alice, &ConnId::new("a1"), 5).await.unwrap();
    s.join(&r, &bob, &ConnId::new("ghost"), 5).await.unwrap();
    // Redis loses everything; meanwhile bob's seat in "moved" went to another instance's connection.
    let _: () = s.client.flushall(false).await.unwrap();
    let moved = RoomId::parse("moved").unwrap();
    let other = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    other.init().await.unwrap();
    let b = RedisStore::new(other, "test", "instance-b", Duration::from_secs(10));
    b.join(&moved, &alice, &ConnId::new("elsewhere"), 5).await.unwrap();

    let live = vec![(ConnId::new("a1"), vec![(r.clone(), alice.clone()), (moved.clone(), alice.clone())])];
    let done = s.reconcile(&live, 5).await.unwrap();
    assert_eq!(done.restored.len(), 1, "{done:?}");
    assert_eq!((done.restored[0].room.as_str(), done.restored[0].user.as_str()), ("alice", "alice"));
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice.clone()]);
    let (_, moved_room) = s.read(&moved).await.unwrap();
    assert_eq!(moved_room.unwrap().seat_of(&alice), Some(&ConnId::new("elsewhere")), "a moved seat stays moved");

    // A connection that is no longer live but still registered here is a ghost.
    s.join(&r, &bob, &ConnId::new("gone"), 5).await.unwrap();
    let done = s.reconcile(&live, 5).await.unwrap();
    assert_eq!(done.removed.len(), 1);
    assert_eq!(done.removed[0].user, bob);
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice]);
}

#[tokio::test]
async fn a_survivor_removes_the_participants_of_an_instance_whose_heartbeat_expired() {
    let (a, redis) = store().await;
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let b = RedisStore::new(client, "test", "instance-b", Duration::from_secs(10));
    let (r, other) = (RoomId::parse("r").unwrap(), RoomId::parse("gone").unwrap());
    a.join(&r, &UserId::parse("on-a").unwrap(), &ConnId::new("ca"), 5).await.unwrap();
    b.join(&r, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.join(&other, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    a.maintain().await.unwrap();
    b.maintain().await.unwrap();
    assert!(a.maintain().await.unwrap().is_empty(), "b is alive");

    // b dies: its heartbeat key is gone (as when its TTL runs out).
    let _: () = a.client.del(alive_key("test", "instance-b")).await.unwrap();
    let mut left = a.maintain().await.unwrap();
    left.sort_by(|x, y| x.room.cmp(&y.room));
    assert_eq!(left.len(), 2);
    assert!(left[0].room_deleted, "room 'gone' had only b's participant");
    assert_eq!((left[1].user.as_str(), left[1].peers.clone()), ("on-b", vec![ConnId::new("ca")]));
    assert_eq!(a.room(&r).await.unwrap().unwrap().participants, vec![UserId::parse("on-a").unwrap()]);
    assert!(a.maintain().await.unwrap().is_empty(), "reaped once");
}

/// A store whose route cache follows announcements, as in `server::run`
/// (there the cluster keeps the subscription; here it is made once, and
/// `_ready` says it stands).
struct Watching {
    store: RedisStore,
    _ready: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for Watching {
    type Target = RedisStore;
    fn deref(&self) -> &RedisStore {
        &self.store
    }
}

async fn watching(redis: &RedisProcess, instance: &str) -> Watching {
    // Commands fail after 500 ms instead of waiting for a Redis that is gone.
    let timeout = |b: &mut Builder| {
        b.with_performance_config(|p| p.default_command_timeout = Duration::from_millis(500));
    };
    let mut builder = Builder::from_config(Config::from_url(&redis.url()).unwrap());
    timeout(&mut builder);
    let client = builder.build().unwrap();
    client.init().await.unwrap();
    let mut config = Config::from_url(&redis.url()).unwrap();
    config.version = fred::types::RespVersion::RESP3;
    let mut builder = Builder::from_config(config);
    timeout(&mut builder);
    let subscriber = builder.build_subscriber_client().unwrap();
    subscriber.init().await.unwrap();
    let store = RedisStore::new(client, "test", instance, Duration::from_secs(10));
    subscriber.subscribe(store.changes_channel()).await.unwrap();
    let (ready, watch) = tokio::sync::watch::channel(true);
    store.watch_changes(subscriber, watch);
    store.maintain().await.unwrap();
    wait_until("the route cache is usable", || store.cache.usable()).await;
    Watching { store, _ready: ready }
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Routes until the answer is cached: an announcement still in flight from
/// an earlier change (correctly) keeps a read from being cached.
async fn route_until_cached(s: &RedisStore, r: &RoomId, from: &str, to: &UserId) -> Route {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let route = s.route(r, &ConnId::new(from), to).await.unwrap();
        if s.cache.route(r, &ConnId::new(from), to).is_some() {
            return route;
        }
        assert!(tokio::time::Instant::now() < deadline, "the route was never cached");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_cached_route_follows_changes_made_on_another_instance_and_here() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let (a, b) = (watching(&redis, "instance-a").await, watching(&redis, "instance-b").await);
    let (r, alice, bob) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    a.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
    b.join(&r, &bob, &ConnId::new("cb1"), 5).await.unwrap();
    assert_eq!(route_until_cached(&a, &r, "ca", &bob).await.target, ConnId::new("cb1"));

    // bob reconnects on b: his seat moves; a's copy is dropped when b announces it.
    b.join(&r, &bob, &ConnId::new("cb2"), 5).await.unwrap();
    wait_until("a has dropped its copy", || a.cache.is_empty()).await;
    assert_eq!(a.route(&r, &ConnId::new("ca"), &bob).await.unwrap().target, ConnId::new("cb2"));

    // A change made here drops the copy at once, before any announcement.
    a.leave(&r, &ConnId::new("ca")).await.unwrap();
    assert!(a.cache.is_empty());
    let err = a.route(&r, &ConnId::new("ca"), &bob).await.unwrap_err();
    assert!(matches!(err, RoomStoreError::Rule(RoomError::NotInRoom)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_nothing_is_routed_from_the_cache() {
    let mut redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let a = watching(&redis, "instance-a").await;
    let (r, alice, bob) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    a.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
    a.join(&r, &bob, &ConnId::new("cb"), 5).await.unwrap();
    route_until_cached(&a, &r, "ca", &bob).await;

    tokio::task::block_in_place(|| redis.stop());
    // The lost subscription, or else the next upkeep, empties the cache.
    let _ = a.maintain().await;
    assert!(a.cache.is_empty() && !a.cache.usable());
    let err = a.route(&r, &ConnId::new("ca"), &bob).await.unwrap_err();
    assert!(matches!(err, RoomStoreError::Store(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn a_room_deleted_and_created_again_never_reuses_a_version() {
    let (s, _redis) = store().await;
    let (r, u, c) = (RoomId::parse("r").unwrap(), UserId::parse("u").unwrap(), ConnId::new("c"));
    s.join(&r, &u, &c, 5).await.unwrap();
    let (first, _) = s.read(&r).await.unwrap();
    s.leave(&r, &c).await.unwrap();
    s.join(&r, &u, &c, 5).await.unwrap();
    let (second, _) = s.read(&r).await.unwrap();
    assert!(second > first, "a stale writer holding version {first} must lose");
    let stale = Change { room: None, sets: vec![] };
    assert!(!s.write(&r, first, stale).await.unwrap());
}
