//! Cluster mode on a bad day (issue 16): each test injects one fault into a
//! private redis-server or into an instance (a separate process, so it can
//! be stopped with `kill -STOP`), and asserts the cluster is consistent once
//! it is over. The faults: `CLIENT PAUSE` (a stall; `WRITE` is what a
//! failover does), `DEBUG SLEEP`, a restart that loses everything, a
//! persistent restart after downtime longer than `INSTANCE_TTL_MS`, an
//! instance paused past its TTL, and `kill -9`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::testing::RedisProcess;

use crate::helpers::{Peer, Running, Transport, WAIT, eventually};

/// An instance (its own process) on `redis`, with `env` on top of short
/// cluster timings: heartbeat TTL 1 s, Redis timeout 300 ms.
fn instance(redis: &RedisProcess, env: &[(&str, &str)]) -> Running {
    let url = redis.url();
    let base = [("REDIS_URL", url.as_str()), ("INSTANCE_TTL_MS", "1000"), ("REDIS_TIMEOUT_MS", "300")];
    tokio::task::block_in_place(|| Running::start(&[&base[..], env].concat()))
}

/// Blocks until `server` logs a line whose message starts with `start`.
fn log_starting(server: &mut Running, start: &str) -> Value {
    tokio::task::block_in_place(|| server.wait_log(|l| l["message"].as_str().is_some_and(|m| m.starts_with(start))))
}

/// The instance id `server` logged at start-up.
fn instance_id(server: &mut Running) -> String {
    let is_it = |l: &Value| l["message"] == "cluster mode: state in Redis";
    let seen = server.seen.iter().find(|l| is_it(l)).cloned();
    let started = seen.unwrap_or_else(|| tokio::task::block_in_place(|| server.wait_log(is_it)));
    started["instance"].as_str().expect("the instance id is logged").to_owned()
}

/// Milliseconds left on `instance`'s heartbeat key (negative: gone).
fn heartbeat_left(redis: &RedisProcess, instance: &str) -> i64 {
    let key = format!("{{switchboard}}:inst:{instance}:alive");
    redis_cli(redis, &["PTTL", &key]).trim().parse().expect("PTTL answers a number")
}

/// Redis loses everything (killed and restarted empty at once), and each of
/// `servers` has reconciled after it.
fn lose_redis_data(redis: &mut RedisProcess, servers: &mut [&mut Running]) {
    tokio::task::block_in_place(|| {
        redis.stop();
        redis.restart();
    });
    for server in servers {
        log_starting(server, "reconciled with Redis");
    }
}

fn redis_cli(redis: &RedisProcess, args: &[&str]) -> String {
    tokio::task::block_in_place(|| redis.command(args))
}

async fn participants(server: &Running, room: &str) -> Option<Vec<String>> {
    let response = reqwest::get(format!("{}/api/rooms/{room}", server.url)).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let mut users: Vec<String> = serde_json::from_value(body["participants"].clone()).ok()?;
    users.sort();
    Some(users)
}

/// Waits until `room`, as `server` lists it, holds exactly `users` (none:
/// the room is gone).
async fn holds(server: &Running, room: &str, users: &[&str]) {
    let want: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    eventually(&format!("{room} holds {users:?}"), || async {
        participants(server, room).await.unwrap_or_default() == want
    })
    .await;
}

fn ws(server: &Running) -> String {
    format!("{}/", server.url)
}

/// Problem 1: after a stall longer than an upkeep round and `REDIS_TIMEOUT_MS` (`CLIENT PAUSE`,
/// then `DEBUG SLEEP`), the reconcile used to drop a seat from its
/// connection's index when it found the seat as it should be, so the user's
/// later departure left a ghost behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_stall_a_departure_still_empties_its_seat() {
    let redis = tokio::task::block_in_place(|| RedisProcess::start_with(&["--enable-debug-command", "local"]));
    let (mut a, mut b) =
        (instance(&redis, &[("INSTANCE_TTL_MS", "5000")]), instance(&redis, &[("INSTANCE_TTL_MS", "5000")]));
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "stall", "alice").await;
    let mut users = Vec::new();
    for (n, stall) in [&["CLIENT", "PAUSE", "2000"][..], &["DEBUG", "SLEEP", "2"][..]].into_iter().enumerate() {
        let user = format!("bob{n}");
        let bob = Peer::joined_url(&ws(&b), Transport::Websocket, "stall", &user).await;
        assert_eq!(alice.expect("user-joined").await["userId"], user.as_str());
        users.push((user, bob));
        redis_cli(&redis, stall);
        for server in [&mut a, &mut b] {
            log_starting(server, "reconciled with Redis");
        }
    }
    holds(&a, "stall", &["alice", "bob0", "bob1"]).await;
    for (user, bob) in users {
        bob.disconnect().await;
        assert_eq!(alice.expect("user-left").await, json!({"roomId": "stall", "userId": user}));
    }
    holds(&b, "stall", &["alice"]).await;
}

