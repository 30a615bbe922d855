//! The Redis room engine beyond the shared suite: reconciliation, reaping,
//! the route cache across instances, versions.

use super::*;
use crate::domain::{RoomError, Route};
use crate::store::Lapse;
use crate::store::redis::instances::alive_key;
use crate::store::rooms::{Intent, Reconciled, RoomStore, RoomStoreError};
use crate::testing::RedisProcess;

async fn store() -> (RedisStore, RedisProcess) {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    (instance(&redis, "instance-a", Duration::from_secs(10)).await, redis)
}

async fn instance(redis: &RedisProcess, name: &str, ttl: Duration) -> RedisStore {
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
struct Held(std::sync::Mutex<Vec<(ConnId, RoomId, UserId)>>);

impl Held {
    fn of(seats: &[(&str, &RoomId, &UserId)]) -> Self {
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

#[tokio::test]
async fn reconcile_restores_lost_seats_reports_moved_ones_and_removes_ghosts() {
    let (s, redis) = store().await;
    let id = |x: &str| (RoomId::parse(x).unwrap(), UserId::parse(x).unwrap());
    let (r, alice) = id("alice");
    let bob = UserId::parse("bob").unwrap();
    s.join(&r, &alice, &ConnId::new("a1"), 5).await.unwrap();
    s.join(&r, &bob, &ConnId::new("ghost"), 5).await.unwrap();
    // Redis loses everything; meanwhile alice's seat in "moved" went to another instance's connection.
    let _: () = s.client.flushall(false).await.unwrap();
    let moved = RoomId::parse("moved").unwrap();
    let b = instance(&redis, "instance-b", Duration::from_secs(10)).await;
    b.join(&moved, &alice, &ConnId::new("elsewhere"), 5).await.unwrap();

    let live = Held::of(&[("a1", &r, &alice), ("a1", &moved, &alice)]);
    let done = s.reconcile(&live, 5).await.unwrap();
    assert_eq!(done.restored.len(), 1, "{done:?}");
    assert_eq!((done.restored[0].room.as_str(), done.restored[0].user.as_str()), ("alice", "alice"));
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice.clone()]);
    let (_, moved_room) = s.read(&moved).await.unwrap();
    assert_eq!(moved_room.unwrap().seat_of(&alice), Some(&ConnId::new("elsewhere")), "a moved seat stays moved");
    assert_eq!(done.lost.len(), 1);
    assert!(done.lost[0].moved && done.lost[0].room == moved, "and the connection that lost it is named");

    // A connection that is no longer live but still registered here is a ghost.
    s.join(&r, &bob, &ConnId::new("gone"), 5).await.unwrap();
    let done = s.reconcile(&live, 5).await.unwrap();
    assert_eq!(done.removed.len(), 1);
    assert_eq!(done.removed[0].user, bob);
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice]);
    let registered: Vec<String> = s.client.smembers(s.instance_conns("instance-a")).await.unwrap();
    assert_eq!(registered, vec!["a1".to_owned()], "the ghost is no longer registered either");
}

/// Issue 16, problem 1: a seat found as it should be was dropped from its
/// connection's index, so the connection's departure later left it behind.
#[tokio::test]
async fn a_seat_the_store_still_holds_is_left_exactly_as_it_is_so_leaving_later_removes_it() {
    let (s, _redis) = store().await;
    let (r, alice, bob) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    s.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
    s.join(&r, &bob, &ConnId::new("cb"), 5).await.unwrap();
    let (version, _) = s.read(&r).await.unwrap();
    let live = Held::of(&[("ca", &r, &alice), ("cb", &r, &bob)]);
    let done = s.reconcile(&live, 5).await.unwrap();
    assert_eq!(done, Reconciled::default(), "nothing to change");
    assert_eq!(s.read(&r).await.unwrap().0, version, "not even rewritten");

    let left = s.leave_all(&ConnId::new("cb")).await.unwrap();
    assert_eq!(left.len(), 1, "bob's departure finds his seat");
    assert_eq!(left[0].peers, vec![ConnId::new("ca")]);
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![alice]);
}

/// A reconcile decides each seat against the connection's seats as they are
/// when it writes: one given up meanwhile is not put back, one taken
/// meanwhile is not removed.
#[tokio::test]
async fn a_reconcile_respects_seats_taken_and_given_up_while_it_runs() {
    let (s, _redis) = store().await;
    let (r, alice, bob) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    let live = Held::of(&[("ca", &r, &alice)]);
    // The connection left "r" after the reconcile listed its seats, before it wrote.
    struct LeftMeanwhile<'a>(&'a Held);
    impl Intent for LeftMeanwhile<'_> {
        fn seats(&self) -> Vec<(ConnId, Vec<(RoomId, UserId)>)> {
            let seats = self.0.seats();
            self.0.0.lock().unwrap().clear();
            seats
        }
        fn holds(&self, conn: &ConnId, room: &RoomId) -> Option<UserId> {
            self.0.holds(conn, room)
        }
    }
    let done = s.reconcile(&LeftMeanwhile(&live), 5).await.unwrap();
    assert!(done.restored.is_empty() && s.room(&r).await.unwrap().is_none(), "{done:?}");

    // bob's join is recorded before the store is asked; a reconcile then keeps it.
    let joining = Held::of(&[("cb", &r, &bob)]);
    s.join(&r, &bob, &ConnId::new("cb"), 5).await.unwrap();
    let done = s.reconcile(&joining, 5).await.unwrap();
    assert!(done.removed.is_empty(), "{done:?}");
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![bob]);
}

