//! Delivery guarantees: order per sender and target, and no silent drops.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Peer, Receiver, StalledPoller, Transport, spawn_app_with, unlimited};

const BURST: u64 = 2000;

async fn burst_arrives_complete_and_in_order(transport: Transport) {
    let app = spawn_app_with(unlimited).await;
    let room = "burst";
    let mut alice = Peer::joined(&app, transport, room, "alice").await;
    let mut receiver = Receiver::join(&app, transport, room, "bob").await;
    alice.expect("user-joined").await; // the receiver is in the room
    for seq in 0..BURST {
        let candidate = json!({"candidate": format!("candidate:{seq}"), "seq": seq});
        alice.emit("ice-candidate", json!({"roomId": room, "targetId": "bob", "candidate": candidate})).await;
    }
    let got = receiver.take("ice-candidate", BURST as usize).await;
    for (expected, relay) in got.iter().enumerate() {
        assert_eq!(relay["candidate"]["seq"], expected as u64, "relay {expected} out of order or lost: {relay}");
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
    let app = spawn_app_with(|c| {
        unlimited(c);
        c.max_pending_events = 16;
    })
    .await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "flood", "alice").await;
    let mut bob = Peer::joined(&app, Transport::Websocket, "flood", "bob").await;
    alice.expect("user-joined").await;
    const SENT: u64 = 500;
    for seq in 0..SENT {
        alice.emit("offer", json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": seq}})).await;
    }
    // A marker with an ack: once it is answered, everything before it was handled.
    let marker = json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": "end"}});
    while alice.ack("offer", marker.clone()).await["ok"] != true {}
    let refused = alice.received_so_far();
    assert!(refused.iter().all(|(name, e)| name == "signaling-error" && e["code"] == "rate-limited"), "{refused:?}");
    let mut delivered = Vec::new();
    loop {
        let offer = bob.expect("offer").await["offer"]["seq"].clone();
        if offer == "end" {
            break;
        }
        delivered.push(offer.as_u64().unwrap());
    }
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "delivered relays stay in order");
    assert_eq!(delivered.len() + refused.len(), SENT as usize, "none vanished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_take_more_gets_target_busy_and_nothing_acked_is_lost() {
    let app = spawn_app_with(|c| c.socket_buffer_packets = 16).await;
    let slow = StalledPoller::join(&app, "busy", "slow").await;
    let alice = Peer::joined(&app, Transport::Websocket, "busy", "alice").await;

    let mut delivered = Vec::new();
    let mut busy = 0;
    for n in 0..40 {
        let ack = alice.ack("offer", json!({"roomId": "busy", "targetId": "slow", "offer": {"n": n}})).await;
        match (ack["ok"].as_bool(), ack["error"]["code"].as_str()) {
            (Some(true), _) => delivered.push(json!({"n": n})),
            (Some(false), Some("target-busy")) => busy += 1,
            other => panic!("relay {n}: unexpected ack {other:?}: {ack}"),
        }
    }
    assert!(busy > 0, "a queue of 16 packets must overflow with 40 relays");
    assert!(!delivered.is_empty());
    // Every relay acked ok reaches the target, in order; none of the refused ones does.
    let received = slow.offers_until(&delivered[delivered.len() - 1]).await;
    assert_eq!(received, delivered);
    // Once the target has caught up, relays are accepted again.
    let end = json!({"n": "end"});
    let ack = alice.ack("offer", json!({"roomId": "busy", "targetId": "slow", "offer": end})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(slow.offers_until(&end).await, vec![end]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_rate_limit_are_refused_and_a_flood_is_disconnected() {
    let app = spawn_app_with(|c| {
        c.events_per_second = 1;
        c.event_burst = 10;
        c.rate_limit_disconnect_after = 40;
    })
    .await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "flood", "alice").await; // 1 token
    let mut bob = Peer::joined(&app, Transport::Websocket, "flood", "bob").await;
    alice.expect("user-joined").await;
    for seq in 0..20 {
        alice.emit("offer", json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": seq}})).await;
    }
    // Nine tokens were left; at one a second, at most a token or so comes back
    // meanwhile: the first nine relays arrive in order, at least ten are refused.
    for seq in 0..9 {
        assert_eq!(bob.expect("offer").await["offer"]["seq"], seq);
    }
    for _ in 0..10 {
        let err = alice.expect("signaling-error").await;
        assert_eq!((err["event"].as_str(), err["code"].as_str()), (Some("offer"), Some("rate-limited")));
    }
    // Keep flooding: past 40 refusals within 10 s the server disconnects alice.
    for seq in 20..80 {
        let _ = alice.client.emit("offer", json!({"roomId": "flood", "targetId": "bob", "offer": {"seq": seq}})).await;
    }
    assert_eq!(bob.expect_skipping("user-left", &["offer"]).await["userId"], "alice");
}

/// A heartbeat that finds a client which stopped reading within a second.
fn quick_heartbeat(c: &mut switchboard::config::Config) {
    c.ping_interval = Duration::from_millis(200);
    c.ping_timeout = Duration::from_millis(400);
    // A connection let go this way closed abruptly: its seat is held for the grace first.
    c.grace.resume_grace = Duration::from_millis(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_to_its_byte_budget_and_its_unprompted_pongs_do_not_keep_it() {
    let app = spawn_app_with(quick_heartbeat).await;
    let victim = StalledPoller::join(&app, "budget", "victim").await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "budget", "alice").await;
    // The attack: the victim reads nothing and sends pongs every 20 ms, unprompted.
    let pongs = tokio::spawn(async move {
        for _ in 0..1000 {
            if !victim.pong().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // 60 KB relays: past the 1 MiB budget (SOCKET_BUFFER_BYTES) they get target-busy,
    // long before the 4,096-packet count would refuse them.
    let sdp = "x".repeat(60_000);
    let mut accepted = 0;
    loop {
        let ack = alice.ack("offer", json!({"roomId": "budget", "targetId": "victim", "offer": {"sdp": sdp}})).await;
        if ack["ok"] == true {
            accepted += 1;
            assert!(
                accepted <= (1 << 20) / 60_000 + 1,
                "more than the byte budget was queued for a client that reads nothing"
            );
            continue;
        }
        assert_eq!(ack["error"]["code"], "target-busy", "{ack}");
        break;
    }
    // Its pongs answer no ping that left its queue: it is disconnected as a slow consumer.
    alice.wait_for("user-left", |e| e["userId"] == "victim").await;
    pongs.abort();
}

/// A websocket client speaking engine.io by hand, that can stop reading.
struct RawWebsocket(tokio::net::TcpStream);

impl RawWebsocket {
    /// Connects with a small receive buffer (so the server's writes to it block
    /// soon once it stops reading) and upgrades.
    async fn connect(addr: std::net::SocketAddr) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let request = format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[9..12], b"101");
        Self(stream)
    }

    /// Sends one masked text frame.
    async fn send(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        let (payload, mask) = (text.as_bytes(), [7u8, 1, 2, 3]);
        let mut frame = vec![0x81];
        match payload.len() {
            n @ 0..126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
        }
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).await.unwrap();
    }

    /// Reads (bytes as text, frames unparsed) until `marker` has come.
    async fn read_until(&mut self, marker: &str) {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(marker) {
            let n = tokio::time::timeout(crate::helpers::WAIT, self.0.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before {marker}");
            seen.extend(&buf[..n]);
        }
    }
}

/// A websocket client that stops reading (and sends pongs unprompted) is held
/// to its byte budget and then let go: its session closes and peers see it
/// leave. The server's writes to it wait for a TCP window that never opens,
/// which used to hold the session's close forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_let_go() {
    let app = spawn_app_with(quick_heartbeat).await;
    let mut victim = RawWebsocket::connect(app.addr).await;
    victim.send("40").await;
    victim.read_until("40{").await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "ws-budget", "alice").await;
    victim.send(r#"42["join-room",{"roomId":"ws-budget","userId":"victim"}]"#).await;
    alice.wait_for("user-joined", |e| e["userId"] == "victim").await;
    // From here on the victim reads nothing; it only writes pongs.
    let pongs = tokio::spawn(async move {
        for _ in 0..1000 {
            victim.send("3").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let sdp = "x".repeat(60_000);
    for _ in 0..400 {
        let ack = alice.ack("offer", json!({"roomId": "ws-budget", "targetId": "victim", "offer": {"sdp": sdp}})).await;
        if ack["ok"] != true {
            assert!(["target-busy", "target-not-found"].contains(&ack["error"]["code"].as_str().unwrap()), "{ack}");
            break;
        }
    }
    alice.wait_for("user-left", |e| e["userId"] == "victim").await;
    pongs.abort();
}

/// Two slots of every connection's queue are kept for the heartbeat: a queue
/// filled by someone else's relays cannot make the victim's ping fail (it
/// used to close the victim's connection). The victim holds back its pong
/// while the queue fills, so the heartbeat's next ping (1 ms later) meets a
/// full queue; a poll that brings the 16 relays and then that ping shows it
/// was queued while the queue was full, and the victim stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_filled_by_others_leaves_room_for_the_victim_s_ping() {
    let app = spawn_app_with(|c| {
        c.socket_buffer_packets = 16;
        c.ping_interval = Duration::from_millis(1);
        c.ping_timeout = Duration::from_secs(5);
    })
    .await;
    let victim = StalledPoller::join(&app, "reserve", "victim").await;
    let alice = Peer::joined(&app, Transport::Websocket, "reserve", "alice").await;
    let offer = json!({"roomId": "reserve", "targetId": "victim", "offer": {"sdp": "small"}});
    let (mut ping_unanswered, mut pinged_while_full) = (false, false);
    for _ in 0..20 {
        // A ping is out and unanswered: the heartbeat queues no other meanwhile.
        for _ in 0..50 {
            if ping_unanswered {
                break;
            }
            ping_unanswered = victim.poll_raw().await.iter().any(|p| p == "2");
        }
        assert!(ping_unanswered, "no ping came: the victim's session is closed");
        while alice.ack("offer", offer.clone()).await["ok"] == true {}
        assert!(victim.pong().await, "the victim's session is open");
        ping_unanswered = false;
        let packets = victim.poll_raw().await;
        if let Some(at) = packets.iter().position(|p| p == "2") {
            ping_unanswered = true;
            if packets[..at].iter().filter(|p| p.starts_with("42")).count() >= 16 {
                pinged_while_full = true;
                break;
            }
        }
    }
    assert!(pinged_while_full, "no ping was queued behind a full queue in 20 rounds");
    assert!(victim.pong().await, "the victim's session is open");
    let end = json!({"sdp": "end"});
    assert_eq!(alice.ack("offer", json!({"roomId": "reserve", "targetId": "victim", "offer": end})).await["ok"], true);
    assert_eq!(victim.offers_until(&end).await.last(), Some(&end));
}
