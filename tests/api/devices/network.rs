//! Issue 17, problem 7: device networks had no membership: any token listed
//! any network's peers (user ids, signal addresses) and signaled into it.
//! With `DEVICE_NETWORK_CLAIM` set, a token announces into, lists and
//! signals within only the networks its claim names (`403 forbidden`, or a
//! `forbidden` ack, otherwise); unset, networks stay open as in seed 004.

use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};

use super::{KEY, announcement};
use crate::helpers::{Device, TestApp, jwt, spawn_app_with, unix_now};

/// A JWT server; `claim` is `DEVICE_NETWORK_CLAIM`.
async fn with_claim(claim: Option<&str>) -> TestApp {
    spawn_app_with(|c| {
        c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: None, issuer: None });
        c.presence.network_claim = claim.map(str::to_owned);
    })
    .await
}

/// A token for `sub` whose `networks` claim is `networks` (none if `Null`).
fn member_of(sub: &str, networks: Value) -> String {
    let mut claims = json!({ "sub": sub, "exp": unix_now() + 600 });
    if !networks.is_null() {
        claims["networks"] = networks;
    }
    jwt(&claims, KEY)
}

async fn announce(app: &TestApp, network: &str, peer: &str, token: &str) -> (u16, Value) {
    let path = format!("/network/{network}/announce");
    let (status, _, body) = app.request("POST", &path, Some(announcement(peer, json!([]))), Some(token)).await;
    (status, body)
}

fn forbidden(status: u16, body: &Value) -> bool {
    status == 403 && body["error"]["code"] == "forbidden" && body["error"]["message"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_network_claim_a_token_outside_the_network_cannot_announce_list_or_look_up_its_peers() {
    let app = with_claim(Some("networks")).await;
    let alice = member_of("alice", json!("home"));
    let mallory = member_of("mallory", json!(["work", "lab"]));
    let eve = member_of("eve", Value::Null);
    assert_eq!(announce(&app, "home", "peer_alice", &alice).await.0, 200);

    for (who, token) in [("mallory", &mallory), ("eve", &eve)] {
        let (status, body) = announce(&app, "home", &format!("peer_{who}"), token).await;
        assert!(forbidden(status, &body), "{who} announces into home: {status} {body}");
        for path in ["/network/home/peers", "/network/home/peer/alice"] {
            let (status, _, body) = app.request("GET", path, None, Some(token)).await;
            assert!(forbidden(status, &body), "{who} GET {path}: {status} {body}");
            assert!(!body.to_string().contains("signal.example"), "nothing of the network leaks: {body}");
        }
    }
    // Within its claim each works: a comma list names several networks.
    assert_eq!(announce(&app, "lab", "peer_mallory", &mallory).await.0, 200);
    let (status, _, peers) = app.request("GET", "/network/home/peers", None, Some(&alice)).await;
    assert_eq!((status, peers["peers"][0]["deviceId"].clone()), (200, json!("peer_alice")), "{peers}");
    let (status, _, found) = app.request("GET", "/network/home/peer/alice", None, Some(&alice)).await;
    assert_eq!((status, found["online"].clone()), (200, json!(true)), "{found}");
    let both = member_of("bob", json!("home, work"));
    assert_eq!(announce(&app, "work", "peer_bob", &both).await.0, 200);
    assert_eq!(announce(&app, "home", "peer_bob", &both).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_network_claim_a_device_signals_only_within_a_network_its_token_names() {
    let app = with_claim(Some("networks")).await;
    let home = member_of("alice", json!(["home"]));
    assert_eq!(announce(&app, "home", "peer_alice", &home).await.0, 200);
    assert_eq!(announce(&app, "home", "peer_bob", &member_of("bob", json!("home"))).await.0, 200);

    // Alice's own device, but a token of hers that does not name home.
    let elsewhere = member_of("alice", json!("work"));
    let outside = Device::connect_with(&app.url("/"), json!({ "deviceId": "peer_alice", "token": elsewhere })).await;
    let refused = outside.signal_ack("peer_bob", json!({ "sdp": "x" })).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    outside.disconnect().await;

    let inside = Device::connect_with(&app.url("/"), json!({ "deviceId": "peer_alice", "token": home })).await;
    let sent = inside.signal_ack("peer_bob", json!({ "sdp": "y" })).await;
    assert_eq!((sent["ok"].clone(), sent["status"].clone()), (json!(true), json!("queued")), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_network_claim_networks_stay_open_to_every_token_as_in_seed_004() {
    let app = with_claim(None).await;
    let eve = member_of("eve", Value::Null);
    assert_eq!(announce(&app, "home", "peer_alice", &member_of("alice", Value::Null)).await.0, 200);
    assert_eq!(announce(&app, "home", "peer_eve", &eve).await.0, 200);
    let (status, _, peers) = app.request("GET", "/network/home/peers", None, Some(&eve)).await;
    assert_eq!((status, peers["peers"].as_array().map(Vec::len)), (200, Some(2)), "{peers}");
    let (status, _, found) = app.request("GET", "/network/home/peer/alice", None, Some(&eve)).await;
    assert_eq!((status, found["online"].clone()), (200, json!(true)), "{found}");
    let device = Device::connect_with(&app.url("/"), json!({ "deviceId": "peer_eve", "token": eve })).await;
    assert_eq!(device.signal("peer_alice", json!({ "sdp": "z" })).await, "queued");
}
