//! Bad input gets a clear error and never disturbs other clients.

use serde_json::{Value, json};

use crate::helpers::{Peer, TRANSPORTS, TestApp, Transport, eventually, spawn_app, spawn_app_with};

fn bad_payloads() -> Vec<(&'static str, Value)> {
    let long = "x".repeat(129);
    vec![
        ("join-room", json!({"roomId": "r"})),
        ("join-room", json!({"userId": "u"})),
        ("join-room", json!({"roomId": 5, "userId": "u"})),
        ("join-room", json!({"roomId": "r", "userId": ["u"]})),
        ("join-room", json!({"roomId": long, "userId": "u"})),
        ("join-room", json!({"roomId": "r", "userId": long})),
        ("join-room", json!({"roomId": "", "userId": "u"})),
        ("join-room", json!({"roomId": "r\n", "userId": "u"})),
        ("join-room", json!({"roomId": "r", "userId": "nul\u{0}"})),
        ("join-room", json!("just a string")),
        ("join-room", json!(42)),
        ("join-room", json!([{"roomId": "r", "userId": "u"}])),
        ("join-room", json!(null)),
        ("leave-room", json!({})),
        ("leave-room", json!({"roomId": {"nested": true}})),
        ("offer", json!({"roomId": "r", "targetId": "t"})),
        ("offer", json!({"roomId": "r", "targetId": "t", "offer": null})),
        ("offer", json!({"roomId": "r", "offer": {}})),
        ("answer", json!({"roomId": "r", "targetId": 1, "answer": {}})),
        ("answer", json!({"roomId": long, "targetId": "t", "answer": {}})),
        ("ice-candidate", json!({"roomId": "r", "targetId": "t"})),
        ("ice-candidate", json!({"roomId": "r", "targetId": "\u{7}", "candidate": null})),
        ("no-such-event", json!({"roomId": "r"})),
    ]
}

/// Two healthy peers in their own room still relay to each other.
async fn healthy_pair_still_relays(app: &TestApp) {
    let alice = Peer::joined(app, Transport::Websocket, "healthy", "alice").await;
    let mut bob = Peer::joined(app, Transport::Polling, "healthy", "bob").await;
    let ack = alice.ack("offer", json!({"roomId": "healthy", "targetId": "bob", "offer": {"ok": 1}})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(bob.expect("offer").await["offer"], json!({"ok": 1}));
    alice.disconnect().await;
    assert_eq!(bob.expect("user-left").await["userId"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_payload_is_refused_with_invalid_payload_and_others_are_served() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let mut peer = Peer::connect(&app, t).await;
        for (event, payload) in bad_payloads() {
            let ack = peer.ack(event, payload.clone()).await;
            assert_eq!(ack["ok"], false, "{event} {payload}: {ack}");
            assert_eq!(ack["error"]["code"], "invalid-payload", "{event} {payload}: {ack}");
            assert!(ack["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));

            peer.emit(event, payload.clone()).await;
            let err = peer.expect("signaling-error").await;
            assert_eq!(
                (err["event"].as_str(), err["code"].as_str()),
                (Some(event), Some("invalid-payload")),
                "{payload}"
            );
        }
        // The same connection still works after all of that.
        let ack = peer.ack("join-room", json!({"roomId": "after", "userId": format!("u{t:?}")})).await;
        assert_eq!(ack["ok"], true);
    }
    assert_eq!(app.get("/api/rooms").await.1["total"], 1, "no bad join created a room");
    healthy_pair_still_relays(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_of_exactly_128_characters_is_accepted() {
    let app = spawn_app().await;
    let peer = Peer::connect(&app, Transport::Websocket).await;
    let (room, user) = ("r".repeat(128), "u".repeat(128));
    let ack = peer.ack("join-room", json!({"roomId": room, "userId": user})).await;
    assert_eq!(ack["ok"], true, "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_max_payload_bytes_closes_that_connection_only() {
    let app = spawn_app_with(|c| {
        c.max_payload_bytes = 4096;
        // Closed for it, abruptly: the seat is held for the grace before peers are told.
        c.grace.resume_grace = std::time::Duration::from_millis(200);
    })
    .await;
    let mut observer = Peer::joined(&app, Transport::Websocket, "big", "observer").await;
    let connections = || async { app.get("/health").await.1["connections"].as_u64().unwrap() };
    for t in TRANSPORTS {
        let before = connections().await;
        let user = format!("big-{t:?}");
        let big = Peer::joined(&app, t, "big", &user).await;
        assert_eq!(observer.expect("user-joined").await["userId"], user.as_str());
        assert_eq!(connections().await, before + 1);

        let huge = json!({"type": "offer", "sdp": "a".repeat(8192)});
        // The send itself may fail once the server closes the connection.
        let _ = big.client.emit("offer", json!({"roomId": "big", "targetId": "observer", "offer": huge})).await;
        // The server closed the oversized connection: its seat is cleared,
        assert_eq!(observer.expect("user-left").await["userId"], user.as_str(), "over {t:?}");
        // and the connection itself is gone (rust_socketio does not always report
        // a closed transport, so /health says it), while the observer stays.
        eventually("the oversized connection is gone from /health", || async { connections().await == before }).await;
    }
    healthy_pair_still_relays(&app).await;
    let fits = json!({"sdp": "a".repeat(3000)});
    let sender = Peer::joined(&app, Transport::Websocket, "big", "sender").await;
    observer.expect("user-joined").await;
    sender.emit("offer", json!({"roomId": "big", "targetId": "observer", "offer": fits})).await;
    assert_eq!(observer.expect("offer").await["offer"], fits, "a payload under the limit passes");
}
