//! Delivery guarantees: order per sender and target, and no silent drops.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Peer, TestApp, Transport, spawn_app, spawn_app_with};

const BURST: u64 = 2000;

async fn burst_arrives_complete_and_in_order(transport: Transport) {
    let app = spawn_app().await;
    let room = "burst";
    let alice = Peer::joined(&app, transport, room, "alice").await;
    let mut bob = Peer::joined(&app, transport, room, "bob").await;
    for seq in 0..BURST {
        let candidate = json!({"candidate": format!("candidate:{seq}"), "seq": seq});
        alice
            .emit(
                "ice-candidate",
                json!({"roomId": room, "targetId": "bob", "candidate": candidate}),
            )
            .await;
    }
    for expected in 0..BURST {
        let got = bob.expect("ice-candidate").await;
        assert_eq!(
            got["candidate"]["seq"], expected,
            "relay {expected} out of order or lost: {got}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_relays_arrives_complete_and_in_order_over_websocket() {
    burst_arrives_complete_and_in_order(Transport::Websocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_relays_arrives_complete_and_in_order_over_polling() {
    burst_arrives_complete_and_in_order(Transport::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_overload_every_relay_is_delivered_in_order_or_refused_with_rate_limited() {
    let app = spawn_app_with(|c| c.max_pending_events = 16).await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "flood", "alice").await;
    let mut bob = Peer::joined(&app, Transport::Websocket, "flood", "bob").await;
    alice.expect("user-joined").await;
    const SENT: u64 = 500;
    for seq in 0..SENT {
        alice
            .emit(
                "offer",
                json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": seq}}),
            )
            .await;
    }
    // A marker with an ack: once it is answered, everything before it was handled.
    let marker = json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": "end"}});
    while alice.ack("offer", marker.clone()).await["ok"] != true {}
    let refused = alice.received_so_far();
    assert!(
        refused
            .iter()
            .all(|(name, e)| name == "signaling-error" && e["code"] == "rate-limited"),
        "{refused:?}"
    );
    let mut delivered = Vec::new();
    loop {
        let offer = bob.expect("offer").await["offer"]["seq"].clone();
        if offer == "end" {
            break;
        }
        delivered.push(offer.as_u64().unwrap());
    }
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "delivered relays stay in order"
    );
    assert_eq!(
        delivered.len() + refused.len(),
        SENT as usize,
        "none vanished"
    );
}

/// A hand-driven polling client that joins a room and then stops polling, so
/// the server's queue towards it fills up.
struct StalledPoller {
    http: reqwest::Client,
    url: String,
}

impl StalledPoller {
    async fn join(app: &TestApp, room: &str, user: &str) -> Self {
        let http = reqwest::Client::new();
        let base = app.url("/socket.io/?EIO=4&transport=polling");
        let open = http.get(&base).send().await.unwrap().text().await.unwrap();
        let handshake: Value =
            serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
        let url = format!("{base}&sid={}", handshake["sid"].as_str().unwrap());
        let poller = Self { http, url };
        poller.post("40").await;
        let connected = poller.poll().await;
        assert!(
            connected[0].starts_with("40"),
            "namespace connect ack, got {connected:?}"
        );
        poller
            .post(&format!(
                r#"42["join-room",{{"roomId":"{room}","userId":"{user}"}}]"#
            ))
            .await;
        poller
    }

    async fn post(&self, body: &str) {
        let response = self
            .http
            .post(&self.url)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "polling POST accepted");
    }

    /// The packets of one long-poll, engine.io pings answered and left out.
    async fn poll(&self) -> Vec<String> {
        let request = self.http.get(&self.url).timeout(Duration::from_secs(10));
        let payload = request.send().await.unwrap().text().await.unwrap();
        let mut packets = Vec::new();
        for packet in payload.split('\u{1e}') {
            if packet == "2" {
                self.post("3").await;
            } else {
                packets.push(packet.to_owned());
            }
        }
        packets
    }

    /// Every `offer` body received, polling until `last` has arrived.
    async fn offers_until(&self, last: &Value) -> Vec<Value> {
        let mut offers = Vec::new();
        while offers.last() != Some(last) {
            for packet in self.poll().await {
                let Some(json) = packet.strip_prefix("42") else {
                    continue;
                };
                let event: Value = serde_json::from_str(json).unwrap();
                if event[0] == "offer" {
                    offers.push(event[1]["offer"].clone());
                }
            }
        }
        offers
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_take_more_gets_target_busy_and_nothing_acked_is_lost() {
    let app = spawn_app_with(|c| c.socket_buffer_packets = 16).await;
    let slow = StalledPoller::join(&app, "busy", "slow").await;
    let alice = Peer::joined(&app, Transport::Websocket, "busy", "alice").await;

    let mut delivered = Vec::new();
    let mut busy = 0;
    for n in 0..40 {
        let ack = alice
            .ack(
                "offer",
                json!({"roomId": "busy", "targetId": "slow", "offer": {"n": n}}),
            )
            .await;
        match (ack["ok"].as_bool(), ack["error"]["code"].as_str()) {
            (Some(true), _) => delivered.push(json!({"n": n})),
            (Some(false), Some("target-busy")) => busy += 1,
            other => panic!("relay {n}: unexpected ack {other:?}: {ack}"),
        }
    }
    assert!(
        busy > 0,
        "a queue of 16 packets must overflow with 40 relays"
    );
    assert!(!delivered.is_empty());
    // Every relay acked ok reaches the target, in order; none of the refused ones does.
    let received = slow.offers_until(&delivered[delivered.len() - 1]).await;
    assert_eq!(received, delivered);
    // Once the target has caught up, relays are accepted again.
    let end = json!({"n": "end"});
    let ack = alice
        .ack(
            "offer",
            json!({"roomId": "busy", "targetId": "slow", "offer": end}),
        )
        .await;
    assert_eq!(ack["ok"], true);
    assert_eq!(slow.offers_until(&end).await, vec![end]);
}
