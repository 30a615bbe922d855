//! The demo page, the socket.io client bundle, and the ICE servers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard::domain::ice::IceConfig;

use crate::helpers::{Peer, Transport, spawn_app_with};

/// A WEB_DIR with an index page and, if asked, a (fake) client bundle
/// installed where switchboard once read it (it no longer does).
fn web_dir(with_bundle: bool) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-web-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>demo-marker</title>").unwrap();
    if with_bundle {
        let dist = dir.join("node_modules/socket.io-client/dist");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("socket.io.min.js"), "/* bundle-marker */").unwrap();
    }
    dir
}

/// The committed copy of the client bundle that the binary embeds.
fn vendored(name: &str) -> String {
    let path = format!("{}/web/vendor/socket.io-client/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_client_bundle_are_served_and_misses_stay_json() {
    let dir = web_dir(true);
    let app = spawn_app_with(|c| c.web_dir = dir.clone()).await;
    let page = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("demo-marker"));

    let bundle = reqwest::get(app.url("/socket.io/socket.io.min.js")).await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.headers()["content-type"].to_str().unwrap().starts_with("application/javascript"));
    assert_eq!(bundle.text().await.unwrap(), vendored("socket.io.min.js"), "the embedded bundle, not WEB_DIR's");

    let (status, body) = app.get("/no/such/file.js").await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("not-found")));
    // socket.io itself still answers under its path.
    let handshake = reqwest::get(app.url("/socket.io/?EIO=4&transport=polling")).await.unwrap();
    assert!(handshake.text().await.unwrap().starts_with("0{"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_bundle_comes_with_the_binary_without_npm_ci() {
    let dir = web_dir(false);
    let app = spawn_app_with(|c| c.web_dir = dir.clone()).await;
    for name in ["socket.io.min.js", "socket.io.js", "socket.io.esm.min.js", "socket.io.min.js.map"] {
        let response = reqwest::get(app.url(&format!("/socket.io/{name}"))).await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.text().await.unwrap(), vendored(name), "{name}");
    }
    // A file of the package that is not served falls through to socket.io, which refuses it.
    let other = reqwest::get(app.url("/socket.io/socket.io.msgpack.min.js")).await.unwrap();
    assert_eq!(other.status(), 400);
    std::fs::remove_dir_all(dir).unwrap();
}

pub fn turn_config() -> IceConfig {
    IceConfig {
        stun: vec!["stun:127.0.0.1:3478".into()],
        turn: vec!["turn:127.0.0.1:3478?transport=udp".into(), "turns:127.0.0.1:5349".into()],
        turn_secret: Some("s3cret".into()),
        turn_ttl: Duration::from_secs(600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_carry_turn_credentials_that_expire_after_the_ttl() {
    let app = spawn_app_with(|c| c.ice = turn_config()).await;
    let (status, body) = app.get("/api/ice-servers?userId=alice").await;
    assert_eq!(status, 200);
    assert_eq!(body["ttlSeconds"], 600);
    assert_eq!(body["iceServers"][0], json!({"urls": ["stun:127.0.0.1:3478"]}));
    let turn = &body["iceServers"][1];
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349"]));
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 595..=now + 605).contains(&expiry), "expiry {expiry} vs now {now}");
    assert_eq!(turn["credential"], switchboard::domain::ice::turn_credential("s3cret", username));

    let (status, body) = app.get(&format!("/api/ice-servers?userId={}", "x".repeat(129))).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("invalid-query")));
    let (_, nobody) = app.get("/api/ice-servers").await;
    assert!(nobody["iceServers"][1]["username"].as_str().unwrap().parse::<u64>().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_gets_the_ice_servers_on_connect() {
    let app = spawn_app_with(|c| c.ice = turn_config()).await;
    let url = format!("{}?userId=bob", app.url("/"));
    let peer = Peer::connect_to(&url, Transport::Websocket).await;
    let servers = &peer.ice_servers;
    assert_eq!(servers["iceServers"][1]["urls"][0], "turn:127.0.0.1:3478?transport=udp");
    assert!(servers["iceServers"][1]["username"].as_str().unwrap().ends_with(":bob"));
    // Without JWT the handshake's auth.userId names the user too (before the query's).
    let servers =
        Peer::connect_with_auth(&url, Transport::Websocket, Some(json!({"userId": "carol"}))).await.ice_servers;
    assert!(servers["iceServers"][1]["username"].as_str().unwrap().ends_with(":carol"), "{servers}");
    // Without STUN or TURN configured the list is empty, and still sent.
    let plain = spawn_app_with(|_| {}).await;
    let peer = Peer::connect(&plain, Transport::Polling).await;
    assert_eq!(peer.ice_servers, json!({"iceServers": [], "ttlSeconds": 3600}));
}
