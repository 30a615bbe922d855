//! Per-connection and per-address limits, each with its clear error.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::domain::net::Cidr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Peer, TestApp, Transport, WAIT, eventually, exchange, spawn_app, spawn_app_with};

/// `GET /health` on a connection of its own.
const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// A websocket handshake without a session id, as a browser sends it.
const WEBSOCKET_HANDSHAKE: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

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

/// An engine.io polling handshake (no namespace CONNECT): the status and the
/// body, and the session id when one opened.
async fn handshake(app: &TestApp, forwarded_for: Option<&str>) -> (u16, String, Option<String>) {
    let mut request = reqwest::Client::new().get(app.url("/socket.io/?EIO=4&transport=polling"));
    if let Some(xff) = forwarded_for {
        request = request.header("X-Forwarded-For", xff);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let sid = body.strip_prefix('0').and_then(|open| serde_json::from_str::<Value>(open).ok());
    (status, body, sid.and_then(|open| open["sid"].as_str().map(str::to_owned)))
}

/// Closes an engine.io polling session (a `1` close packet).
async fn close_session(app: &TestApp, sid: &str) {
    let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let status = reqwest::Client::new().post(url).body("1").send().await.unwrap().status();
    assert_eq!(status, 200);
}

fn refused_as_too_many(status: u16, body: &str) -> bool {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    status == 429 && body["error"]["code"] == "too-many-connections"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_connection_from_one_address_is_refused_until_one_closes() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 2).await;
    let first = Peer::connect(&app, Transport::Websocket).await;
    let _second = Peer::connect(&app, Transport::Polling).await;
    let (status, body, _) = handshake(&app, None).await;
    assert!(refused_as_too_many(status, &body), "{status} {body}");
    assert!(body.contains("too many connections from this address"), "{body}");
    first.disconnect().await;
    let admitted = || async { handshake(&app, None).await.0 == 200 };
    eventually("the first connection's slot is given back", admitted).await;
}

/// Issue 17, problem 5: engine.io sessions that never send a namespace
/// CONNECT count against `MAX_CONNECTIONS_PER_IP` from their handshake
/// (polling and websocket alike); past it the handshake gets 429
/// `too-many-connections`, and a closed session gives its slot back (at
/// most `CONNECT_TIMEOUT_MS` later: socketioxide holds a session that never
/// connected until then; short here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_sessions_without_a_connect_count_against_the_address_limit() {
    let app = spawn_app_with(|c| {
        c.max_connections_per_ip = 5;
        c.connections.connect_timeout = Duration::from_secs(3);
    })
    .await;
    let mut sids = Vec::new();
    for _ in 0..5 {
        let (status, body, sid) = handshake(&app, None).await;
        assert_eq!(status, 200, "{body}");
        sids.push(sid.expect("an open packet"));
    }
    for _ in 0..5 {
        let (status, body, _) = handshake(&app, None).await;
        assert!(refused_as_too_many(status, &body), "{status} {body}");
    }
    let upgrade = exchange(app.addr, WEBSOCKET_HANDSHAKE).await;
    assert!(upgrade.starts_with("HTTP/1.1 429"), "a websocket handshake too: {upgrade}");
    assert!(upgrade.contains("too-many-connections"), "{upgrade}");
    for sid in &sids {
        close_session(&app, sid).await;
    }
    let admitted = || async { handshake(&app, None).await.0 == 200 };
    eventually("a closed session's slot is given back", admitted).await;
}

/// A socket.io connection is one session: its CONNECT shares the slot its
/// handshake took, so one slot per address admits one whole connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_io_connection_is_counted_once() {
    for transport in [Transport::Websocket, Transport::Polling] {
        let app = spawn_app_with(|c| c.max_connections_per_ip = 1).await;
        let peer = Peer::joined(&app, transport, "room", "u").await;
        assert_eq!(peer.ack("leave-room", json!({"roomId": "room"})).await["ok"], true, "{transport:?}");
        let (status, body, _) = handshake(&app, None).await;
        assert!(refused_as_too_many(status, &body), "{status} {body}");
        peer.disconnect().await;
        let admitted = || async { handshake(&app, None).await.0 == 200 };
        eventually("the connection's slot is given back", admitted).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let trusting = spawn_app_with(|c| {
        c.max_connections_per_ip = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    })
    .await;
    assert_eq!(handshake(&trusting, Some("198.51.100.1")).await.0, 200);
    assert_eq!(handshake(&trusting, Some("198.51.100.2")).await.0, 200, "another client behind the proxy");
    assert_eq!(handshake(&trusting, Some("198.51.100.1")).await.0, 429, "the same client again");

    let untrusting = spawn_app_with(|c| c.max_connections_per_ip = 1).await;
    assert_eq!(handshake(&untrusting, Some("198.51.100.1")).await.0, 200);
    assert_eq!(handshake(&untrusting, Some("198.51.100.2")).await.0, 429, "a claimed address is ignored");
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

/// Reads from `tcp` until the server closes it (EOF or reset), bounded by
/// [`WAIT`]; what it sent first.
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut read = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
            read.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, reading).await.expect("the server closes the connection");
    String::from_utf8_lossy(&read).into_owned()
}

/// Issue 17, problem 5: a request head sent in part and never finished is
/// closed after `HEADER_READ_TIMEOUT_MS` (short here), as is a connection
/// that sends nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_and_a_silent_connection_are_closed() {
    let app = spawn_app_with(|c| c.connections.header_read_timeout = Duration::from_millis(300)).await;
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    until_closed(&mut half).await;
    until_closed(&mut silent).await;
    assert_eq!(app.get("/health").await.0, 200, "the server goes on");
}

/// Issue 17, problem 5: a keep-alive connection left idle after its request
/// is closed (hyper's header-read timer runs while it waits for the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(|c| c.connections.header_read_timeout = Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let answered = until_closed(&mut tcp).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "answered, then closed when idle: {answered}");
    assert!(!answered.to_ascii_lowercase().contains("connection: close"), "kept alive until idle: {answered}");
}

/// Issue 17, problem 5: past `MAX_CONNECTIONS` open connections, one more is
/// closed at once while the open ones keep working; a closed one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_are_refused_while_others_keep_working() {
    let app = spawn_app_with(|c| c.connections.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    for _ in 0..3 {
        let mut extra = TcpStream::connect(app.addr).await.unwrap();
        assert_eq!(until_closed(&mut extra).await, "", "closed right after accept, unanswered");
    }
    for tcp in &mut held {
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut head)).await.expect("an answer").unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "an open connection still works");
    }
    drop(held.pop());
    let admitted = || async { exchange(app.addr, HEALTH).await.starts_with("HTTP/1.1 200") };
    eventually("a closed connection makes room", admitted).await;
}

/// Issue 17, problem 5: a request head over `MAX_HEADER_BYTES` (16 KiB by
/// default) gets 431; one within it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_max_header_bytes_gets_431() {
    let app = spawn_app().await;
    let with_cookie =
        |bytes: usize| format!("GET /health HTTP/1.1\r\nHost: localhost\r\nCookie: {}\r\n\r\n", "a".repeat(bytes));
    assert!(exchange(app.addr, &with_cookie(8 * 1024)).await.starts_with("HTTP/1.1 200"));
    let refused = exchange(app.addr, &with_cookie(20 * 1024)).await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
}
