//! Reconcile, the heartbeat's findings, deadlines and reaping (issue 16's faults, at the store).

use super::*;
use crate::domain::UserId;
use crate::domain::signal::SignalKind;
use crate::store::Lapse;
use crate::store::redis::instances::alive_key;
use crate::store::rooms::grace::{Keeping, KeptRelay};
use crate::store::rooms::{Intent, Reconciled, RoomStore, RoomStoreError};

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
    let ttl = Duration::from_secs(10);
    let (a, b) = (instance(&redis, "instance-a", ttl).await, instance(&redis, "instance-b", ttl).await);
    let (r, other) = (RoomId::parse("r").unwrap(), RoomId::parse("gone").unwrap());
    a.join(&r, &UserId::parse("on-a").unwrap(), &ConnId::new("ca"), 5).await.unwrap();
    b.join(&r, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.join(&other, &UserId::parse("on-b").unwrap(), &ConnId::new("cb"), 5).await.unwrap();
    b.maintain().await.unwrap();
    // a reaps only once its own heartbeat has gone a whole TTL without a break.
    a.maintain().await.unwrap();
    a.maintain().await.unwrap();
    assert!(!a.heartbeat.may_reap(), "steady, but not for a TTL yet");
    a.heartbeat.age(ttl);
    assert!(a.heartbeat.may_reap());
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
    let keys = tokio::task::block_in_place(|| redis.command(&["KEYS", "{test}:*instance-b*"]));
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
    let registered: Vec<String> = a.client.smembers("{test}:instances").await.unwrap();
    assert!(registered.contains(&"instance-b".to_owned()), "and b is not forgotten");
}

/// Issue 20: a seat held for a closed connection, lost with Redis's data, is
/// put back held: relays to it are kept again, not sent to the closed connection.
#[tokio::test]
async fn a_held_seat_lost_with_the_data_is_put_back_held() {
    let (s, _redis) = store().await;
    let (r, alice, bob) = (RoomId::parse("r").unwrap(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    s.join(&r, &alice, &ConnId::new("ca"), 5).await.unwrap();
    s.join(&r, &bob, &ConnId::new("cb"), 5).await.unwrap();
    s.hold(&ConnId::new("ca"), 10_000).await.unwrap();
    let _: () = s.client.flushall(false).await.unwrap();

    struct HeldToo(Held);
    impl Intent for HeldToo {
        fn seats(&self) -> Vec<(ConnId, Vec<(RoomId, UserId)>)> {
            self.0.seats()
        }
        fn holds(&self, conn: &ConnId, room: &RoomId) -> Option<UserId> {
            self.0.holds(conn, room)
        }
        fn held(&self, conn: &ConnId) -> bool {
            conn.as_str() == "ca"
        }
    }
    let intent = HeldToo(Held::of(&[("ca", &r, &alice), ("cb", &r, &bob)]));
    let done = s.reconcile(&intent, 5).await.unwrap();
    assert_eq!(done.restored.len(), 2, "{done:?}");
    let route = s.route(&r, &ConnId::new("cb"), &alice).await.unwrap();
    assert!(route.held && route.target == ConnId::new("ca"), "{route:?}");
    let relay = KeptRelay { sender: bob.clone(), kind: SignalKind::Offer, body: serde_json::json!({}) };
    assert_eq!(s.keep(&r, &alice, &relay, 10).await.unwrap(), Keeping::Kept);
    assert!(!s.route(&r, &ConnId::new("ca"), &bob).await.unwrap().held, "a live seat is put back live");
}
