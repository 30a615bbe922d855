//! `GET /metrics`: Prometheus text (parsed by `prometheus-parse`) whose
//! figures move as connections, relays, announcements and device signals happen.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::json;
use switchboard::config::{JwtConfig, Secret};

use crate::helpers::{Device, Peer, TestApp, Transport, eventually, jwt, spawn_app_with, unix_now};

/// The scrape, parsed; fails the test if it is not Prometheus text.
async fn scrape(app: &TestApp, token: Option<&str>) -> Scrape {
    let mut request = reqwest::Client::new().get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    assert!(!scrape.samples.is_empty(), "{text}");
    for family in ["switchboard_relays_total", "switchboard_signals_total", "switchboard_active_devices"] {
        assert!(scrape.docs.contains_key(family), "{family} has HELP text");
    }
    scrape
}

/// The value of `name` with the label `label`=`value` (or unlabelled with `None`).
fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let sample: &Sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("{name} {label:?} in the scrape"));
    match sample.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
        ref other => panic!("{name} is a plain value, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_relays_devices_and_signals() {
    let app = spawn_app_with(|c| {
        c.presence.signal_ttl = Duration::from_millis(300);
        c.presence.expiry_interval = Duration::from_millis(100);
        c.presence.min_coordinators = 1;
        c.presence.coordinator_interval = Duration::from_millis(100);
    })
    .await;
    let before = scrape(&app, None).await;
    assert_eq!(value(&before, "switchboard_relays_total", Some(("event", "offer"))), 0.0);
    assert_eq!(value(&before, "switchboard_connections", None), 0.0);

    let alice = Peer::joined(&app, Transport::Websocket, "m", "alice").await;
    let mut bob = Peer::joined(&app, Transport::Websocket, "m", "bob").await;
    let ack = alice.ack("offer", json!({"roomId": "m", "targetId": "bob", "offer": {"sdp": "v=0"}})).await;
    assert_eq!(ack["ok"], true);
    bob.expect("offer").await;
    let after_relay = scrape(&app, None).await;
    assert_eq!(value(&after_relay, "switchboard_relays_total", Some(("event", "offer"))), 1.0);
    assert_eq!(value(&after_relay, "switchboard_relays_total", Some(("event", "answer"))), 0.0);
    assert_eq!(value(&after_relay, "switchboard_connections", None), 2.0);
    assert_eq!(value(&after_relay, "switchboard_rooms", None), 1.0);
    assert_eq!(value(&after_relay, "switchboard_websocket_connections", None), 2.0);

    for peer in ["peer_one", "peer_two"] {
        let body = json!({ "peerId": peer, "signalAddress": "wss://s.example/x", "capabilities": ["relay"] });
        assert_eq!(app.request("POST", "/network/home/announce", Some(body), None).await.0, 200);
    }
    let one = Device::connect(&app.url("/"), "peer_one").await;
    assert_eq!(one.signal("peer_two", json!({ "sdp": "v=0" })).await, "queued");
    let two = Device::connect(&app.url("/"), "peer_two").await;
    assert_eq!(one.signal("peer_two", json!({ "sdp": "v=0" })).await, "delivered");
    let live = scrape(&app, None).await;
    assert_eq!(value(&live, "switchboard_signals_total", Some(("outcome", "queued"))), 1.0);
    assert_eq!(value(&live, "switchboard_signals_total", Some(("outcome", "delivered"))), 1.0);
    assert_eq!(value(&live, "switchboard_active_devices", None), 2.0);
    assert_eq!(value(&live, "switchboard_active_networks", None), 1.0);
    assert_eq!(value(&live, "switchboard_websocket_connections", None), 4.0, "every namespace counts");
    eventually("a coordinator promoted in home", || async {
        value(&scrape(&app, None).await, "switchboard_coordinators", Some(("network", "home"))) == 1.0
    })
    .await;
    // This client never confirms, so both signals expire and their sender is told.
    eventually("both signals expired", || async {
        let s = scrape(&app, None).await;
        value(&s, "switchboard_signals_total", Some(("outcome", "expired"))) == 2.0
            && value(&s, "switchboard_queued_signals", None) == 0.0
    })
    .await;
    for client in [one, two] {
        client.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_metrics_need_a_token() {
    let key = "metrics-secret";
    let app =
        spawn_app_with(|c| c.jwt = Some(JwtConfig { secret: Secret(key.into()), audience: None, issuer: None })).await;
    let (status, _, body) = app.request("GET", "/metrics", None, None).await;
    assert_eq!((status, body["error"]["code"].clone()), (401, json!("unauthorized")), "{body}");
    let token = jwt(&json!({ "sub": "ops", "exp": unix_now() + 60 }), key);
    scrape(&app, Some(&token)).await;
}
