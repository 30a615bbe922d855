//! JWT on the handshake, on `join-room`, and on the REST routes that reveal rooms.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};

use crate::helpers::{TestApp, connect_outcome, spawn_app_with};

const KEY: &str = "test-secret";

fn token(sub: &str, exp_offset: i64, key: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"sub": sub, "exp": now + exp_offset, "aud": "switchboard"});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

async fn secured() -> TestApp {
    spawn_app_with(|c| {
        c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: Some("switchboard".into()), issuer: None })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_valid_token_connects_from_auth_header_or_query() {
    let app = secured().await;
    let url = app.url("/");
    let refused = |outcome: (String, Value), why: &str| {
        assert_eq!(outcome.0, "error", "{why}: {outcome:?}");
        assert!(outcome.1.as_str().unwrap().contains("unauthorized"), "{why}: {outcome:?}");
    };
    refused(connect_outcome(&url, None, &[]).await, "no token");
    refused(connect_outcome(&url, Some(json!({"token": token("a", 60, "wrong")})), &[]).await, "bad signature");
    refused(connect_outcome(&url, Some(json!({"token": token("a", -120, KEY)})), &[]).await, "expired");
    let ok = |outcome: (String, Value), how: &str| assert_eq!(outcome.0, "open", "{how}: {outcome:?}");
    ok(connect_outcome(&url, Some(json!({"token": token("a", 60, KEY)})), &[]).await, "auth.token");
    ok(connect_outcome(&url, Some(json!({"token": token("a", -5, KEY)})), &[]).await, "within the leeway");
    let bearer = format!("Bearer {}", token("a", 60, KEY));
    ok(connect_outcome(&url, None, &[("Authorization", bearer.as_str())]).await, "Authorization header");
    let query = format!("{url}?token={}", token("a", 60, KEY));
    ok(connect_outcome(&query, None, &[]).await, "token query parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_room_accepts_only_the_token_s_user() {
    let app = secured().await;
    let url = format!("{}?token={}", app.url("/"), token("alice", 60, KEY));
    let alice = crate::helpers::Peer::connect_to(&url, crate::helpers::Transport::Polling).await;
    let impostor = alice.ack("join-room", json!({"roomId": "r", "userId": "bob"})).await;
    assert_eq!(impostor["error"]["code"], "unauthorized", "{impostor}");
    assert_eq!(alice.ack("join-room", json!({"roomId": "r", "userId": "alice"})).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_routes_that_reveal_rooms_need_a_token_and_health_does_not() {
    let app = secured().await;
    for path in ["/api/rooms", "/api/rooms/r", "/api/ice-servers"] {
        let (status, body) = app.get(path).await;
        assert_eq!((status, body["error"]["code"].clone()), (401, json!("unauthorized")), "{path}");
    }
    let http = reqwest::Client::new();
    let with_token = http.get(app.url("/api/rooms")).bearer_auth(token("a", 60, KEY)).send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    let expired = http.get(app.url("/api/rooms")).bearer_auth(token("a", -120, KEY)).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    assert_eq!(app.get("/health").await.0, 200);
}
