//! The `/dashboard` namespace (seed 001): the pushed room list, rooms created
//! with their metadata, host approval, channel relays, and JWT on the namespace.

use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};

use crate::helpers::{Peer, TestApp, Transport, jwt, namespace_outcome, spawn_app, spawn_app_with, unix_now};

const NS: &str = "/dashboard";
const ROOMS: &str = "webrtc-dashboard-rooms";

async fn dashboard(app: &TestApp) -> Peer {
    Peer::connect_ns(&app.url("/"), NS, None).await
}

/// A dashboard client hosting room "vip" as "boss", which requires approval.
async fn vip_host(app: &TestApp) -> Peer {
    let host = dashboard(app).await;
    let vip = json!({"id": "vip", "hostId": "boss", "host": "Boss", "requiresApproval": true});
    assert_eq!(host.ack("room-created", json!({"data": vip})).await["ok"], true);
    host
}

/// A dashboard client subscribed to `channel`.
async fn subscribed(app: &TestApp, channel: &str) -> Peer {
    let peer = dashboard(app).await;
    assert_eq!(peer.ack("subscribe", json!({"channel": channel})).await, json!({"ok": true, "channel": channel}));
    peer
}

/// The room `id` in a `server-room-list`, if listed.
fn listed<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["rooms"].as_array().unwrap().iter().find(|r| r["id"] == id)
}