/// Problem 2: Redis restarted empty so fast that no round failed. The epoch
/// marker is gone, so every instance notices, says so, and puts its seats back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_restarts_empty_at_once_gets_every_room_back() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let (mut a, mut b) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "restart", "alice").await;
    let mut bob = Peer::joined_url(&ws(&b), Transport::Polling, "restart", "bob").await;
    alice.expect("user-joined").await;

    lose_redis_data(&mut redis, &mut []);
    for server in [&mut a, &mut b] {
        log_starting(server, "Redis lost its data");
        log_starting(server, "reconciled with Redis");
    }
    holds(&a, "restart", &["alice", "bob"]).await;
    holds(&b, "restart", &["alice", "bob"]).await;
    let offer = json!({"roomId": "restart", "targetId": "bob", "offer": {"after": "restart"}});
    assert_eq!(alice.ack("offer", offer).await["ok"], true);
    assert_eq!(bob.expect_skipping("offer", &["user-joined"]).await["offer"], json!({"after": "restart"}));
}

/// Problem 3: an instance stopped past its TTL is taken for dead and its
/// participants removed. Once resumed it learns so, puts them back (peers
/// hear `user-joined`), and no relay it routes is delivered as if nothing
/// happened: an offer sent during the pause is either refused or arrives
/// after the peer has heard its sender is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_paused_past_its_ttl_comes_back_into_its_rooms() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let (a, mut b) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "pause", "alice").await;
    let bob = Peer::joined_url(&ws(&b), Transport::Websocket, "pause", "bob").await;
    alice.expect("user-joined").await;
    let offer = json!({"roomId": "pause", "targetId": "alice", "offer": {"n": 0}});
    assert_eq!(bob.ack("offer", offer).await["ok"], true, "the route is cached on b");
    alice.expect("offer").await;

    b.signal("STOP");
    assert_eq!(alice.expect("user-left").await, json!({"roomId": "pause", "userId": "bob"}));
    let during = json!({"roomId": "pause", "targetId": "alice", "offer": {"n": 1}});
    let sent = tokio::spawn(async move {
        let ack = bob.ack("offer", during).await;
        (bob, ack)
    });
    b.signal("CONT");
    log_starting(&mut b, "this instance's heartbeat had lapsed");
    let (mut bob, ack) = sent.await.unwrap();
    assert_eq!(alice.expect("user-joined").await, json!({"roomId": "pause", "userId": "bob"}));
    if ack["ok"] == true {
        assert_eq!(alice.expect("offer").await["offer"], json!({"n": 1}), "delivered after user-joined");
    } else {
        assert_eq!(ack["error"]["code"], "not-in-room", "{ack}");
    }
    holds(&a, "pause", &["alice", "bob"]).await;
    let after = json!({"roomId": "pause", "targetId": "alice", "offer": {"n": 2}});
    assert_eq!(bob.ack("offer", after).await["ok"], true);
    assert_eq!(alice.expect("offer").await["offer"], json!({"n": 2}));
    alice.emit("answer", json!({"roomId": "pause", "targetId": "bob", "answer": {"n": 2}})).await;
    assert_eq!(bob.expect_skipping("answer", &["user-left", "user-joined"]).await["senderId"], "alice");
}

