//! Seed 004's REST API: presence announcements, peer discovery, the queue
//! routes' access rules and validation, with and without JWT.

mod bounds;
mod network;
mod owner;

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};
use switchboard::testing::RedisProcess;

use crate::helpers::{TestApp, eventually, jwt, spawn_app, spawn_app_with, unix_now};

const KEY: &str = "device-secret";

fn announcement(peer: &str, caps: Value) -> Value {
    json!({ "peerId": peer, "signalAddress": format!("wss://signal.example/{peer}"), "capabilities": caps })
}

fn token(sub: &str) -> String {
    jwt(&json!({ "sub": sub, "exp": unix_now() + 600 }), KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_devices_are_listed_per_network_and_networks_are_isolated() {
    let app = spawn_app().await;
    let announce = async |net: &str, body: Value| {
        let path = format!("/network/{net}/announce");
        app.request("POST", &path, Some(body), None).await
    };
    let (status, _, ok) = announce("home", json!({"userId": "alice", "peerId": "peer_alice_1", "signalAddress": "wss://s.example/a", "capabilities": ["relay", "store"]})).await;
    assert_eq!((status, ok["success"].clone(), ok["isCoordinator"].clone()), (200, json!(true), json!(false)), "{ok}");
    assert!(ok["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    announce("home", json!({"userId": "bob", "peerId": "peer_bob_1", "signalAddress": "ws://10.0.0.2:9/b", "capabilities": ["coordinator"]})).await;
    announce("work", announcement("peer_walt_1", json!([]))).await;

    let (status, _, home) = app.request("GET", "/network/home/peers", None, None).await;
    assert_eq!(status, 200);
    let peers = home["peers"].as_array().unwrap();
    let ids: Vec<&str> = peers.iter().map(|p| p["deviceId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["peer_alice_1", "peer_bob_1"], "work's device is not listed");
    assert_eq!(peers[0]["userId"], "alice");
    assert_eq!(peers[0]["capabilities"], json!(["relay", "store"]));
    assert_eq!(
        (peers[1]["isCoordinator"].clone(), peers[1]["signalAddress"].clone()),
        (json!(true), json!("ws://10.0.0.2:9/b"))
    );
    assert_eq!(app.request("GET", "/network/elsewhere/peers", None, None).await.2, json!({"peers": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_found_by_user_or_the_network_s_coordinators_are_offered() {
    let app = spawn_app().await;
    for (user, peer, caps) in [("alice", "peer_a", json!([])), ("kim", "peer_k", json!(["coordinator"]))] {
        let body = json!({"userId": user, "peerId": peer, "signalAddress": "wss://s.example/x", "capabilities": caps});
        assert_eq!(app.request("POST", "/network/home/announce", Some(body), None).await.0, 200);
    }
    let (status, _, alice) = app.request("GET", "/network/home/peer/alice", None, None).await;
    assert_eq!(status, 200);
    assert_eq!((alice["online"].clone(), alice["deviceId"].clone()), (json!(true), json!("peer_a")));
    let (_, _, nobody) = app.request("GET", "/network/home/peer/zed", None, None).await;
    assert_eq!(nobody, json!({"online": false, "lastSeen": null, "lastCoordinators": ["peer_k"]}));
    let (_, _, other) = app.request("GET", "/network/work/peer/alice", None, None).await;
    assert_eq!(other["online"], false, "alice is not in network work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_announcement_is_a_400_listing_every_failing_field() {
    let app = spawn_app().await;
    let body = json!({"peerId": "alice", "signalAddress": "https://s.example", "capabilities": ["relay", "admin"]});
    let (status, _, err) = app.request("POST", "/network/home-net/announce", Some(body), None).await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid-payload")), "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["networkId", "peerId", "signalAddress", "capabilities"]);
    assert!(err["errors"][3]["message"].as_str().unwrap().contains("admin"));

    let (status, _, missing) = app.request("POST", "/network/home/announce", Some(json!({})), None).await;
    assert_eq!(status, 400);
    assert_eq!(missing["errors"].as_array().unwrap().len(), 2, "peerId and signalAddress are required: {missing}");
    let (status, _, not_json) = app.request("POST", "/network/home/announce", Some(json!("text")), None).await;
    assert_eq!((status, not_json["error"]["code"].clone()), (400, json!("invalid-payload")));
    let long = format!("peer_{}", "x".repeat(96));
    assert_eq!(app.request("POST", "/network/home/announce", Some(announcement(&long, json!([]))), None).await.0, 400);
    assert_eq!(app.request("GET", "/network/home!/peers", None, None).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcing_faster_than_the_limit_gets_429_with_retry_after_per_device() {
    let app = spawn_app_with(|c| c.presence.announce_limit = (3, Duration::from_secs(60))).await;
    for _ in 0..3 {
        assert_eq!(
            app.request("POST", "/network/home/announce", Some(announcement("peer_a", json!([]))), None).await.0,
            200
        );
    }
    let (status, retry, body) =
        app.request("POST", "/network/home/announce", Some(announcement("peer_a", json!([]))), None).await;
    assert_eq!((status, body["error"]["code"].clone()), (429, json!("rate-limited")), "{body}");
    assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let other = app.request("POST", "/network/home/announce", Some(announcement("peer_b", json!([]))), None).await;
    assert_eq!(other.0, 200, "the limit is per device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_announcement_limit_holds_across_instances() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = crate::cluster::cluster(&redis, 2, |c| c.presence.announce_limit = (3, Duration::from_secs(60))).await;
    async fn announce(app: &TestApp) -> (u16, Option<String>, Value) {
        app.request("POST", "/network/home/announce", Some(announcement("peer_a", json!([]))), None).await
    }
    for app in [&apps[0], &apps[1], &apps[0]] {
        assert_eq!(announce(app).await.0, 200);
    }
    for app in &apps {
        let (status, retry, body) = announce(app).await;
        assert_eq!((status, body["error"]["code"].clone()), (429, json!("rate-limited")), "{body}");
        assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_devices_belong_to_the_token_s_user_and_only_it_reads_their_queue() {
    let app =
        spawn_app_with(|c| c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: None, issuer: None })).await;
    let (alice, mallory) = (token("alice"), token("mallory"));
    let body = || Some(announcement("peer_alice", json!([])));
    assert_eq!(app.request("POST", "/network/home/announce", body(), None).await.0, 401, "a token is required");
    for (method, path) in [
        ("GET", "/network/home/peers"),
        ("GET", "/network/home/peer/alice"),
        ("GET", "/signaling/messages/peer_alice"),
        ("DELETE", "/signaling/messages/peer_alice?upTo=1"),
    ] {
        assert_eq!(app.request(method, path, None, None).await.0, 401, "{method} {path} needs a token");
    }
    assert_eq!(app.request("POST", "/network/home/announce", body(), Some(&alice)).await.0, 200);
    let (status, _, taken) = app.request("POST", "/network/home/announce", body(), Some(&mallory)).await;
    assert_eq!((status, taken["error"]["code"].clone()), (403, json!("forbidden")), "{taken}");
    // Mallory's refused attempts past the limit (12 a minute) do not use up alice's allowance.
    for _ in 0..20 {
        app.request("POST", "/network/home/announce", body(), Some(&mallory)).await;
    }
    assert_eq!(app.request("POST", "/network/home/announce", body(), Some(&alice)).await.0, 200);
    let (_, _, peers) = app.request("GET", "/network/home/peers", None, Some(&mallory)).await;
    assert_eq!(peers["peers"][0]["userId"], "alice", "the user is the token's sub");

    let queue = "/signaling/messages/peer_alice";
    assert_eq!(app.request("GET", queue, None, Some(&mallory)).await.0, 403, "not mallory's device");
    assert_eq!(app.request("GET", "/signaling/messages/peer_unknown", None, Some(&alice)).await.0, 403);
    assert_eq!(app.request("GET", queue, None, Some(&alice)).await.2, json!({"messages": []}));
    assert_eq!(app.request("GET", &format!("{queue}?peek=true"), None, Some(&alice)).await.2, json!({"messages": []}));
    assert_eq!(app.request("DELETE", &format!("{queue}?upTo=7"), None, Some(&alice)).await.2, json!({"removed": 0}));
    let (status, _, no_up_to) = app.request("DELETE", queue, None, Some(&alice)).await;
    assert_eq!((status, no_up_to["errors"][0]["field"].clone()), (400, json!("upTo")));
    assert_eq!(app.request("DELETE", &format!("{queue}?upTo=1"), None, Some(&mallory)).await.0, 403);
}

/// The coordinators `/network/home/peers` lists, by device id.
async fn coordinators(app: &TestApp) -> Vec<String> {
    let (_, _, body) = app.request("GET", "/network/home/peers", None, None).await;
    let peers = body["peers"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> = peers
        .iter()
        .filter(|p| p["isCoordinator"] == true)
        .map(|p| p["deviceId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_keep_two_coordinators_per_network_and_replace_one_that_went_silent() {
    let app = std::sync::Arc::new(
        spawn_app_with(|c| {
            c.presence.device_ttl = Duration::from_millis(1500);
            c.presence.cleanup_interval = Duration::from_millis(100);
            c.presence.coordinator_interval = Duration::from_millis(100);
            c.presence.announce_limit = (1000, Duration::from_secs(60));
        })
        .await,
    );
    for peer in ["peer_a", "peer_b", "peer_c"] {
        assert_eq!(
            app.request("POST", "/network/home/announce", Some(announcement(peer, json!(["relay"]))), None).await.0,
            200
        );
    }
    eventually("the two earliest devices are promoted", || async { coordinators(&app).await == ["peer_a", "peer_b"] })
        .await;

    // peer_b and peer_c keep announcing (a bounded loop); peer_a goes silent.
    let keep_alive = {
        let app = app.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                for peer in ["peer_b", "peer_c"] {
                    app.request("POST", "/network/home/announce", Some(announcement(peer, json!(["relay"]))), None)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    eventually("peer_c replaces the silent peer_a", || async { coordinators(&app).await == ["peer_b", "peer_c"] })
        .await;
    keep_alive.abort();
}
