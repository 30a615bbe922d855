//! The real binary: configuration errors, signals, logs, the healthcheck command.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Peer, Running, Transport, command, jwt, unix_now};

#[test]
fn a_bad_configuration_value_exits_with_code_2_naming_the_variable() {
    let bad = [
        ("PORT", "forty"),
        ("MAX_ROOM_SIZE", "0"),
        ("LOG_FORMAT", "xml"),
        ("CLIENT_URL", "nope"),
        ("PROTOCOLS", "ftp"),
    ];
    for (var, value) in bad.into_iter().chain([("PEERJS_PATH", "/health")]) {
        let out = command(&[(var, value)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn a_sigterm_sent_the_moment_listening_is_logged_shuts_down_cleanly() {
    // The handlers were installed only once the server was polled: a signal
    // this early killed the process (143) in about 4 tries of 10.
    for _ in 0..10 {
        let mut server = Running::start(&[]);
        server.signal("TERM");
        assert_eq!(server.wait_exit(Duration::from_secs(10)).0, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_disconnect_websocket_clients_and_exit_0_within_10_s() {
    for signal in ["TERM", "INT"] {
        let mut server = tokio::task::block_in_place(|| Running::start(&[("RUST_LOG", "info")]));
        let mut peers = Vec::new();
        for (i, t) in [Transport::Websocket, Transport::Polling].into_iter().enumerate() {
            peers.push(Peer::joined_url(&format!("{}/", server.url), t, "s", &format!("u{i}")).await);
        }
        server.signal(signal);
        let (code, took) = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
        assert_eq!(code, 0, "SIG{signal}");
        assert!(took < Duration::from_secs(10));
        let logs = server.rest_of_logs();
        let disconnected = logs.iter().filter(|l| l["message"] == "disconnected").count();
        assert_eq!(disconnected, 2, "every client was disconnected by the server: {logs:?}");
        assert_eq!(logs.last().unwrap()["message"], "stopped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_ids_as_fields_and_never_sdp_at_info() {
    for (level, relay_logged) in [("info", false), ("debug", true)] {
        let filter = format!("warn,switchboard={level}");
        let mut server = tokio::task::block_in_place(|| Running::start(&[("RUST_LOG", filter.as_str())]));
        let url = format!("{}/", server.url);
        let alice = Peer::joined_url(&url, Transport::Websocket, "logs", "alice").await;
        let mut bob = Peer::joined_url(&url, Transport::Websocket, "logs", "bob").await;
        let secret = "SECRET-SDP-BODY-7f3a";
        alice.emit("offer", json!({"roomId": "logs", "targetId": "bob", "offer": {"sdp": secret}})).await;
        bob.expect("offer").await;
        alice.disconnect().await;
        bob.expect("user-left").await;

        let joined =
            tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "joined room" && l["user_id"] == "bob"));
        assert_eq!((joined["level"].as_str(), joined["room_id"].as_str()), (Some("INFO"), Some("logs")));
        assert!(joined["conn_id"].is_string());
        let connected = server.seen.iter().find(|l| l["message"] == "connected").expect("a connect log");
        assert_eq!(connected["level"], "INFO");
        assert!(connected["conn_id"].is_string() && connected["transport"].is_string());
        let left = tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "left room"));
        assert_eq!(left["user_id"], "alice");
        tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "disconnected"));
        let relayed = server.seen.iter().find(|l| l["message"] == "relayed");
        assert_eq!(relayed.is_some(), relay_logged, "relays are logged at debug only");
        if let Some(line) = relayed {
            assert_eq!((line["level"].as_str(), line["target_id"].as_str()), (Some("DEBUG"), Some("bob")));
        }
        let all = server.seen.iter().map(Value::to_string).collect::<String>();
        assert!(!all.contains(secret), "an SDP body reached the logs at {level}");
    }
}

#[test]
fn the_healthcheck_command_reports_a_live_server_and_fails_without_one() {
    let server = Running::start(&[]);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let ok = command(&[("PORT", port.as_str())]).arg("healthcheck").output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    drop(server);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let down = command(&[("PORT", free.as_str())]).arg("healthcheck").output().unwrap();
    assert_eq!(down.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_after_its_shutdown_future_with_clients_connected() {
    let app = crate::helpers::spawn_app().await;
    let addr = app.addr;
    let mut peers = Vec::new();
    for (i, t) in crate::helpers::TRANSPORTS.into_iter().enumerate() {
        peers.push(Peer::joined(&app, t, "bye", &format!("u{i}")).await);
    }
    app.stop().await; // bounded by WAIT inside
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[test]
fn an_open_server_says_so_at_start_up() {
    let is_warning =
        |l: &Value| l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.contains("JWT_SECRET"));
    // The warning comes before "listening", which `start` waits for.
    let open = Running::start(&[]);
    assert_eq!(open.seen.iter().filter(|l| is_warning(l)).count(), 1, "once: {:?}", open.seen);
    let secured = Running::start(&[("JWT_SECRET", "a-secret-of-thirty-two-bytes-ok!")]);
    assert!(!secured.seen.iter().any(is_warning), "no warning with JWT_SECRET set");
    // Issue 17, problem 11: a secret that short can be found offline from any token.
    let weak = Running::start(&[("JWT_SECRET", "s"), ("WORKER_KEY", "k")]);
    let warned = |var: &str| {
        weak.seen.iter().any(|l| l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.starts_with(var)))
    };
    assert!(warned("JWT_SECRET is 1 bytes") && warned("WORKER_KEY is 1 bytes"), "{:?}", weak.seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_url_never_reaches_the_logs_even_at_debug() {
    let token = jwt(&json!({"sub": "alice", "exp": unix_now() + 60}), "k");
    let mut server = tokio::task::block_in_place(|| Running::start(&[("JWT_SECRET", "k"), ("RUST_LOG", "debug")]));
    let url = format!("{}/?token={token}", server.url);
    let peer = Peer::joined_url(&url, Transport::Polling, "r", "alice").await;
    let rooms = reqwest::Client::new().get(format!("{}/api/rooms?token={token}", server.url)).send().await.unwrap();
    assert_eq!(rooms.status(), 200);
    peer.ack("leave-room", json!({"roomId": "r"})).await;
    tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "left room"));
    drop(peer);
    let signature = token.rsplit('.').next().unwrap();
    let all = tokio::task::block_in_place(|| all_logs(&mut server));
    assert!(!all.contains(signature), "the token reached the logs");
}

/// Stops the server (SIGTERM) and returns every line it wrote, as one string.
fn all_logs(server: &mut Running) -> String {
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).0, 0);
    server.rest_of_logs().iter().map(Value::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_any_rust_log_raw_packets_with_the_auth_token_and_sdp_stay_out_of_the_logs() {
    let token = |sub: &str| jwt(&json!({"sub": sub, "exp": unix_now() + 60}), "k");
    let (alice_token, bob_token) = (token("alice"), token("bob"));
    let sdp = "RECOGNISABLE-SDP-BODY-91d2";
    // socketioxide and engineioxide log every raw packet at debug, tungstenite
    // every frame at trace. They stay at info unless RUST_LOG names them
    // exactly (a sibling crate's name does not count); the last run names
    // socketioxide, so the packets do reach the logs there and this check is
    // shown to see them.
    let filters = [
        ("debug", false),
        ("trace", false),
        ("debug,socketioxide_redis=info", false),
        ("debug,socketioxide=debug", true),
    ];
    for (filter, named) in filters {
        let env = [("JWT_SECRET", "k"), ("RUST_LOG", filter)];
        let mut server = tokio::task::block_in_place(|| Running::start(&env));
        let url = format!("{}/", server.url);
        let auth = |token: &str| Some(json!({"token": token}));
        let mut alice = Peer::joined_with_auth(&url, Transport::Websocket, auth(&alice_token), "raw", "alice").await;
        let mut bob = Peer::joined_with_auth(&url, Transport::Polling, auth(&bob_token), "raw", "bob").await;
        alice.emit("offer", json!({"roomId": "raw", "targetId": "bob", "offer": {"type": "offer", "sdp": sdp}})).await;
        assert_eq!(bob.expect("offer").await["offer"]["sdp"], sdp);
        bob.emit("answer", json!({"roomId": "raw", "targetId": "alice", "answer": {"type": "answer", "sdp": sdp}}))
            .await;
        assert_eq!(alice.expect_skipping("answer", &["user-joined"]).await["answer"]["sdp"], sdp);

        // Debug lines are being written: each relay logged "relayed" at DEBUG.
        for target in ["bob", "alice"] {
            let relayed = |l: &Value| l["message"] == "relayed" && l["target_id"] == target;
            let line = match server.seen.iter().find(|l| relayed(l)) {
                Some(line) => line.clone(),
                None => tokio::task::block_in_place(|| server.wait_log(relayed)),
            };
            assert_eq!(line["level"], "DEBUG");
        }
        // Every line the server ever wrote, outgoing packets and disconnects included.
        drop((alice, bob));
        let all = tokio::task::block_in_place(|| all_logs(&mut server));
        assert_eq!(all.contains(sdp), named, "SDP in the logs at RUST_LOG={filter}");
        for (user, token) in [("alice", &alice_token), ("bob", &bob_token)] {
            let signature = token.rsplit('.').next().unwrap();
            assert_eq!(all.contains(signature), named, "{user}'s auth.token in the logs at RUST_LOG={filter}");
        }
    }
}

/// Issue 17, problem 10: over polling, the engine.io session id is a bearer
/// credential (with it, anyone can read the connection's next messages and
/// post in its name). It never leaves the engine: the connection's public id,
/// in the logs, is another value, and the sid appears in no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_s_engine_io_session_id_never_reaches_the_logs() {
    let mut server = tokio::task::block_in_place(|| Running::start(&[("RUST_LOG", "debug")]));
    let http = reqwest::Client::new();
    let base = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let open = http.get(&base).send().await.unwrap().text().await.unwrap();
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
    let sid = handshake["sid"].as_str().unwrap().to_owned();
    let url = format!("{base}&sid={sid}");
    assert_eq!(http.post(&url).body("40").send().await.unwrap().status(), 200);
    // Events sent before the namespace CONNECT is acked may find no handler yet.
    let mut polled = String::new();
    for _ in 0..20 {
        polled = http.get(&url).send().await.unwrap().text().await.unwrap();
        if polled.contains("40{") {
            break;
        }
    }
    assert!(polled.contains("40{"), "the CONNECT ack, got {polled:?}");
    let join = r#"42["join-room",{"roomId":"sid","userId":"victim"}]"#;
    assert_eq!(http.post(&url).body(join).send().await.unwrap().status(), 200);
    let connected = tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "connected"));
    let public = connected["conn_id"].as_str().expect("a public id").to_owned();
    assert_ne!(public, sid);
    tokio::task::block_in_place(|| server.wait_log(|l| l["message"] == "joined room" && l["room_id"] == "sid"));
    let all = tokio::task::block_in_place(|| all_logs(&mut server));
    assert!(all.contains(&public), "the public id is what the logs name");
    assert!(!all.contains(&sid), "the session id {sid} is in the logs");
}
