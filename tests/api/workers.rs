//! Worker routing (seed 002): workers register on `/workers` with the shared
//! key, `GET /workers` lists them, `POST /bootstrap` picks one, and clients on
//! `/edge` signal their worker through the server.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::{Config, JwtConfig, Secret};

use crate::helpers::{Peer, TestApp, eventually, jwt, namespace_outcome, spawn_app_with, unix_now};

const KEY: &str = "worker-test-key";

/// The worker key set, and workers healthy for a minute without a heartbeat
/// (these tests do not heartbeat on a timer).
fn with_key(c: &mut Config) {
    c.workers.key = Some(Secret(KEY.into()));
    c.workers.health_timeout = Duration::from_secs(60);
}

async fn worker(app: &TestApp, id: &str, region: &str, capacity: u32) -> Peer {
    let auth = json!({"key": KEY, "workerId": id, "region": region, "capacity": capacity});
    Peer::connect_ns(&app.url("/"), "/workers", Some(auth)).await
}

async fn bootstrap(app: &TestApp) -> (u16, Value) {
    let (status, _, body) = app.request("POST", "/bootstrap", None, None).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_worker_is_listed_by_get_workers_and_chosen_by_bootstrap() {
    let app = spawn_app_with(with_key).await;
    let w = worker(&app, "w-1", "eu-west", 40).await;
    assert_eq!(w.ack("heartbeat", json!({})).await, json!({"ok": true}));

    let (status, pool) = app.get("/workers").await;
    assert_eq!(status, 200, "{pool}");
    let listed = &pool["workers"][0];
    assert_eq!(pool["workers"].as_array().unwrap().len(), 1, "{pool}");
    assert_eq!(
        [listed["workerId"].clone(), listed["region"].clone(), listed["capacity"].clone(), listed["healthy"].clone()],
        [json!("w-1"), json!("eu-west"), json!(40), json!(true)],
        "{pool}"
    );
    assert!(listed["lastSeen"].is_u64(), "{pool}");
    assert_eq!(pool["ring"], json!({"replicas": 150, "virtualNodes": 150, "healthy": 1}));

    let (status, chosen) = bootstrap(&app).await;
    assert_eq!(status, 200, "{chosen}");
    assert_eq!(
        chosen,
        json!({"workerId": "w-1", "region": "eu-west", "capacity": 40, "clientIp": "127.0.0.1", "signaling": "/edge"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_client_and_its_worker_exchange_signals_through_the_server() {
    let app = spawn_app_with(with_key).await;
    let mut w = worker(&app, "w-sig", "us-west", 100).await;
    let mut client = Peer::connect_ns(&app.url("/"), "/edge", None).await;
    let welcome = client.expect("welcome").await;
    let client_id = welcome["clientId"].as_str().expect("a client id").to_owned();

    let offer = json!({"to": "w-sig", "type": "offer", "data": {"sdp": "o"}});
    assert_eq!(client.ack("signal", offer).await, json!({"ok": true}));
    assert_eq!(w.expect("signal").await, json!({"from": client_id, "type": "offer", "data": {"sdp": "o"}}));

    let answer = json!({"to": client_id, "type": "answer", "data": {"sdp": "a"}});
    assert_eq!(w.ack("signal", answer).await, json!({"ok": true}));
    assert_eq!(client.expect("signal").await, json!({"from": "w-sig", "type": "answer", "data": {"sdp": "a"}}));
    let candidate = json!({"to": client_id, "type": "ice-candidate", "data": {"candidate": "c"}});
    w.ack("signal", candidate).await;
    assert_eq!(
        client.expect("signal").await,
        json!({"from": "w-sig", "type": "ice-candidate", "data": {"candidate": "c"}})
    );

    let nobody = client.ack("signal", json!({"to": "w-none", "type": "offer", "data": {}})).await;
    assert_eq!(nobody["error"]["code"], "target-not-found", "{nobody}");
    let not_a_kind = client.ack("signal", json!({"to": "w-sig", "type": "hello", "data": {}})).await;
    assert_eq!(not_a_kind["error"]["code"], "invalid-payload", "{not_a_kind}");
}

/// Issue 17, problem 11: worker-key guesses are limited per address: after
/// a burst of five wrong keys, the address is refused whatever it sends
/// (the right key included) until its allowance refills (one every 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_key_guesses_from_one_address_are_limited() {
    let app = spawn_app_with(with_key).await;
    for n in 0..5 {
        let auth = json!({"key": format!("guess-{n}"), "workerId": "w"});
        let (_, message) = namespace_outcome(&app.url("/"), "/workers", Some(auth)).await;
        assert!(message.as_str().unwrap().contains("wrong or missing worker key"), "guess {n}: {message}");
    }
    for key in ["guess-5", KEY] {
        let auth = json!({"key": key, "workerId": "w"});
        let (outcome, message) = namespace_outcome(&app.url("/"), "/workers", Some(auth)).await;
        assert_eq!(outcome, "error", "{message}");
        assert!(message.as_str().unwrap().contains("too many wrong worker keys"), "{key}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_worker_key_is_refused_with_the_reason() {
    let app = spawn_app_with(with_key).await;
    for auth in [json!({"workerId": "w"}), json!({"key": "nope", "workerId": "w"})] {
        let (outcome, message) = namespace_outcome(&app.url("/"), "/workers", Some(auth.clone())).await;
        assert_eq!(outcome, "error", "{auth}: {message}");
        assert!(message.as_str().unwrap().contains("wrong or missing worker key"), "{auth}: {message}");
    }
    let (status, pool) = app.get("/workers").await;
    assert_eq!((status, pool["workers"].clone()), (200, json!([])), "no refused worker is listed");

    // Without WORKER_KEY on the server no worker is admitted, whatever it sends.
    let keyless = spawn_app_with(|_| {}).await;
    let auth = json!({"key": "", "workerId": "w"});
    let (outcome, message) = namespace_outcome(&keyless.url("/"), "/workers", Some(auth)).await;
    assert_eq!(outcome, "error", "{message}");
    assert!(message.as_str().unwrap().contains("WORKER_KEY is not set"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_worker_bootstrap_is_a_503_no_workers_and_again_after_the_last_one_leaves() {
    let app = spawn_app_with(with_key).await;
    let (status, none) = bootstrap(&app).await;
    assert_eq!((status, none["error"]["code"].clone()), (503, json!("no-workers")), "{none}");

    let w = worker(&app, "w-only", "eu-west", 10).await;
    assert_eq!(bootstrap(&app).await.1["workerId"], "w-only");
    w.disconnect().await;
    let refused = || async {
        let (status, body) = bootstrap(&app).await;
        (status, body["error"]["code"].clone()) == (503, json!("no-workers"))
    };
    eventually("bootstrap refuses once the only worker has left", refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_an_edge_client_needs_a_token() {
    let secret = "edge-secret";
    let app = spawn_app_with(|c| {
        with_key(c);
        c.jwt = Some(JwtConfig { secret: Secret(secret.into()), audience: None, issuer: None });
    })
    .await;
    let (outcome, message) = namespace_outcome(&app.url("/"), "/edge", None).await;
    assert_eq!(outcome, "error", "{message}");
    assert!(message.as_str().unwrap().contains("unauthorized"), "{message}");
    let token = jwt(&json!({"sub": "cleo", "exp": unix_now() + 600}), secret);
    let mut client = Peer::connect_ns(&app.url("/"), "/edge", Some(json!({"token": token}))).await;
    assert!(client.expect("welcome").await["clientId"].is_string());
}