/// Issue 16, problem 5: a change Redis runs after this side gave up on it
/// (a paused Redis, as in a failover) does not take effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_redis_runs_after_its_deadline_does_not_take_effect() {
    let (s, redis) = store().await;
    let (r, alice) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap());
    // Scripts loaded, as on a running server (a script Redis does not know yet fails instead).
    s.join(&RoomId::parse("warm").unwrap(), &alice, &ConnId::new("cw"), 5).await.unwrap();
    tokio::task::block_in_place(|| redis.command(&["CLIENT", "PAUSE", "1500", "WRITE"]));
    let err = s.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap_err();
    assert!(matches!(err, RoomStoreError::Store(StoreError::Unavailable(_))), "{err:?}");
    // Once the pause is over, Redis has run the queued script: it refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let room = loop {
        match s.room(&r).await {
            Ok(room) => break room,
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "Redis stayed paused"),
        }
    };
    assert_eq!(room, None, "the join answered unavailable never happened");
    let indexed: Vec<String> = s.client.smembers(s.conn_rooms(&ConnId::new("ca"))).await.unwrap();
    assert!(indexed.is_empty());
}

#[tokio::test]
async fn a_heartbeat_tells_a_data_loss_and_a_lapse_of_its_own() {
    let (s, _redis) = store().await;
    assert_eq!(s.maintain().await.unwrap().lapse, None, "the first round finds nothing");
    assert_eq!(s.maintain().await.unwrap().lapse, None);
    let _: () = s.client.del(alive_key("test", "instance-a")).await.unwrap();
    assert_eq!(s.maintain().await.unwrap().lapse, Some(Lapse::TakenForDead));
    assert_eq!(s.maintain().await.unwrap().lapse, None, "told once");
    let _: () = s.client.flushall(false).await.unwrap();
    assert_eq!(s.maintain().await.unwrap().lapse, Some(Lapse::DataLost));
    assert_eq!(s.maintain().await.unwrap().lapse, None, "told once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_removes_the_participants_of_an_instance_whose_heartbeat_expired_and_every_key_it_left() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let ttl = Duration::from_millis(300);
    let (a, b) = (instance(&redis, "instance-a", ttl).await, instance(&redis, "instance-b", ttl).await);
    let (r, other) = (RoomId::parse("r").unwrap(), RoomId::parse("gone").unwrap());
    a.join(&r, &UserId::parse("on-a").unwrap(), &ConnId::new("ca"), 5).await.unwrap();
    b.join(&r, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.join(&other, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.maintain().await.unwrap();
    // a reaps only once its own heartbeat has gone a whole TTL without a break.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !a.heartbeat.may_reap() {
        assert!(a.maintain().await.unwrap().left.is_empty(), "b is alive");
        b.maintain().await.unwrap();
        assert!(tokio::time::Instant::now() < deadline, "a never became steady");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.maintain().await.unwrap().left.is_empty(), "b is alive");

    // b dies: its heartbeat key is gone (as when its TTL runs out).
    let _: () = a.client.del(alive_key("test", "instance-b")).await.unwrap();
    let mut left = a.maintain().await.unwrap().left;
    left.sort_by(|x, y| x.room.cmp(&y.room));
    assert_eq!(left.len(), 2);
    assert!(left[0].room_deleted, "room 'gone' had only b's participant");
    assert_eq!((left[1].user.as_str(), left[1].peers.clone()), ("on-b", vec![ConnId::new("ca")]));
    assert_eq!(a.room(&r).await.unwrap().unwrap().participants, vec![UserId::parse("on-a").unwrap()]);
    assert!(a.maintain().await.unwrap().left.is_empty(), "reaped once");
    let keys = tokio::task::block_in_place(|| redis.command(&["KEYS", "test:*instance-b*"]));
    let keys = keys.trim();
    assert!(keys.is_empty(), "nothing of b is left: {keys:?}");
    let cb: i64 = a.client.exists(a.conn_rooms(&ConnId::new("cb"))).await.unwrap();
    assert_eq!(cb, 0);
}

/// Issue 16, problem 3: a survivor stops removing an instance's seats the
/// moment that instance shows it is alive again.
#[tokio::test]
async fn a_reaper_stops_as_soon_as_the_instance_it_reaps_comes_back() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let (a, b) = (
        instance(&redis, "instance-a", Duration::from_secs(10)).await,
        instance(&redis, "instance-b", Duration::from_secs(10)).await,
    );
    let r = RoomId::parse("r").unwrap();
    b.join(&r, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.maintain().await.unwrap(); // b is alive: the reap is fenced off
    assert_eq!(a.reap("instance-b").await.unwrap(), (vec![], false));
    assert_eq!(a.room(&r).await.unwrap().unwrap().participants, vec![UserId::parse("on-b").unwrap()]);
    let registered: Vec<String> = a.client.smembers("test:instances").await.unwrap();
    assert!(registered.contains(&"instance-b".to_owned()), "and b is not forgotten");
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
