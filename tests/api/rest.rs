//! REST: health, the room listing with paging, JSON errors, CORS, websocket origins.

use std::io::{Read, Write};

use serde_json::json;

use crate::helpers::{Peer, Transport, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_connections_rooms_and_the_adapter() {
    let app = spawn_app().await;
    let _alice = Peer::joined(&app, Transport::Websocket, "h", "alice").await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["connections"], 1);
    assert_eq!(body["rooms"], 1);
    assert_eq!(body["adapter"], "memory");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeSeconds"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_in_creation_order_with_paging() {
    let app = spawn_app().await;
    let mut peers = Vec::new();
    for (i, room) in ["zeta", "alpha", "mid"].iter().enumerate() {
        peers.push(Peer::joined(&app, Transport::Websocket, room, &format!("u{i}")).await);
    }
    let (status, all) = app.get("/api/rooms").await;
    assert_eq!((status, all["total"].clone()), (200, json!(3)));
    let rooms = all["rooms"].as_array().unwrap();
    // Parsed, not compared as text: RFC 3339 with trimmed fractions does not
    // sort as text ("...:01.5Z" sorts after "...:01.51Z", though earlier).
    let created = |r: &serde_json::Value| {
        let text = r["createdAt"].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("createdAt {text:?} is not RFC 3339: {e}"))
    };
    let keys: Vec<(time::OffsetDateTime, String)> =
        rooms.iter().map(|r| (created(r), r["id"].as_str().unwrap().into())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let user_of = |id: &str| format!("u{}", ["zeta", "alpha", "mid"].iter().position(|r| *r == id).unwrap());
    for room in rooms {
        assert_eq!(room["participants"], json!([user_of(room["id"].as_str().unwrap())]));
        assert_eq!(room["participantCount"], 1);
    }

    let (_, page) = app.get("/api/rooms?limit=2&offset=1").await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["rooms"], json!(rooms[1..3]));
    let (_, past) = app.get("/api/rooms?offset=3").await;
    assert_eq!(past["rooms"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paging_parameters_get_a_400_json_error() {
    let app = spawn_app().await;
    for query in ["limit=0", "limit=1001", "limit=ten", "offset=-1"] {
        let (status, body) = app.get(&format!("/api/rooms?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "invalid-query", "{query}");
        assert!(body["error"]["message"].as_str().unwrap().contains(query.split('=').next().unwrap()));
    }
    assert_eq!(app.get("/api/rooms?limit=1000").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_or_a_json_404() {
    let app = spawn_app().await;
    let _p = Peer::joined(&app, Transport::Websocket, "with space", "alice").await;
    let (status, room) = app.get("/api/rooms/with%20space").await;
    assert_eq!(
        (status, room["id"].clone(), room["participants"].clone()),
        (200, json!("with space"), json!(["alice"]))
    );
    let (status, body) = app.get("/api/rooms/nope").await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("room-not-found")));
    let (status, body) = app.get(&format!("/api/rooms/{}", "x".repeat(129))).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("invalid-room-id")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let (status, body) = app.get("/no/such/route").await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("not-found")));
    let response = reqwest::Client::new().delete(app.url("/api/rooms")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method-not-allowed");
}

async fn app_allowing_only_ok_test() -> crate::helpers::TestApp {
    let origins = vec!["http://ok.test".parse().unwrap()];
    spawn_app_with(|c| c.allowed_origins = switchboard::config::AllowedOrigins::List(origins)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_only() {
    let app = app_allowing_only_ok_test().await;
    let http = reqwest::Client::new();
    for path in ["/api/rooms", "/socket.io/?EIO=4&transport=polling"] {
        let ok = http.get(app.url(path)).header("Origin", "http://ok.test").send().await.unwrap();
        assert_eq!(ok.headers()["access-control-allow-origin"], "http://ok.test", "{path}");
        assert_eq!(ok.headers()["access-control-allow-credentials"], "true", "{path}");
        let evil = http.get(app.url(path)).header("Origin", "http://evil.test").send().await.unwrap();
        assert!(evil.headers().get("access-control-allow-origin").is_none(), "{path}");

        let preflight = http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("Origin", "http://ok.test")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{path}: {}", preflight.status());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "http://ok.test");
    }
}

/// Sends a websocket upgrade request by hand and returns the status code.
fn upgrade_status(addr: std::net::SocketAddr, origin: Option<&str>) -> u16 {
    upgrade_status_as(addr, origin, "websocket")
}

/// [`upgrade_status`] with the `Upgrade` header's value given.
fn upgrade_status_as(addr: std::net::SocketAddr, origin: Option<&str>, upgrade: &str) -> u16 {
    upgrade_status_with(addr, origin, upgrade, "")
}

/// The status of a websocket upgrade with `extra` header lines (each ending in CRLF).
fn upgrade_status_with(addr: std::net::SocketAddr, origin: Option<&str>, upgrade: &str, extra: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n{origin}{extra}Connection: Upgrade\r\n\
         Upgrade: {upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_from_a_disallowed_origin_is_refused() {
    let app = app_allowing_only_ok_test().await;
    let addr = app.addr;
    let statuses = tokio::task::spawn_blocking(move || {
        [
            upgrade_status(addr, Some("http://evil.test")),
            upgrade_status(addr, Some("http://ok.test")),
            upgrade_status(addr, None),
            upgrade_status(addr, Some(&format!("http://{addr}"))),
            // Issue 17, problem 12: another protocol listed beside websocket skipped the check.
            upgrade_status_as(addr, Some("http://evil.test"), "websocket, foo"),
        ]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [403, 101, 101, 101, 403], "evil, allowed, none, the server's own page, evil listing two");
}

/// Issue 17, problem 12: the server's own page is its own origin only with
/// the scheme the client used: `http` on a plain server, what a trusted TLS
/// proxy says in `X-Forwarded-Proto` behind one (and only a trusted one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_origin_needs_the_scheme_the_client_used() {
    let plain = app_allowing_only_ok_test().await;
    let behind_tls = spawn_app_with(|c| {
        c.allowed_origins = switchboard::config::AllowedOrigins::List(vec!["http://ok.test".parse().unwrap()]);
        c.trusted_proxies = vec!["127.0.0.1".parse::<switchboard::domain::net::Cidr>().unwrap()];
    })
    .await;
    let (a, b) = (plain.addr, behind_tls.addr);
    let statuses = tokio::task::spawn_blocking(move || {
        let tls = "X-Forwarded-Proto: https\r\n";
        [
            upgrade_status(a, Some(&format!("http://{a}"))),
            upgrade_status(a, Some(&format!("https://{a}"))),
            // The client's own X-Forwarded-Proto is not believed without a trusted proxy.
            upgrade_status_with(a, Some(&format!("https://{a}")), "websocket", tls),
            upgrade_status_with(b, Some(&format!("https://{b}")), "websocket", tls),
            upgrade_status_with(b, Some(&format!("http://{b}")), "websocket", tls),
        ]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [101, 403, 403, 101, 403], "plain: http, https, https claimed; behind TLS: https, http");
}
