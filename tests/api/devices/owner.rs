//! Issue 17, problem 3 against the device API: a device id whose record is
//! past its retention cannot be taken while its owner's signals wait, and
//! once it changes hands nothing of the old owner's is readable. Records and
//! signals are seeded into the store with times passed in (two hours ago),
//! never waited for.

use std::time::{Duration, SystemTime};

use serde_json::json;
use switchboard::config::{JwtConfig, Secret};
use switchboard::domain::UserId;
use switchboard::domain::presence::{Announcement, DeviceId, NetworkId, SignalAddress};
use switchboard::domain::queue::{QueueBudget, SignalBody};
use switchboard::domain::signal::{Outgoing, SignalKind};
use switchboard::store::devices::Devices;

use super::{KEY, announcement, token};
use crate::helpers::{Device, TestApp, spawn_app_over};

fn seeded(device: &str, user: &str) -> Announcement {
    Announcement {
        network: NetworkId::parse("home").unwrap(),
        device: DeviceId::parse(device).unwrap(),
        user: UserId::parse(user).unwrap(),
        signal_address: SignalAddress::parse("wss://signal.example/x").unwrap(),
        capabilities: vec![],
    }
}

/// An SDP offer from bob's peer_bob to `to`, queued for `owner` `ago` back.
async fn queue_offer(devices: &Devices, to: &str, owner: &str, sdp: &str, ago: Duration) {
    let offer = Outgoing {
        kind: SignalKind::Offer,
        from: DeviceId::parse("peer_bob").unwrap(),
        sender_user: UserId::parse("bob").unwrap(),
        to: DeviceId::parse(to).unwrap(),
        owner: UserId::parse(owner).unwrap(),
        data: SignalBody::from_value(&json!({ "sdp": sdp })),
    };
    devices.queues.enqueue(offer, SystemTime::now() - ago, &QueueBudget::default()).await.unwrap();
}

/// A JWT server over `devices`, and alice's peer_alice announced two hours
/// ago: its record is past its hour of retention (the sweep may delete it
/// or not; the rules hold either way).
async fn with_alice_s_old_record(devices: &Devices) -> TestApp {
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    devices.presence.announce(seeded("peer_alice", "alice"), two_hours_ago).await.unwrap();
    spawn_app_over(devices.clone(), |c| {
        c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: None, issuer: None });
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_take_a_device_id_while_its_owner_s_signals_wait() {
    let devices = Devices::memory();
    let app = with_alice_s_old_record(&devices).await;
    queue_offer(&devices, "peer_alice", "alice", "alice's SDP", Duration::from_secs(600)).await;
    let mallory = token("mallory");
    let body = || Some(announcement("peer_alice", json!([])));
    let (status, _, refused) = app.request("POST", "/network/home/announce", body(), Some(&mallory)).await;
    assert_eq!((status, refused["error"]["code"].clone()), (403, json!("forbidden")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("signals still wait"), "{refused}");
    let (status, _, read) = app.request("GET", "/signaling/messages/peer_alice?peek=true", None, Some(&mallory)).await;
    assert_eq!(status, 403, "mallory reads nothing: {read}");

    // The real owner keeps the id and its signals.
    let alice = token("alice");
    assert_eq!(app.request("POST", "/network/home/announce", body(), Some(&alice)).await.0, 200);
    let (_, _, mine) = app.request("GET", "/signaling/messages/peer_alice?peek=true", None, Some(&alice)).await;
    assert_eq!(mine["messages"][0]["data"], json!({"sdp": "alice's SDP"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_device_id_changes_hands_the_old_owner_s_signals_are_not_readable() {
    let devices = Devices::memory();
    let app = with_alice_s_old_record(&devices).await;
    let (mallory, bob) = (token("mallory"), token("bob"));
    let announce = |peer: &'static str, who: &str| {
        let who = who.to_owned();
        let app = &app;
        async move { app.request("POST", "/network/home/announce", Some(announcement(peer, json!([]))), Some(&who)).await.0 }
    };
    assert_eq!(announce("peer_alice", &mallory).await, 200, "nothing waits: the id may change hands");
    // A signal queued for alice as the id changed hands (a race): still hers alone.
    queue_offer(&devices, "peer_alice", "alice", "alice's SDP", Duration::ZERO).await;
    let (status, _, read) = app.request("GET", "/signaling/messages/peer_alice?peek=true", None, Some(&mallory)).await;
    assert_eq!((status, read), (200, json!({"messages": []})));
    let (_, _, taken) =
        app.request("DELETE", "/signaling/messages/peer_alice?upTo=999999999999999", None, Some(&mallory)).await;
    assert_eq!(taken, json!({"removed": 0}), "nor confirmed away");

    // Over the socket: mallory's first push is the signal sent to her, never alice's older one.
    assert_eq!(announce("peer_bob", &bob).await, 200);
    let sender = Device::connect_with(&app.url("/"), json!({"deviceId": "peer_bob", "token": bob})).await;
    let mut taker = Device::connect_with(&app.url("/"), json!({"deviceId": "peer_alice", "token": mallory})).await;
    assert_eq!(sender.signal("peer_alice", json!({"sdp": "to mallory"})).await, "delivered");
    let first = taker.next_signal(Duration::from_secs(10)).await;
    assert_eq!(first["data"], json!({"sdp": "to mallory"}), "{first}");
}