/// The names of the events received so far, `client_count` left out.
fn names(peer: &mut Peer) -> Vec<String> {
    peer.received_so_far().into_iter().map(|(name, _)| name).filter(|n| n != "client_count").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_the_list_at_once_and_then_a_created_room_with_its_metadata() {
    let app = spawn_app().await;
    let mut watcher = subscribed(&app, ROOMS).await;
    let first = watcher.wait_for("server-room-list", |_| true).await;
    assert_eq!((first["channel"].clone(), first["rooms"].clone()), (json!(ROOMS), json!([])), "{first}");
    assert!(first["timestamp"].is_u64(), "{first}");
    let mut outsider = dashboard(&app).await;

    let host = dashboard(&app).await;
    let room = json!({"id": "standup", "name": "Daily standup", "description": "ten minutes", "host": "Hank", "hostId": "hank"});
    assert_eq!(host.ack("room-created", json!({"data": room})).await, json!({"ok": true, "roomId": "standup"}));

    let list = watcher.wait_for("server-room-list", |l| listed(l, "standup").is_some()).await;
    let standup = listed(&list, "standup").unwrap();
    let meta = ["name", "description", "host", "hostId", "requiresApproval", "participants", "participantCount"]
        .map(|field| standup[field].clone());
    let expected = [
        json!("Daily standup"),
        json!("ten minutes"),
        json!("Hank"),
        json!("hank"),
        json!(false),
        json!([{"id": "hank", "name": "hank"}]),
        json!(1),
    ];
    assert_eq!(meta, expected, "{standup}");
    // One registry: the REST listing has it too.
    let (status, body) = app.get("/api/rooms/standup").await;
    assert_eq!(
        (status, body["name"].clone(), body["participants"].clone()),
        (200, json!("Daily standup"), json!(["hank"]))
    );
    // Not subscribed, no list: the pong comes after any list pushed to it before.
    outsider.ack("ping", json!({})).await;
    assert_eq!(names(&mut outsider), ["pong"], "only the pong reached the unsubscribed client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_request_reaches_the_host_and_only_the_host_s_approval_lets_the_joiner_in() {
    let app = spawn_app().await;
    let mut host = vip_host(&app).await;
    let core = Peer::connect(&app, Transport::Websocket).await;
    let unapproved = core.ack("join-room", json!({"roomId": "vip", "userId": "jo"})).await;
    assert_eq!(unapproved["error"]["code"], "not-approved", "{unapproved}");

    let mut jo = dashboard(&app).await;
    let asked = jo.ack("join-request", json!({"roomId": "vip", "userId": "jo", "userName": "Jo"})).await;
    assert_eq!(asked, json!({"ok": true, "status": "pending"}));
    let request = host.wait_for("join-request", |_| true).await;
    assert_eq!(request, json!({"roomId": "vip", "userId": "jo", "userName": "Jo"}));
    let self_approved = jo.ack("join-approved", json!({"roomId": "vip", "userId": "jo"})).await;
    assert_eq!(self_approved["error"]["code"], "not-host", "{self_approved}");

    let approved = host.ack("join-approved", json!({"roomId": "vip", "userId": "jo"})).await;
    assert_eq!(approved, json!({"ok": true, "roomId": "vip", "userId": "jo"}));
    assert_eq!(jo.wait_for("join-approved", |_| true).await, json!({"roomId": "vip", "userId": "jo"}));
    let joined = core.ack("join-room", json!({"roomId": "vip", "userId": "jo"})).await;
    assert_eq!(joined["users"], json!(["boss", "jo"]), "{joined}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reaches_the_channel_s_other_subscribers_and_a_non_subscriber_is_refused_with_not_in_room() {
    let app = spawn_app().await;
    let channel = "webrtc-signaling";
    let mut a = subscribed(&app, channel).await;
    let mut b = subscribed(&app, channel).await;
    let mut c = subscribed(&app, "webrtc-dashboard-chat").await;

    let offer = json!({"channel": channel, "sdp": "v=0"});
    assert_eq!(a.ack("webrtc-offer", offer.clone()).await, json!({"ok": true, "channel": channel}));
    assert_eq!(b.wait_for("webrtc-offer", |_| true).await, offer);

    let refused = c.ack("webrtc-offer", json!({"channel": channel, "sdp": "x"})).await;
    assert_eq!(refused["error"]["code"], "not-in-room", "{refused}");
    let forged = a.ack("server-room-list", json!({"channel": channel, "rooms": []})).await;
    assert_eq!(forged["error"]["code"], "invalid-payload", "{forged}");
    // Each pong comes after anything relayed to its client before.
    for (who, peer) in [("the sender", &mut a), ("the other subscriber", &mut b), ("another channel", &mut c)] {
        peer.ack("ping", json!({})).await;
        assert_eq!(names(peer), ["pong"], "nothing more reached {who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_a_connection_needs_a_token_and_creates_rooms_only_as_its_user() {
    let key = "dashboard-secret";
    let app =
        spawn_app_with(|c| c.jwt = Some(JwtConfig { secret: Secret(key.into()), audience: None, issuer: None })).await;
    let (outcome, message) = namespace_outcome(&app.url("/"), NS, None).await;
    assert_eq!(outcome, "error", "{message}");
    assert!(message.as_str().unwrap().contains("unauthorized"), "{message}");

    let token = jwt(&json!({"sub": "ann", "exp": unix_now() + 600}), key);
    let ann = Peer::connect_ns(&app.url("/"), NS, Some(json!({"token": token}))).await;
    let as_bob = ann.ack("room-created", json!({"data": {"id": "mine", "hostId": "bob"}})).await;
    assert_eq!(as_bob["error"]["code"], "unauthorized", "{as_bob}");
    // The refused room was not made: the id is still free for ann.
    assert_eq!(ann.ack("room-created", json!({"data": {"id": "mine", "hostId": "ann"}})).await["ok"], true);
}

/// Issue 17, problem 8: a join request repeated while it waits asks the host
/// once (and arms one timer), however often it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_request_repeated_while_it_waits_reaches_the_host_once() {
    let app = spawn_app().await;
    let mut host = vip_host(&app).await;
    let jo = dashboard(&app).await;
    for _ in 0..50 {
        let asked = jo.ack("join-request", json!({"roomId": "vip", "userId": "jo", "userName": "Jo"})).await;
        assert_eq!(asked, json!({"ok": true, "status": "pending"}));
    }
    assert_eq!(host.wait_for("join-request", |_| true).await["userId"], "jo");
    // Anything sent to the host before this answer has arrived by now.
    assert_eq!(host.ack("room-list-request", json!({})).await["ok"], true);
    let again = host.received_so_far().into_iter().filter(|(e, _)| e == "join-request").count();
    assert_eq!(again, 0, "the host was asked once");
}

/// Issue 17, problem 8: requests in many users' names to one host each ask
/// the host and arm a 60 s timer; they are limited per room (a burst of 20,
/// then 2 a second), the rest refused as `rate-limited`, and the host is
/// asked exactly once per request let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_requests_in_many_names_to_one_host_are_rate_limited() {
    let app = spawn_app().await;
    let mut host = vip_host(&app).await;
    let flooder = dashboard(&app).await;
    let (mut pending, mut limited) = (0, 0);
    for n in 0..60 {
        let asked =
            flooder.ack("join-request", json!({"roomId": "vip", "userId": format!("u{n}"), "userName": "U"})).await;
        match (asked["status"].as_str(), asked["error"]["code"].as_str()) {
            (Some("pending"), _) => pending += 1,
            (_, Some("rate-limited")) => limited += 1,
            _ => panic!("request {n}: {asked}"),
        }
    }
    // 20 at once, then 2 a second while the loop runs (well under 5 s).
    assert!((20..=30).contains(&pending), "{pending} requests reached the host");
    assert_eq!(pending + limited, 60);
    assert_eq!(host.ack("room-list-request", json!({})).await["ok"], true);
    let asked = host.received_so_far().into_iter().filter(|(e, _)| e == "join-request").count();
    assert_eq!(asked, pending, "the host was asked once per request let through");
}

/// Issue 17, problem 9: every directory connect and disconnect used to send
/// `client_count` to every directory client at once, so one client looping
/// connect/disconnect made the server send a count per change to everyone.
/// Counts now go out coalesced (at most one every 250 ms): 40 raw
/// connect/disconnect cycles (80 changes) reach a watcher as a few counts,
/// and the last one is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_looping_connect_and_disconnect_does_not_make_a_count_per_change_for_everyone() {
    let app = spawn_app().await;
    let mut watcher = dashboard(&app).await;
    watcher.wait_for("client_count", |e| e["count"] == 1).await;
    let http = reqwest::Client::new();
    let base = app.url("/socket.io/?EIO=4&transport=polling");
    for _ in 0..40 {
        let open = http.get(&base).send().await.unwrap().text().await.unwrap();
        let handshake: Value = serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
        let url = format!("{base}&sid={}", handshake["sid"].as_str().unwrap());
        assert_eq!(http.post(&url).body("40/dashboard,").send().await.unwrap().status(), 200);
        // Connected once the namespace's CONNECT is acked (a poll may bring only a ping first).
        let mut acked = false;
        for _ in 0..20 {
            let polled = http.get(&url).send().await.unwrap().text().await.unwrap();
            if polled.contains("40/dashboard,") {
                acked = true;
                break;
            }
        }
        assert!(acked, "the namespace CONNECT was acked: the cycle counts");
        assert_eq!(http.post(&url).body("41/dashboard,").send().await.unwrap().status(), 200);
    }
    // Two more watchers mark the end: a count of 3 never happens during the cycles.
    let _markers = (dashboard(&app).await, dashboard(&app).await);
    let mut counts = 0;
    loop {
        let (name, event) = watcher.next().await;
        if name == "client_count" {
            counts += 1;
            if event["count"] == 3 {
                break;
            }
        }
    }
    assert!(counts < 40, "{counts} client_count events for 80 changes: not coalesced");
}
