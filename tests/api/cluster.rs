//! Several instances sharing one private redis-server behave as one server.
//! (Starting and stopping redis-server blocks, so it runs in `block_in_place`.)

use futures_util::future::join_all;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::testing::RedisProcess;

use crate::helpers::{
    Device, Peer, Receiver, Running, TRANSPORTS, TestApp, Transport, WAIT, eventually, spawn_app_with,
};

/// `n` instances on one Redis; `tweak` adjusts each one's configuration.
pub async fn cluster(redis: &RedisProcess, n: usize, tweak: impl Fn(&mut Config)) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(
            spawn_app_with(|c| {
                c.redis_url = Some(redis.url());
                tweak(c);
            })
            .await,
        );
    }
    apps
}

/// `n` clients spread over `apps` join `room` at once: exactly 5 (the
/// `MAX_ROOM_SIZE` of these tests) are admitted, the rest refused
/// `room-full`, and every instance lists 5. The clients stay connected.
async fn contend(apps: &[TestApp], room: &str, n: usize) -> Vec<Peer> {
    let mut peers = Vec::new();
    for i in 0..n {
        peers.push(Peer::connect(&apps[i % apps.len()], Transport::Websocket).await);
    }
    let joins =
        peers.iter().enumerate().map(|(i, p)| p.ack("join-room", json!({"roomId": room, "userId": format!("u{i}")})));
    let acks = join_all(joins).await;
    let admitted = acks.iter().filter(|a| a["ok"] == true).count();
    let refused = acks.iter().filter(|a| a["error"]["code"] == "room-full").count();
    assert_eq!((admitted, refused), (5, n - 5), "{acks:?}");
    for app in apps {
        assert_eq!(app.get(&format!("/api/rooms/{room}")).await.1["participantCount"], 5);
    }
    peers
}

