//! Every row of contract v1's default namespace, over websocket and polling.

use serde_json::json;

use crate::helpers::{Peer, TRANSPORTS, Transport, eventually, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_room_acks_with_the_users_and_sends_room_users_to_the_joiner() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("join-{t:?}");
        let mut alice = Peer::connect(&app, t).await;
        let ack = alice.ack("join-room", json!({"roomId": room, "userId": "alice"})).await;
        assert_eq!(ack, json!({"ok": true, "roomId": room, "users": ["alice"]}));
        assert_eq!(alice.expect("room-users").await, json!({"roomId": room, "users": ["alice"]}));

        let mut bob = Peer::connect(&app, t).await;
        let ack = bob.ack("join-room", json!({"roomId": room, "userId": "bob"})).await;
        assert_eq!(ack["users"], json!(["alice", "bob"]));
        assert_eq!(bob.expect("room-users").await, json!({"roomId": room, "users": ["alice", "bob"]}));
        assert_eq!(alice.expect("user-joined").await, json!({"roomId": room, "userId": "bob"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_answer_and_candidates_reach_the_target_only() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("relay-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let mut bob = Peer::joined(&app, t, &room, "bob").await;
        let mut carol = Peer::joined(&app, t, &room, "carol").await;
        alice.expect("user-joined").await;
        alice.expect("user-joined").await;
        bob.expect("user-joined").await;

        let offer = json!({"type": "offer", "sdp": "v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\n"});
        let ack = alice.ack("offer", json!({"roomId": room, "targetId": "bob", "offer": offer})).await;
        assert_eq!(ack, json!({"ok": true}));
        assert_eq!(bob.expect("offer").await, json!({"roomId": room, "senderId": "alice", "offer": offer}));

        let answer = json!({"type": "answer", "sdp": "v=0\r\n"});
        bob.emit("answer", json!({"roomId": room, "targetId": "alice", "answer": answer})).await;
        assert_eq!(alice.expect("answer").await, json!({"roomId": room, "senderId": "bob", "answer": answer}));

        let candidate = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
        alice.emit("ice-candidate", json!({"roomId": room, "targetId": "bob", "candidate": candidate})).await;
        let got = bob.expect("ice-candidate").await;
        assert_eq!(got, json!({"roomId": room, "senderId": "alice", "candidate": candidate}));
        bob.emit("ice-candidate", json!({"roomId": room, "targetId": "alice", "candidate": null})).await;
        assert_eq!(alice.expect("ice-candidate").await["candidate"], json!(null));

        // Carol got none of the above: the first thing she receives is this marker.
        alice.emit("offer", json!({"roomId": room, "targetId": "carol", "offer": {"marker": 1}})).await;
        assert_eq!(carol.expect("offer").await["offer"], json!({"marker": 1}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_room_tells_the_others_and_an_empty_room_is_deleted() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("leave-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let bob = Peer::joined(&app, t, &room, "bob").await;
        alice.expect("user-joined").await;

        assert_eq!(bob.ack("leave-room", json!({"roomId": room})).await, json!({"ok": true, "roomId": room}));
        assert_eq!(alice.expect("user-left").await, json!({"roomId": room, "userId": "bob"}));
        let (status, body) = app.get(&format!("/api/rooms/{room}")).await;
        assert_eq!((status, body["participants"].clone()), (200, json!(["alice"])));

        alice.ack("leave-room", json!({"roomId": room})).await;
        assert_eq!(app.get(&format!("/api/rooms/{room}")).await.0, 404);
        let again = alice.ack("leave-room", json!({"roomId": room})).await;
        assert_eq!(again["error"]["code"], "not-in-room");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_sends_user_left_and_the_room_leaves_the_listing() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("gone-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let bob = Peer::joined(&app, t, &room, "bob").await;
        alice.expect("user-joined").await;

        bob.disconnect().await;
        assert_eq!(alice.expect("user-left").await, json!({"roomId": room, "userId": "bob"}));
        alice.disconnect().await;
        let gone = || async {
            let (_, list) = app.get("/api/rooms").await;
            !list["rooms"].as_array().unwrap().iter().any(|r| r["id"] == room.as_str())
        };
        eventually("the room leaves the listing after its last participant disconnects", gone).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoining_with_the_same_user_id_replaces_the_old_connection() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("rejoin-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let old_bob = Peer::joined(&app, t, &room, "bob").await;
        alice.expect("user-joined").await;

        let mut new_bob = Peer::connect(&app, t).await;
        let ack = new_bob.ack("join-room", json!({"roomId": room, "userId": "bob"})).await;
        assert_eq!(ack["users"], json!(["alice", "bob"]));
        assert_eq!(alice.expect("user-joined").await, json!({"roomId": room, "userId": "bob"}));

        alice.emit("offer", json!({"roomId": room, "targetId": "bob", "offer": {"n": 1}})).await;
        new_bob.expect("room-users").await;
        assert_eq!(new_bob.expect("offer").await["offer"], json!({"n": 1}));
        let stale = old_bob.ack("offer", json!({"roomId": room, "targetId": "alice", "offer": {}})).await;
        assert_eq!(stale["error"]["code"], "not-in-room");

        // The old connection closing does not take the new seat with it.
        old_bob.disconnect().await;
        alice.emit("offer", json!({"roomId": room, "targetId": "bob", "offer": {"n": 2}})).await;
        assert_eq!(new_bob.expect("offer").await["offer"], json!({"n": 2}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_room_again_with_the_same_user_id_changes_nothing_and_peers_are_not_told() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("again-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let mut bob = Peer::joined(&app, t, &room, "bob").await;
        alice.expect("user-joined").await;

        // Alice, first in the join order, joins again on the same connection.
        let ack = alice.ack("join-room", json!({"roomId": room, "userId": "alice"})).await;
        assert_eq!(ack, json!({"ok": true, "roomId": room, "users": ["alice", "bob"]}));
        assert_eq!(alice.expect("room-users").await, json!({"roomId": room, "users": ["alice", "bob"]}));
        let (_, snapshot) = app.get(&format!("/api/rooms/{room}")).await;
        assert_eq!(
            (snapshot["participants"].clone(), snapshot["participantCount"].clone()),
            (json!(["alice", "bob"]), json!(2))
        );

        // Events from one connection are handled in order, and bob's events
        // reach him in order: a user-joined from the rejoin would come before
        // this relay, so bob's very next event being the relay means none was sent.
        alice.emit("offer", json!({"roomId": room, "targetId": "bob", "offer": {"after": "rejoin"}})).await;
        assert_eq!(bob.expect("offer").await["offer"], json!({"after": "rejoin"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_to_yourself_is_allowed() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("self-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
        let ack = alice.ack("offer", json!({"roomId": room, "targetId": "alice", "offer": offer})).await;
        assert_eq!(ack, json!({"ok": true}));
        assert_eq!(alice.expect("offer").await, json!({"roomId": room, "senderId": "alice", "offer": offer}));
        alice.emit("ice-candidate", json!({"roomId": room, "targetId": "alice", "candidate": null})).await;
        assert_eq!(
            alice.expect("ice-candidate").await,
            json!({"roomId": room, "senderId": "alice", "candidate": null})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_with_room_full() {
    let app = spawn_app_with(|c| c.max_room_size = 2).await;
    let t = Transport::Websocket;
    let _a = Peer::joined(&app, t, "small", "a").await;
    let _b = Peer::joined(&app, t, "small", "b").await;
    let c = Peer::connect(&app, t).await;
    let ack = c.ack("join-room", json!({"roomId": "small", "userId": "c"})).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "room-full");
    assert_eq!(app.get("/api/rooms/small").await.1["participantCount"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated_and_one_connection_may_be_in_several() {
    let app = spawn_app().await;
    let t = Transport::Websocket;
    let mut alice = Peer::joined(&app, t, "one", "alice").await;
    let mut bob = Peer::joined(&app, t, "two", "bob").await;

    // Bob is not in room "one": relaying there, or to him through it, fails.
    let ack = alice.ack("offer", json!({"roomId": "one", "targetId": "bob", "offer": {}})).await;
    assert_eq!(ack["error"]["code"], "target-not-found");
    let ack = bob.ack("offer", json!({"roomId": "one", "targetId": "alice", "offer": {}})).await;
    assert_eq!(ack["error"]["code"], "not-in-room");

    // Alice joins "two" as well, on the same connection.
    let ack = alice.ack("join-room", json!({"roomId": "two", "userId": "alice"})).await;
    assert_eq!(ack["users"], json!(["bob", "alice"]));
    alice.expect("room-users").await;
    assert_eq!(bob.expect("user-joined").await, json!({"roomId": "two", "userId": "alice"}));
    bob.emit("offer", json!({"roomId": "two", "targetId": "alice", "offer": {"via": "two"}})).await;
    assert_eq!(alice.expect("offer").await, json!({"roomId": "two", "senderId": "bob", "offer": {"via": "two"}}));

    // Disconnecting leaves both rooms; only room "two" has someone to tell.
    alice.disconnect().await;
    assert_eq!(bob.expect("user-left").await, json!({"roomId": "two", "userId": "alice"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_without_an_ack_come_back_as_signaling_error() {
    let app = spawn_app().await;
    for t in TRANSPORTS {
        let room = format!("noack-{t:?}");
        let mut alice = Peer::joined(&app, t, &room, "alice").await;
        alice.emit("offer", json!({"roomId": room, "targetId": "nobody", "offer": {}})).await;
        let err = alice.expect("signaling-error").await;
        assert_eq!((err["event"].clone(), err["code"].clone()), (json!("offer"), json!("target-not-found")));
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));

        alice.emit("answer", json!({"roomId": "elsewhere", "targetId": "x", "answer": {}})).await;
        assert_eq!(alice.expect("signaling-error").await["code"], "not-in-room");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped_and_its_peers_told_when_its_grace_ends() {
    let app = spawn_app_with(|c| {
        c.ping_interval = std::time::Duration::from_millis(300);
        c.ping_timeout = std::time::Duration::from_millis(300);
        c.grace.resume_grace = std::time::Duration::from_millis(300);
    })
    .await;
    let mut alice = Peer::joined(&app, Transport::Websocket, "hb", "alice").await;
    // Joins, then never polls again, so it never answers a ping.
    let _silent = crate::helpers::StalledPoller::join(&app, "hb", "silent").await;
    assert_eq!(alice.expect("user-joined").await["userId"], "silent");
    // With the default 25 s + 20 s heartbeat this would outlast the wait.
    assert_eq!(alice.expect("user-left").await, json!({"roomId": "hb", "userId": "silent"}));
}
