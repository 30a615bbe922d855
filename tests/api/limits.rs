//! Per-connection and per-address limits, each with its clear error.

use serde_json::{Value, json};
use switchboard::domain::net::Cidr;

use crate::helpers::{Peer, TestApp, Transport, eventually, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_may_be_in_max_rooms_per_connection_rooms() {
    let app = spawn_app_with(|c| c.max_rooms_per_connection = 2).await;
    let mut peer = Peer::joined(&app, Transport::Websocket, "one", "u").await;
    assert_eq!(peer.ack("join-room", json!({"roomId": "two", "userId": "u"})).await["ok"], true);
    peer.expect("room-users").await;
    let third = peer.ack("join-room", json!({"roomId": "three", "userId": "u"})).await;
    assert_eq!(third["error"]["code"], "rate-limited", "{third}");
    assert!(third["error"]["message"].as_str().unwrap().contains("2 rooms"));
    assert_eq!(peer.ack("join-room", json!({"roomId": "two", "userId": "u"})).await["ok"], true, "a room it is in");
    peer.expect("room-users").await;
    peer.ack("leave-room", json!({"roomId": "one"})).await;
    assert_eq!(peer.ack("join-room", json!({"roomId": "three", "userId": "u"})).await["ok"], true);
}

async fn first_outcome(app: &TestApp, forwarded_for: Option<&str>) -> (String, Value) {
    let headers: Vec<(&str, &str)> = forwarded_for.map(|xff| ("X-Forwarded-For", xff)).into_iter().collect();
    crate::helpers::connect_outcome(&app.url("/"), None, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_connection_from_one_address_is_refused_until_one_closes() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 2).await;
    let first = Peer::connect(&app, Transport::Websocket).await;
    let _second = Peer::connect(&app, Transport::Polling).await;
    let (outcome, detail) = first_outcome(&app, None).await;
    assert_eq!(outcome, "error", "{detail}");
    assert!(detail.as_str().unwrap().contains("too many connections"), "{detail}");
    first.disconnect().await;
    let health = || async { app.get("/health").await.1["connections"] == 1 };
    eventually("the first connection is counted out", health).await;
    assert_eq!(first_outcome(&app, None).await.0, "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let trusting = spawn_app_with(|c| {
        c.max_connections_per_ip = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    })
    .await;
    assert_eq!(first_outcome(&trusting, Some("198.51.100.1")).await.0, "open");
    assert_eq!(first_outcome(&trusting, Some("198.51.100.2")).await.0, "open", "another client behind the proxy");
    assert_eq!(first_outcome(&trusting, Some("198.51.100.1")).await.0, "error", "the same client again");

    let untrusting = spawn_app_with(|c| c.max_connections_per_ip = 1).await;
    assert_eq!(first_outcome(&untrusting, Some("198.51.100.1")).await.0, "open");
    assert_eq!(first_outcome(&untrusting, Some("198.51.100.2")).await.0, "error", "a claimed address is ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_requests_past_the_limit_get_429_with_retry_after_and_health_is_exempt() {
    let app = spawn_app_with(|c| c.rest_rate = (1, 3)).await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/rooms").await.0, 200);
    }
    let response = reqwest::get(app.url("/api/rooms")).await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate-limited");
    for _ in 0..10 {
        assert_eq!(app.get("/health").await.0, 200, "/health is never limited");
    }
}

/// Issue 17, problem 4: behind a trusted proxy a client cannot pass as
/// another address. Every `X-Forwarded-For` line is read (the client's own
/// first line changes nothing), a port on a hop is read, a hop that cannot
/// be read stops at the proxy, and IPv6 clients are counted per /64. Shown
/// on the per-address REST limit (one request per address here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_pass_as_another_address_behind_a_trusted_proxy() {
    let app = spawn_app_with(|c| {
        c.rest_rate = (1, 1);
        c.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    })
    .await;
    let status = |lines: &'static [&'static str]| {
        let url = app.url("/api/rooms");
        async move {
            let mut request = reqwest::Client::new().get(url);
            for line in lines {
                request = request.header("X-Forwarded-For", *line);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(&["6.6.6.6", "198.51.100.1"]).await, 200);
    assert_eq!(status(&["7.7.7.7", "198.51.100.1"]).await, 429, "the proxy's line names the client, not the first");
    assert_eq!(status(&["198.51.100.2"]).await, 200, "another client");
    assert_eq!(status(&["6.6.6.6, 198.51.100.3:5555"]).await, 200);
    assert_eq!(status(&["8.8.8.8, 198.51.100.3"]).await, 429, "the same client, with or without a port");
    assert_eq!(status(&["198.51.100.9, unknown"]).await, 200, "counted as the proxy");
    assert_eq!(status(&["198.51.100.10, unknown"]).await, 429, "still the proxy, whatever the client wrote");
    assert_eq!(status(&["2001:db8:0:5::1"]).await, 200);
    assert_eq!(status(&["2001:db8:0:5::2"]).await, 429, "the same /64");
    assert_eq!(status(&["2001:db8:0:6::1"]).await, 200, "another /64");
    assert_eq!(status(&["::ffff:198.51.100.2"]).await, 429, "a v4-mapped address is its IPv4 address");
}