async fn listing(app: &TestApp) -> Value {
    app.get("/api/rooms").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_three_instances_signal_as_if_on_one_server() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 3, |_| {}).await;
    for t in TRANSPORTS {
        let room = format!("mesh-{t:?}");
        let mut alice = Peer::joined(&apps[0], t, &room, "alice").await;
        let mut bob = Peer::connect(&apps[1], t).await;
        let ack = bob.ack("join-room", json!({"roomId": room, "userId": "bob"})).await;
        assert_eq!(ack["users"], json!(["alice", "bob"]));
        assert_eq!(bob.expect("room-users").await["users"], json!(["alice", "bob"]));
        assert_eq!(alice.expect("user-joined").await, json!({"roomId": room, "userId": "bob"}));
        let mut carol = Peer::joined(&apps[2], t, &room, "carol").await;
        alice.expect("user-joined").await;
        bob.expect("user-joined").await;

        let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
        let ack = alice.ack("offer", json!({"roomId": room, "targetId": "bob", "offer": offer})).await;
        assert_eq!(ack["ok"], true);
        assert_eq!(bob.expect("offer").await, json!({"roomId": room, "senderId": "alice", "offer": offer}));
        bob.emit("answer", json!({"roomId": room, "targetId": "alice", "answer": {"type": "answer"}})).await;
        assert_eq!(alice.expect("answer").await["senderId"], "bob");
        carol.emit("ice-candidate", json!({"roomId": room, "targetId": "alice", "candidate": null})).await;
        assert_eq!(
            alice.expect("ice-candidate").await,
            json!({"roomId": room, "senderId": "carol", "candidate": null})
        );

        // Every instance lists the same rooms.
        let first = listing(&apps[0]).await;
        for app in &apps[1..] {
            assert_eq!(listing(app).await, first);
        }
        let here = first["rooms"].as_array().unwrap().iter().find(|r| r["id"] == room.as_str()).unwrap().clone();
        assert_eq!(here["participants"], json!(["alice", "bob", "carol"]));

        bob.ack("leave-room", json!({"roomId": room})).await;
        assert_eq!(alice.expect("user-left").await, json!({"roomId": room, "userId": "bob"}));
        assert_eq!(carol.expect("user-left").await["userId"], "bob");
        carol.disconnect().await;
        assert_eq!(alice.expect("user-left").await, json!({"roomId": room, "userId": "carol"}));
        let (_, from_third) = apps[2].get(&format!("/api/rooms/{room}")).await;
        assert_eq!(from_third["participants"], json!(["alice"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_relays_between_instances_arrives_complete_and_in_order() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 2, crate::helpers::unlimited).await;
    for t in TRANSPORTS {
        let room = format!("burst-{t:?}");
        let mut alice = Peer::joined(&apps[0], t, &room, "alice").await;
        let mut bob = Receiver::join(&apps[1], t, &room, "bob").await;
        alice.expect("user-joined").await; // the receiver is in the room
        for seq in 0..2000u64 {
            let candidate = json!({"roomId": room, "targetId": "bob", "candidate": {"seq": seq}});
            alice.emit("ice-candidate", candidate).await;
        }
        for (expected, got) in bob.take("ice-candidate", 2000).await.iter().enumerate() {
            assert_eq!(got["candidate"]["seq"], expected as u64, "over {t:?}: {got}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_over_two_instances_admit_exactly_max_room_size() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 2, |c| c.max_room_size = 5).await;
    let _peers = contend(&apps, "crowd", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_leaves_every_room_within_the_bound() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let ttl = std::time::Duration::from_millis(1000);
    let apps = cluster(&redis, 1, |c| c.instance_ttl = ttl).await;
    let url = redis.url();
    let mut doomed =
        tokio::task::block_in_place(|| Running::start(&[("REDIS_URL", url.as_str()), ("INSTANCE_TTL_MS", "1000")]));
    let mut alice = Peer::joined(&apps[0], Transport::Websocket, "k9", "alice").await;
    let _bob = Peer::joined_url(&format!("{}/", doomed.url), Transport::Websocket, "k9", "bob").await;
    let _carol = Peer::joined_url(&format!("{}/", doomed.url), Transport::Polling, "alone", "carol").await;
    alice.expect("user-joined").await;

    let killed = std::time::Instant::now();
    doomed.kill();
    assert_eq!(alice.expect("user-left").await, json!({"roomId": "k9", "userId": "bob"}));
    // The documented bound is INSTANCE_TTL_MS x 1.25; allow 2 s for a loaded machine.
    let bound = ttl.mul_f64(1.25) + std::time::Duration::from_secs(2);
    assert!(killed.elapsed() < bound, "took {:?}", killed.elapsed());
    let (_, k9) = apps[0].get("/api/rooms/k9").await;
    assert_eq!(k9["participants"], json!(["alice"]));
    assert_eq!(apps[0].get("/api/rooms/alone").await.0, 404, "the dead instance's room is gone");
}

/// peer_a on `a` and peer_b on `b`, announced, connected, and one signal
/// delivered from a to b.
async fn devices_across(a: &TestApp, b: &TestApp) -> (Device, Device) {
    for peer in ["peer_a", "peer_b"] {
        let body = json!({ "peerId": peer, "signalAddress": "wss://s.example/x" });
        assert_eq!(a.request("POST", "/network/home/announce", Some(body), None).await.0, 200);
    }
    let sender = Device::connect(&a.url("/"), "peer_a").await;
    let mut receiver = Device::connect(&b.url("/"), "peer_b").await;
    assert_eq!(sender.signal("peer_b", json!({ "n": 1 })).await, "delivered");
    assert_eq!(receiver.next_signal(WAIT).await["data"], json!({ "n": 1 }));
    (sender, receiver)
}

async fn health_is(app: &TestApp, status: u16, redis: &str) -> bool {
    let (code, body) = app.get("/health").await;
    code == status && body["redis"] == redis
}

/// Cuts pub/sub alone: Redis closes every subscriber's connection and refuses
/// SUBSCRIBE, SSUBSCRIBE and PUBLISH, while other commands (heartbeats, room
/// reads, queues) keep working. Returns once every instance says it is down.
async fn cut_pubsub(redis: &RedisProcess, apps: &[TestApp]) {
    let reply = tokio::task::block_in_place(|| redis.command(&["ACL", "SETUSER", "default", "resetchannels"]));
    assert_eq!(reply.trim(), "OK");
    for app in apps {
        eventually("/health says 503 while the subscriber cannot subscribe", || health_is(app, 503, "down")).await;
    }
}

/// Gives pub/sub back; returns without waiting for the instances.
fn restore_pubsub(redis: &RedisProcess) {
    let reply = tokio::task::block_in_place(|| redis.command(&["ACL", "SETUSER", "default", "allchannels"]));
    assert_eq!(reply.trim(), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_health_fails_events_with_unavailable_and_recovers() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 2, |c| {
        c.instance_ttl = std::time::Duration::from_millis(1000);
        c.redis_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let mut alice = Peer::joined(&apps[0], Transport::Websocket, "outage", "alice").await;
    let mut bob = Peer::joined(&apps[1], Transport::Websocket, "outage", "bob").await;
    alice.expect("user-joined").await;
    assert!(health_is(&apps[0], 200, "up").await);
    // A relay before the outage, so the route is in alice's instance's cache.
    let ack = alice.ack("offer", json!({"roomId": "outage", "targetId": "bob", "offer": {"before": "outage"}})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(bob.expect("offer").await["offer"], json!({"before": "outage"}));

    tokio::task::block_in_place(|| redis.stop());
    for app in &apps {
        eventually("/health says 503, redis down", || health_is(app, 503, "down")).await;
    }
    let ack = alice.ack("offer", json!({"roomId": "outage", "targetId": "bob", "offer": {}})).await;
    assert_eq!(ack["error"]["code"], "unavailable", "{ack}");

    tokio::task::block_in_place(|| redis.restart()); // empty: Redis lost every room
    for app in &apps {
        eventually("/health says 200, redis up", || health_is(app, 200, "up")).await;
    }
    let both_back = || async {
        let (_, room) = apps[0].get("/api/rooms/outage").await;
        let mut users: Vec<String> = serde_json::from_value(room["participants"].clone()).unwrap_or_default();
        users.sort();
        users == ["alice", "bob"]
    };
    eventually("both live participants are back in Redis", both_back).await;
    assert_eq!(listing(&apps[0]).await, listing(&apps[1]).await);

    // Signaling across instances works again (reconciling may re-announce peers first).
    let offer = json!({"roomId": "outage", "targetId": "bob", "offer": {"after": "outage"}});
    assert_eq!(alice.ack("offer", offer).await["ok"], true);
    let got = bob.expect_skipping("offer", &["user-joined"]).await;
    assert_eq!(got["offer"], json!({"after": "outage"}));
    bob.emit("answer", json!({"roomId": "outage", "targetId": "alice", "answer": {"n": 1}})).await;
    assert_eq!(alice.expect_skipping("answer", &["user-joined"]).await["senderId"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_down_until_its_subscriber_has_subscribed_again() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 2, |c| c.instance_ttl = std::time::Duration::from_millis(1000)).await;
    let mut alice = Peer::joined(&apps[0], Transport::Websocket, "pubsub", "alice").await;
    let mut bob = Peer::joined(&apps[1], Transport::Websocket, "pubsub", "bob").await;
    alice.expect("user-joined").await;
    assert!(health_is(&apps[0], 200, "up").await && health_is(&apps[1], 200, "up").await);

    cut_pubsub(&redis, &apps).await;
    restore_pubsub(&redis);
    for app in &apps {
        eventually("/health says 200 once it has subscribed again", || health_is(app, 200, "up")).await;
    }
    // Both instances hear each other again.
    let offer = json!({"roomId": "pubsub", "targetId": "bob", "offer": {"after": "resubscribing"}});
    assert_eq!(alice.ack("offer", offer).await["ok"], true);
    assert_eq!(bob.expect_skipping("offer", &["user-joined"]).await["offer"], json!({"after": "resubscribing"}));
    bob.emit("answer", json!({"roomId": "pubsub", "targetId": "alice", "answer": {"n": 1}})).await;
    assert_eq!(alice.expect_skipping("answer", &["user-joined"]).await["senderId"], "bob");
}

/// A device signalled while its instance could not subscribe has not heard the
/// wake-up; once the instance has subscribed again its devices read their
/// mail, long before the 30 s re-check would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_while_an_instance_cannot_subscribe_reaches_its_device_once_it_can() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = cluster(&redis, 2, |c| {
        c.instance_ttl = std::time::Duration::from_millis(1000);
        // Nothing is pushed again within the test for want of a confirmation.
        c.presence.ack_timeout = std::time::Duration::from_secs(60);
    })
    .await;
    let (sender, mut receiver) = devices_across(&apps[0], &apps[1]).await;

    cut_pubsub(&redis, &apps).await;
    // "delivered": the receiver is connected. The signal waits in its queue,
    // and its wake-up cannot even be published.
    assert_eq!(sender.signal("peer_b", json!({ "n": 2 })).await, "delivered");
    restore_pubsub(&redis);
    assert_eq!(receiver.next_signal(WAIT).await["data"], json!({ "n": 2 }));
    sender.disconnect().await;
    receiver.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("INSTANCE_TTL_MS", "1000"), ("REDIS_TIMEOUT_MS", "300")];
    let mut server = tokio::task::block_in_place(|| Running::start(&env));
    let alice = Peer::joined_url(&format!("{}/", server.url), Transport::Websocket, "logs", "alice").await;

    tokio::task::block_in_place(|| redis.stop());
    let is_down = |l: &Value| l["message"].as_str().is_some_and(|m| m.starts_with("Redis unreachable"));
    tokio::task::block_in_place(|| server.wait_log(is_down));
    for n in 0..5 {
        let ack = alice.ack("join-room", json!({"roomId": format!("r{n}"), "userId": "alice"})).await;
        assert_eq!(ack["error"]["code"], "unavailable");
    }
    tokio::task::block_in_place(|| redis.restart());
    tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "reconciled with Redis"));

    // Switchboard's own warnings, but for the start-up one about JWT_SECRET.
    let ours = |l: &&Value| {
        l["target"].as_str().is_some_and(|t| t.starts_with("switchboard"))
            && !l["message"].as_str().is_some_and(|m| m.contains("JWT_SECRET"))
    };
    // The refused joins above are not logged one by one either (not at warn, not at error).
    let loud = |l: &&Value| l["level"] == "WARN" || l["level"] == "ERROR";
    let warnings: Vec<&Value> = server.seen.iter().filter(ours).filter(loud).collect();
    assert_eq!(warnings.len(), 1, "one warning for the whole outage: {warnings:?}");
    let back =
        server.seen.iter().filter(|l| l["message"] == "Redis reachable again; reconciling this instance's rooms");
    assert_eq!(back.count(), 1);
}

/// Issue 16, build 9: every script declares its keys under one hash tag, so
/// switchboard runs unchanged on a Redis Cluster of three masters: signaling
/// across three instances, one listing, rooms capped exactly under
/// contention, `/mesh` and `/devices` across instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_work_as_one_on_a_redis_cluster_of_three_masters() {
    let redis = tokio::task::block_in_place(switchboard::testing::RedisCluster::start);
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            spawn_app_with(|c| {
                c.redis_url = Some(redis.url());
                c.max_room_size = 5;
            })
            .await,
        );
    }
    let mut alice = Peer::joined(&apps[0], Transport::Websocket, "rc", "alice").await;
    let mut bob = Peer::joined(&apps[1], Transport::Polling, "rc", "bob").await;
    assert_eq!(alice.expect("user-joined").await["userId"], "bob");
    let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
    let ack = alice.ack("offer", json!({"roomId": "rc", "targetId": "bob", "offer": offer})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(bob.expect("offer").await["offer"], offer);
    bob.emit("answer", json!({"roomId": "rc", "targetId": "alice", "answer": {"n": 1}})).await;
    assert_eq!(alice.expect("answer").await["senderId"], "bob");
    let first = listing(&apps[0]).await;
    assert_eq!(first["total"], 1, "{first}");
    assert_eq!(listing(&apps[2]).await, first);

    // Contention across instances: exactly MAX_ROOM_SIZE (5 here) seats.
    let _peers = contend(&apps, "full", 15).await;

    // Devices across instances.
    let _devices = devices_across(&apps[0], &apps[1]).await;

    bob.disconnect().await;
    assert_eq!(alice.expect("user-left").await["userId"], "bob");
}
