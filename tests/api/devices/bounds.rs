//! Issue 17 against the device API, each test the attack and the bound it
//! must now meet: queues bounded in bytes and read in pages (problem 1).

use serde_json::{Value, json};
use switchboard::testing::RedisProcess;

use super::announcement;
use crate::helpers::{Device, TestApp, spawn_app_with};

/// Bodies of exactly 1 002 bytes of JSON text (a 1 000-character string).
fn kilobyte(n: usize) -> Value {
    Value::String(format!("{n:04}{}", "x".repeat(996)))
}

async fn announce(app: &TestApp, peer: &str) {
    let (status, _, body) =
        app.request("POST", "/network/home/announce", Some(announcement(peer, json!([]))), None).await;
    assert_eq!(status, 200, "{body}");
}

/// peer_a (connected to `sender`) fills the offline peer_b's queue past
/// its 4 KiB budget; `reader` reads it back.
async fn fill_past_the_queue_budget(sender: &TestApp, reader: &TestApp) {
    announce(sender, "peer_a").await;
    announce(sender, "peer_b").await;
    let a = Device::connect(&sender.url("/"), "peer_a").await;
    for n in 0..4 {
        assert_eq!(a.signal("peer_b", kilobyte(n)).await, "queued", "signal {n} fits: 4 x 1 002 <= 4 096");
    }
    let refused = a.signal_ack("peer_b", kilobyte(4)).await;
    assert_eq!(
        (refused["ok"].clone(), refused["error"]["code"].clone()),
        (json!(false), json!("target-busy")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("DEVICE_QUEUE_MAX_BYTES") && message.contains("4096"), "names the budget: {message}");
    assert_eq!(a.signal_ack("peer_b", json!("x".repeat(100))).await["error"]["code"], "target-busy", "nor a small one");

    let (status, _, read) = reader.request("GET", "/signaling/messages/peer_b?peek=true", None, None).await;
    assert_eq!(status, 200);
    let messages = read["messages"].as_array().unwrap();
    let held: usize = messages.iter().map(|m| m["data"].to_string().len()).sum();
    assert_eq!((messages.len(), held), (4, 4 * 1002), "the queue holds at most its budget");
    assert_eq!(messages[3]["data"], kilobyte(3), "bodies come back as sent");
    a.disconnect().await;
}

fn small_queues(c: &mut switchboard::config::Config) {
    c.presence.queue_budget.queue_bytes = 4096;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_filling_a_queue_past_its_byte_budget_is_refused_naming_it() {
    let app = spawn_app_with(small_queues).await;
    fill_past_the_queue_budget(&app, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_byte_budget_holds_across_instances() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let apps = crate::cluster::cluster(&redis, 2, small_queues).await;
    fill_past_the_queue_budget(&apps[0], &apps[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_is_held_to_its_budget_across_receivers() {
    let app = spawn_app_with(|c| c.presence.queue_budget.sender_bytes = 4096).await;
    for peer in ["peer_a", "peer_b", "peer_c", "peer_d"] {
        announce(&app, peer).await;
    }
    let a = Device::connect(&app.url("/"), "peer_a").await;
    let mut queued = 0;
    for (n, to) in ["peer_b", "peer_c", "peer_d", "peer_b", "peer_c"].iter().enumerate() {
        let ack = a.signal_ack(to, kilobyte(n)).await;
        if ack["ok"] == true {
            queued += 1;
        } else {
            let message = ack["error"]["message"].as_str().unwrap();
            assert!(message.contains("DEVICE_SENDER_MAX_BYTES"), "{message}");
        }
    }
    assert_eq!(queued, 4, "one more receiver does not lift the sender's budget");
    a.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_queue_is_read_in_pages_of_at_most_100() {
    let app = spawn_app_with(|_| ()).await;
    announce(&app, "peer_a").await;
    announce(&app, "peer_b").await;
    let a = Device::connect(&app.url("/"), "peer_a").await;
    for n in 0..130 {
        assert_eq!(a.signal("peer_b", json!({ "n": n })).await, "queued");
    }
    let (_, _, first) = app.request("GET", "/signaling/messages/peer_b?peek=true", None, None).await;
    let first = first["messages"].as_array().unwrap().clone();
    assert_eq!((first.len(), first[0]["data"].clone()), (100, json!({"n": 0})));
    let last = first[99]["id"].as_u64().unwrap();
    let (_, _, rest) =
        app.request("GET", &format!("/signaling/messages/peer_b?peek=true&after={last}"), None, None).await;
    let rest = rest["messages"].as_array().unwrap();
    assert_eq!((rest.len(), rest[0]["data"].clone()), (30, json!({"n": 100})));
    let (_, _, taken) = app.request("GET", "/signaling/messages/peer_b", None, None).await;
    assert_eq!(taken["messages"].as_array().unwrap().len(), 100, "a read that removes takes one page");
    let (_, _, left) = app.request("GET", "/signaling/messages/peer_b", None, None).await;
    assert_eq!(left["messages"].as_array().unwrap().len(), 30);
    let (status, _, bad) = app.request("GET", "/signaling/messages/peer_b?after=x", None, None).await;
    assert_eq!((status, bad["errors"][0]["field"].clone()), (400, json!("after")));
    a.disconnect().await;
}