/// Problem 7: a relay sent after a rejoin on another instance was acked
/// goes to the new connection, even when the sender's instance was stalled
/// with the relay and the announcement of the rejoin both in its backlog.
/// (Which of the two a resumed instance reads first is up to its scheduler;
/// here it has read the announcement first in every run, so the guard that
/// makes the order irrelevant, the route cache's stall ticker, is pinned by
/// the unit test `after_a_stall_nothing_is_served_until_the_announcements_sent_before_it_are_in`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_after_a_rejoin_elsewhere_reaches_the_new_connection_even_after_a_stall() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    // The default TTL: the stall below stays well within the heartbeat's window.
    let (mut x, y) =
        (instance(&redis, &[("INSTANCE_TTL_MS", "10000")]), instance(&redis, &[("INSTANCE_TTL_MS", "10000")]));
    let x_id = instance_id(&mut x);
    let alice = Peer::joined_url(&ws(&x), Transport::Websocket, "rejoin", "alice").await;
    let mut old = Peer::joined_url(&ws(&y), Transport::Websocket, "rejoin", "bob").await;
    for n in 0..3 {
        // Routed once from Redis, then from x's cache.
        let offer = json!({"roomId": "rejoin", "targetId": "bob", "offer": {"n": n}});
        assert_eq!(alice.ack("offer", offer).await["ok"], true);
        assert_eq!(old.expect("offer").await["offer"], json!({"n": n}));
    }

    x.signal("STOP");
    // Announcements of other rooms queue up ahead of the rejoin's in x's
    // subscriber, as after any busy moment (fewer than its queue holds).
    let noise = "for i = 1, 10000 do redis.call('PUBLISH', ARGV[1], 'other-' .. i) end";
    redis_cli(&redis, &["EVAL", noise, "0", "{switchboard}:changed"]);
    let mut new = Peer::connect_to(&ws(&y), Transport::Websocket).await;
    let rejoined = new.ack("join-room", json!({"roomId": "rejoin", "userId": "bob"})).await;
    assert_eq!(rejoined["ok"], true, "{rejoined}");
    let offer = json!({"roomId": "rejoin", "targetId": "bob", "offer": {"after": "rejoin"}});
    let mut ack = alice.ack_later("offer", offer).await;
    // x stays stopped, the offer and the announcement of the rejoin both
    // waiting in its sockets, until it has missed a heartbeat (one a second):
    // a stall far longer than the route cache's 150 ms.
    let missed = || async { heartbeat_left(&redis, &x_id) < 8_800 };
    eventually("x has missed a heartbeat", missed).await;
    x.signal("CONT");
    let ack = tokio::time::timeout(WAIT, ack.recv()).await.expect("ack in time").expect("ack");
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(new.expect_skipping("offer", &["room-users"]).await["offer"], json!({"after": "rejoin"}));
    assert!(old.received_so_far().iter().all(|(e, _)| e != "offer"), "nothing went to the replaced connection");
}

/// Problem 4: joins and leaves acked while reconciles run are neither undone
/// nor resurrected. Stalls make both instances reconcile again and again
/// while clients join and leave; afterwards the room holds exactly those
/// whose last acked event was a join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_leaves_acked_while_reconciles_run_stay_as_acked() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let (a, b) = (instance(&redis, &[("INSTANCE_TTL_MS", "5000")]), instance(&redis, &[("INSTANCE_TTL_MS", "5000")]));
    let mut clients = Vec::new();
    for n in 0..8 {
        let server = if n % 2 == 0 { &a } else { &b };
        clients.push((format!("u{n}"), Peer::connect_to(&ws(server), Transport::Websocket).await, false));
    }
    let started = Instant::now();
    // Every client toggles at once each round (bounded: 60 rounds, or 8 s),
    // and every tenth round begins with a short stall (6 in all).
    let mut round = 0;
    while round < 60 && started.elapsed() < Duration::from_secs(8) {
        if round % 10 == 0 {
            redis_cli(&redis, &["CLIENT", "PAUSE", "400"]);
        }
        let toggles = clients.iter_mut().map(|(user, peer, seated)| async move {
            let ack = if *seated {
                peer.ack("leave-room", json!({"roomId": "race"})).await
            } else {
                peer.ack("join-room", json!({"roomId": "race", "userId": user.as_str()})).await
            };
            if ack["ok"] == true {
                *seated = !*seated;
            } else {
                assert_eq!(ack["error"]["code"], "unavailable", "{ack}");
            }
        });
        futures_util::future::join_all(toggles).await;
        round += 1;
    }
    let mut want: Vec<&str> = clients.iter().filter(|c| c.2).map(|c| c.0.as_str()).collect();
    want.sort();

    // One last stall, longer than an upkeep round and a timeout, so both instances reconcile after it
    // (a marker join on each first, so the reconcile awaited is that one).
    let mut servers = [a, b];
    for (n, server) in servers.iter_mut().enumerate() {
        let marker = format!("m{n}");
        let peer = Peer::connect_to(&ws(server), Transport::Websocket).await;
        // Refused `unavailable` until the instance has reached Redis again after the last stall.
        let joined =
            || async { peer.ack("join-room", json!({"roomId": "marker", "userId": marker})).await["ok"] == true };
        eventually("the marker joins", joined).await;
        tokio::task::block_in_place(|| {
            server.wait_log(|l| l["message"] == "joined room" && l["user_id"] == marker.as_str())
        });
    }
    redis_cli(&redis, &["CLIENT", "PAUSE", "2000"]);
    for server in servers.iter_mut() {
        log_starting(server, "reconciled with Redis");
    }
    for server in &servers {
        holds(server, "race", &want).await;
    }
}

