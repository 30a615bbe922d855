//! JWT on the handshake, on `join-room`, and on the REST routes that reveal rooms.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};

use crate::helpers::{Peer, TestApp, Transport, connect_outcome, jwt, spawn_app_with};

const KEY: &str = "test-secret";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn token(sub: &str, exp_offset: i64, key: &str) -> String {
    jwt(&json!({"sub": sub, "exp": now() + exp_offset, "aud": "switchboard"}), key)
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
    let with_token = app.request("GET", "/api/rooms", None, Some(&token("a", 60, KEY))).await;
    assert_eq!(with_token.0, 200);
    let expired = app.request("GET", "/api/rooms", None, Some(&token("a", -120, KEY))).await;
    assert_eq!(expired.0, 401);
    assert_eq!(app.get("/health").await.0, 200);
}

/// A token of `claims` signed with `KEY`, by `alg`, or unsigned (`alg: none`) when `None`.
fn signed(claims: &Value, alg: Option<Algorithm>) -> String {
    use base64::Engine;
    let Some(alg) = alg else {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        return format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims));
    };
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(KEY.as_bytes())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_issuer_and_audience_set_only_hs256_tokens_naming_both_get_in() {
    let issuer = "https://idp.example";
    let app = spawn_app_with(|c| {
        c.jwt = Some(JwtConfig {
            secret: Secret(KEY.into()),
            audience: Some("switchboard".into()),
            issuer: Some(issuer.into()),
        })
    })
    .await;
    let good = json!({"sub": "a", "exp": now() + 60, "aud": "switchboard", "iss": issuer});
    let changed = |claim: &str, value: Option<&str>| {
        let mut claims = good.clone();
        match value {
            Some(v) => claims[claim] = json!(v),
            None => drop(claims.as_object_mut().unwrap().remove(claim)),
        }
        claims
    };
    let refused = [
        ("another issuer", signed(&changed("iss", Some("https://evil.example")), Some(Algorithm::HS256))),
        ("no issuer", signed(&changed("iss", None), Some(Algorithm::HS256))),
        ("another audience", signed(&changed("aud", Some("other")), Some(Algorithm::HS256))),
        ("no audience", signed(&changed("aud", None), Some(Algorithm::HS256))),
        ("HS384", signed(&good, Some(Algorithm::HS384))),
        ("HS512", signed(&good, Some(Algorithm::HS512))),
        ("alg none", signed(&good, None)),
    ];
    let url = app.url("/");
    for (why, token) in refused {
        let (outcome, message) = connect_outcome(&url, Some(json!({"token": token})), &[]).await;
        assert_eq!(outcome, "error", "{why}: {message}");
        assert!(message.as_str().unwrap().contains("unauthorized"), "{why}: {message}");
        assert_eq!(app.request("GET", "/api/rooms", None, Some(&token)).await.0, 401, "{why}");
    }
    let token = signed(&good, Some(Algorithm::HS256));
    assert_eq!(connect_outcome(&url, Some(json!({"token": token})), &[]).await.0, "open");
    assert_eq!(app.request("GET", "/api/rooms", None, Some(&token)).await.0, 200);
}

/// The user a TURN username (`expiry:userId`) names.
fn turn_user(servers: &Value) -> &str {
    let username = servers["iceServers"][1]["username"].as_str().unwrap_or_else(|| panic!("a TURN entry: {servers}"));
    username.split_once(':').map_or("", |(_, user)| user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_turn_credentials_name_the_token_s_user_whatever_user_id_says() {
    let app = spawn_app_with(|c| {
        c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: Some("switchboard".into()), issuer: None });
        c.ice = crate::web::turn_config();
    })
    .await;
    let alice = token("alice", 60, KEY);
    // The ice-servers event on connect: auth.userId and ?userId= are ignored.
    let url = format!("{}?token={alice}&userId=mallory", app.url("/"));
    let servers =
        Peer::connect_with_auth(&url, Transport::Websocket, Some(json!({"userId": "mallory"}))).await.ice_servers;
    assert_eq!(turn_user(&servers), "alice", "auth.userId and ?userId=: {servers}");
    let servers = Peer::connect_with_auth(
        &app.url("/"),
        Transport::Websocket,
        Some(json!({"token": alice, "userId": "mallory"})),
    )
    .await
    .ice_servers;
    assert_eq!(turn_user(&servers), "alice", "auth.userId: {servers}");
    let servers =
        Peer::connect_with_auth(&app.url("/"), Transport::Websocket, Some(json!({"token": alice}))).await.ice_servers;
    assert_eq!(turn_user(&servers), "alice", "no userId at all: {servers}");

    // GET /api/ice-servers: ?userId= is ignored, valid or not.
    for query in ["?userId=mallory", "", &format!("?userId={}", "x".repeat(129))] {
        let (status, _, servers) = app.request("GET", &format!("/api/ice-servers{query}"), None, Some(&alice)).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(turn_user(&servers), "alice", "{query}: {servers}");
    }
    let servers = app.get(&format!("/api/ice-servers?userId=mallory&token={alice}")).await.1;
    assert_eq!(turn_user(&servers), "alice", "?token=: {servers}");
}

/// Issue 17, problem 12: a socket does not stay authenticated past its
/// token's `exp`. A token 25 s past it is still accepted (30 s of leeway for
/// clock skew), so its connection must close about 5 s later: peers see the
/// user leave, as for any disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_when_its_token_expires() {
    let app = secured().await;
    let url = app.url("/");
    let auth = |sub: &str, exp_offset: i64| Some(json!({"token": token(sub, exp_offset, KEY)}));
    let mut bob = Peer::joined_with_auth(&url, Transport::Websocket, auth("bob", 3600), "expiring", "bob").await;
    let alice = Peer::joined_with_auth(&url, Transport::Websocket, auth("alice", -25), "expiring", "alice").await;
    bob.wait_for("user-joined", |e| e["userId"] == "alice").await;
    bob.wait_for("user-left", |e| e["userId"] == "alice").await;
    drop(alice);
}
