//! The Redis room engine beyond the shared suite: reconciliation, reaping,
//! the route cache across instances, versions.

mod repair;

use super::*;
use crate::domain::{RoomError, Route, UserId};
use crate::store::rooms::{Intent, RoomStore, RoomStoreError};
use crate::testing::RedisProcess;

pub(super) async fn store() -> (RedisStore, RedisProcess) {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    (instance(&redis, "instance-a", Duration::from_secs(10)).await, redis)
}

pub(super) async fn instance(redis: &RedisProcess, name: &str, ttl: Duration) -> RedisStore {
    let mut builder = Builder::from_config(Config::from_url(&redis.url()).unwrap());
    builder.with_performance_config(|p| p.default_command_timeout = Duration::from_millis(500));
    let client = builder.build().unwrap();
    client.init().await.unwrap();
    let clock = Arc::new(RedisClock::new(Duration::from_millis(500)));
    RedisStore::new(client, "test", name, ttl, clock)
}

crate::store_suite!(store());

/// The seats a test says its connections hold.
#[derive(Default)]
pub(super) struct Held(std::sync::Mutex<Vec<(ConnId, RoomId, UserId)>>);

impl Held {
    pub(super) fn of(seats: &[(&str, &RoomId, &UserId)]) -> Self {
        let seats = seats.iter().map(|(c, r, u)| (ConnId::new(c), (*r).clone(), (*u).clone())).collect();
        Self(std::sync::Mutex::new(seats))
    }
}

impl Intent for Held {
    fn seats(&self) -> Vec<(ConnId, Vec<(RoomId, UserId)>)> {
        let seats = self.0.lock().unwrap();
        let mut by_conn: Vec<(ConnId, Vec<(RoomId, UserId)>)> = Vec::new();
        for (c, r, u) in seats.iter() {
            match by_conn.iter_mut().find(|(held, _)| held == c) {
                Some((_, rooms)) => rooms.push((r.clone(), u.clone())),
                None => by_conn.push((c.clone(), vec![(r.clone(), u.clone())])),
            }
        }
        by_conn
    }

    fn holds(&self, conn: &ConnId, room: &RoomId) -> Option<UserId> {
        self.0.lock().unwrap().iter().find(|(c, r, _)| c == conn && r == room).map(|(_, _, u)| u.clone())
    }
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
    let clock = Arc::new(RedisClock::new(Duration::from_millis(500)));
    let store = RedisStore::new(client, "test", instance, Duration::from_secs(10), clock);
    subscriber.subscribe(vec![store.changes_channel(), store.sync_channel()]).await.unwrap();
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
    assert_eq!(s.write(&r, first, stale, None).await.unwrap(), Written::Moved);
}