/// Problem 5: under `CLIENT PAUSE WRITE` (what a failover does), a join and
/// a relay answered `unavailable` never take effect afterwards; the join
/// retried once Redis is back is announced as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_answered_unavailable_under_a_write_pause_never_take_effect() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let (mut a, mut b) =
        (instance(&redis, &[("INSTANCE_TTL_MS", "5000")]), instance(&redis, &[("INSTANCE_TTL_MS", "5000")]));
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "failover", "alice").await;
    let bob = Peer::joined_url(&ws(&b), Transport::Websocket, "failover", "bob").await;
    alice.expect("user-joined").await;
    let carol = Peer::connect_to(&ws(&a), Transport::Websocket).await;

    redis_cli(&redis, &["CLIENT", "PAUSE", "1500", "WRITE"]);
    let join = carol.ack("join-room", json!({"roomId": "failover", "userId": "carol"})).await;
    assert_eq!(join["error"]["code"], "unavailable", "{join}");
    let offer =
        bob.ack("offer", json!({"roomId": "failover", "targetId": "alice", "offer": {"during": "pause"}})).await;
    assert_eq!(offer["error"]["code"], "unavailable", "{offer}");
    for server in [&mut a, &mut b] {
        log_starting(server, "reconciled with Redis");
    }
    holds(&a, "failover", &["alice", "bob"]).await;
    let after = json!({"roomId": "failover", "targetId": "alice", "offer": {"after": "pause"}});
    assert_eq!(bob.ack("offer", after).await["ok"], true);
    assert_eq!(alice.expect("offer").await["offer"], json!({"after": "pause"}), "the refused offer never came");
    let join = carol.ack("join-room", json!({"roomId": "failover", "userId": "carol"})).await;
    assert_eq!(join["ok"], true, "{join}");
    assert_eq!(alice.expect("user-joined").await["userId"], "carol");
}

/// Build 8 (problem 11): a connection's events each wait at most one
/// `REDIS_TIMEOUT_MS`. Once a call has failed, the events queued behind it
/// are answered `unavailable` at once, instead of each waiting out its own
/// timeout (20 joins x 300 ms would outlast this 4 s stall, and the last
/// ones would then be applied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_behind_a_stalled_one_are_answered_at_once() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let a = instance(&redis, &[("INSTANCE_TTL_MS", "10000")]);
    let mut carol = Peer::connect_to(&ws(&a), Transport::Websocket).await;
    redis_cli(&redis, &["CLIENT", "PAUSE", "4000"]);
    // Without acks: each refusal comes as a `signaling-error` (rust_socketio
    // loses some of many acks answered at once).
    for _ in 0..20 {
        carol.emit("join-room", json!({"roomId": "queued", "userId": "carol"})).await;
    }
    for n in 0..20 {
        let (event, data) = carol.next().await;
        assert_eq!((event.as_str(), &data["code"]), ("signaling-error", &json!("unavailable")), "join {n}: {data}");
    }
}

/// Problem 6: a persistent Redis back after downtime longer than the TTL
/// finds every heartbeat expired; survivors wait a whole TTL of their own
/// beats before taking anyone for dead, so nobody sees live users leave.
/// (The heartbeats are made to expire first, with both instances stopped,
/// so the downtime need not be timed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_redis_back_after_downtime_reaps_nobody_alive() {
    let dir = std::env::temp_dir().join(format!("switchboard-aof-{}-{}", std::process::id(), line!()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut redis = tokio::task::block_in_place(|| {
        RedisProcess::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--dir", &dir_arg])
    });
    let (mut a, mut b) = (instance(&redis, &[]), instance(&redis, &[]));
    let ids = [instance_id(&mut a), instance_id(&mut b)];
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "aof", "alice").await;
    let mut bob = Peer::joined_url(&ws(&b), Transport::Websocket, "aof", "bob").await;
    alice.expect("user-joined").await;

    for server in [&a, &b] {
        server.signal("STOP");
    }
    let expired = || async { ids.iter().all(|id| heartbeat_left(&redis, id) < 0) };
    eventually("both heartbeats have expired", expired).await;
    tokio::task::block_in_place(|| redis.shutdown());
    for server in [&mut a, &mut b] {
        server.signal("CONT");
        log_starting(server, "Redis unreachable");
    }
    tokio::task::block_in_place(|| redis.restart());
    for server in [&mut a, &mut b] {
        log_starting(server, "reconciled with Redis");
    }
    // For two TTLs after the restart, relays flow and nobody is told anyone left.
    let back = Instant::now();
    let mut n = 0;
    while back.elapsed() < Duration::from_secs(2) && n < 200 {
        let offer = json!({"roomId": "aof", "targetId": "alice", "offer": {"n": n}});
        assert_eq!(bob.ack("offer", offer).await["ok"], true);
        let (event, data) = alice.next().await;
        assert_eq!((event.as_str(), &data["offer"]), ("offer", &json!({"n": n})), "{event} {data}");
        n += 1;
    }
    assert!(bob.received_so_far().iter().all(|(e, _)| e != "user-left"));
    holds(&a, "aof", &["alice", "bob"]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Problem 10: `kill -9` still empties the dead instance's rooms within the
/// bound, and nothing of it stays in Redis: no key named after it, no mesh
/// client and no device endpoint it registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_leaves_no_key_behind() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let a = instance(&redis, &[]);
    let mut b = instance(&redis, &[]);
    let id = instance_id(&mut b);
    let mut alice = Peer::joined_url(&ws(&a), Transport::Websocket, "k9", "alice").await;
    let _bob = Peer::joined_url(&ws(&b), Transport::Websocket, "k9", "bob").await;
    alice.expect("user-joined").await;
    let mut ann = mesh_member(&a, "acme", "ann", "").await;
    let _bea = mesh_member(&b, "acme", "bea", "").await;
    ann.wait_for("client-list-update", |u| ids(u) == ["ann", "bea"]).await;
    let announce = json!({ "peerId": "peer_b", "signalAddress": "wss://s.example/x" });
    let announced =
        reqwest::Client::new().post(format!("{}/network/home/announce", b.url)).json(&announce).send().await;
    assert_eq!(announced.unwrap().status(), 200);
    let _device = crate::helpers::Device::connect(&ws(&b), "peer_b").await;
    let endpoint = || redis_cli(&redis, &["GET", "{switchboard}:d:at:peer_b"]);
    assert!(endpoint().contains(&id), "registered: {}", endpoint());

    tokio::task::block_in_place(|| b.kill());
    assert_eq!(alice.expect("user-left").await, json!({"roomId": "k9", "userId": "bob"}));
    let gone = || async {
        let keys = redis_cli(&redis, &["KEYS", &format!("*{id}*")]);
        let listed = redis_cli(&redis, &["SMEMBERS", "{switchboard}:instances"]);
        let mesh = redis_cli(&redis, &["HKEYS", "{switchboard}:m:org:acme"]);
        keys.trim().is_empty() && !listed.contains(&id) && !mesh.contains("bea") && endpoint().trim().is_empty()
    };
    eventually("no key, instance entry, mesh record or endpoint of the dead instance is left", gone).await;
    assert!(redis_cli(&redis, &["HKEYS", "{switchboard}:m:org:acme"]).contains("ann"), "the live member stays");
}

/// A `/mesh` member of `org` on `server`.
async fn mesh_member(server: &Running, org: &str, id: &str, capabilities: &str) -> Peer {
    let url = format!("{}/?organizationId={org}&clientId={id}&capabilities={capabilities}", server.url);
    Peer::connect_ns(&url, "/mesh", None).await
}

fn ids(update: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = update["clients"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort();
    ids
}

/// Problem 8: after Redis lost its data, `/mesh` is rebuilt from the live
/// connections: the client list is whole again, messages reach their
/// targets, and an admin is elected, without anyone reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_is_rebuilt_after_redis_loses_its_data() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let (mut a, mut b) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut ann = mesh_member(&a, "acme", "ann", "admin.manage").await;
    let mut bob = mesh_member(&b, "acme", "bob", "location.view").await;
    bob.wait_for("client-list-update", |u| ids(u) == ["ann", "bob"]).await;
    assert_eq!(bob.wait_for("admin-elected", |_| true).await["adminId"], "ann");
    ann.wait_for("client-list-update", |u| ids(u) == ["ann", "bob"]).await;

    lose_redis_data(&mut redis, &mut [&mut a, &mut b]);
    // Each instance sends the list again once it has put its members back.
    ann.wait_for("client-list-update", |u| ids(u) == ["ann", "bob"]).await;
    let sent = bob.ack("peer-message", json!({"data": {"targetId": "ann", "message": {"after": "loss"}}})).await;
    assert_eq!(sent, json!({"ok": true}));
    assert_eq!(ann.wait_for("peer-message", |_| true).await["message"], json!({"after": "loss"}));
    assert_eq!(bob.wait_for("admin-elected", |_| true).await["adminId"], "ann", "elected again");
}

/// Problem 8, `/devices`: after Redis lost its data, the endpoints of live
/// device connections are put back, so a signal to a connected device is
/// pushed to it at once (once its owner has announced it again: presence
/// records are the client's to renew).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_connections_are_found_again_after_redis_loses_its_data() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let (mut a, mut b) = (instance(&redis, &[]), instance(&redis, &[]));
    let announce = |server: &Running, peer: &str| {
        let url = format!("{}/network/home/announce", server.url);
        let body = json!({ "peerId": peer, "signalAddress": "wss://s.example/x" });
        async move { reqwest::Client::new().post(url).json(&body).send().await.unwrap().status().as_u16() }
    };
    for peer in ["peer_a", "peer_b"] {
        assert_eq!(announce(&a, peer).await, 200);
    }
    let sender = crate::helpers::Device::connect(&ws(&a), "peer_a").await;
    let mut receiver = crate::helpers::Device::connect(&ws(&b), "peer_b").await;
    assert_eq!(sender.signal("peer_b", json!({ "n": 1 })).await, "delivered");
    assert_eq!(receiver.next_signal(WAIT).await["data"], json!({ "n": 1 }));

    lose_redis_data(&mut redis, &mut [&mut a, &mut b]);
    for peer in ["peer_a", "peer_b"] {
        assert_eq!(announce(&b, peer).await, 200);
    }
    assert_eq!(sender.signal("peer_b", json!({ "n": 2 })).await, "delivered", "peer_b's connection is known again");
    assert_eq!(receiver.next_signal(WAIT).await["data"], json!({ "n": 2 }));
    sender.disconnect().await;
    receiver.disconnect().await;
}

/// Problem 8, `/workers`: after Redis lost its data, a worker is back in
/// the pool with its next heartbeat (its record is put back if missing).
/// Also: no instance logs a warning about its own pub/sub channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_back_in_the_pool_with_its_next_heartbeat_after_redis_loses_its_data() {
    let mut redis = tokio::task::block_in_place(RedisProcess::start);
    let env = [("WORKER_KEY", "k"), ("WORKER_HEALTH_TIMEOUT", "60000")];
    let mut a = instance(&redis, &env);
    let auth = json!({"key": "k", "workerId": "w1", "region": "eu", "capacity": 10});
    let worker = Peer::connect_ns(&ws(&a), "/workers", Some(auth)).await;
    assert_eq!(worker.ack("heartbeat", json!({})).await, json!({"ok": true}));
    let url = format!("{}/bootstrap", a.url);
    let bootstrap = || async {
        let response = reqwest::Client::new().post(&url).send().await.unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(bootstrap().await.1["workerId"], "w1");

    lose_redis_data(&mut redis, &mut [&mut a]);
    assert_eq!(bootstrap().await.0, 503, "the pool was lost with Redis's data");
    assert_eq!(worker.ack("heartbeat", json!({})).await, json!({"ok": true}));
    assert_eq!(bootstrap().await.1["workerId"], "w1");
    let warned = a.seen.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("no handler")));
    assert!(!warned, "no adapter warnings about own channels");
}
