//! A handler that panics takes down neither the server nor any connection.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use switchboard::domain::{ConnId, Request, RoomId, RoomMeta, Route, UserId};
use switchboard::store::StoreError;
use switchboard::store::rooms::grace::{HeldSeat, Keeping, KeptRelay};
use switchboard::store::rooms::memory::MemoryStore;
use switchboard::store::rooms::{JoinOutcome, LeaveOutcome, RoomPage, RoomSnapshot, RoomStore, RoomStoreError, Upkept};
use tokio::net::TcpListener;

use crate::helpers::{Peer, Transport};

/// The memory store, except that routing a relay in room "boom" panics.
struct Booby(MemoryStore);

#[async_trait]
impl RoomStore for Booby {
    async fn join(&self, r: &RoomId, u: &UserId, c: &ConnId, max: usize) -> Result<JoinOutcome, RoomStoreError> {
        self.0.join(r, u, c, max).await
    }
    async fn create(&self, r: &RoomId, meta: RoomMeta, c: &ConnId) -> Result<JoinOutcome, RoomStoreError> {
        self.0.create(r, meta, c).await
    }
    async fn request(&self, r: &RoomId, u: &UserId, now_ms: u64, deadline_ms: u64) -> Result<Request, RoomStoreError> {
        self.0.request(r, u, now_ms, deadline_ms).await
    }
    async fn decide(&self, r: &RoomId, by: &ConnId, u: &UserId, approve: bool) -> Result<(), RoomStoreError> {
        self.0.decide(r, by, u, approve).await
    }
    async fn expire_request(&self, r: &RoomId, u: &UserId, now_ms: u64) -> Result<bool, StoreError> {
        self.0.expire_request(r, u, now_ms).await
    }
    async fn name_user(&self, r: &RoomId, u: &UserId, name: &str) -> Result<(), StoreError> {
        self.0.name_user(r, u, name).await
    }
    async fn leave(&self, r: &RoomId, c: &ConnId) -> Result<Option<LeaveOutcome>, StoreError> {
        self.0.leave(r, c).await
    }
    async fn leave_all(&self, c: &ConnId) -> Result<Vec<LeaveOutcome>, StoreError> {
        self.0.leave_all(c).await
    }
    async fn hold(&self, c: &ConnId, grace_ms: u64) -> Result<Vec<HeldSeat>, StoreError> {
        self.0.hold(c, grace_ms).await
    }
    async fn keep(&self, r: &RoomId, to: &UserId, relay: &KeptRelay, max: usize) -> Result<Keeping, StoreError> {
        self.0.keep(r, to, relay, max).await
    }
    async fn take_kept(&self, r: &RoomId, u: &UserId, c: &ConnId, max: usize) -> Result<Vec<KeptRelay>, StoreError> {
        self.0.take_kept(r, u, c, max).await
    }
    async fn route(&self, r: &RoomId, from: &ConnId, to: &UserId) -> Result<Route, RoomStoreError> {
        assert!(r.as_str() != "boom", "a bug in a handler");
        self.0.route(r, from, to).await
    }
    async fn room(&self, r: &RoomId) -> Result<Option<RoomSnapshot>, StoreError> {
        self.0.room(r).await
    }
    async fn list(&self, offset: usize, limit: usize) -> Result<RoomPage, StoreError> {
        self.0.list(offset, limit).await
    }
    async fn count(&self) -> Result<usize, StoreError> {
        self.0.count().await
    }
    async fn maintain(&self) -> Result<Upkept, StoreError> {
        self.0.maintain().await
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Log lines written while the guard lives, by this thread only (hence the
/// current-thread runtime below: the server's tasks all run on this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_handler_leaves_the_server_and_every_connection_working() {
    let (logs, _guard) = Captured::start();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(Booby(MemoryStore::new()));
    let server = switchboard::server::run_with_store(listener, Default::default(), store, std::future::pending());
    let server = tokio::spawn(server);
    let url = format!("http://{addr}/");

    let alice = Peer::joined_url(&url, Transport::Websocket, "boom", "alice").await;
    let mut bob = Peer::joined_url(&url, Transport::Websocket, "boom", "bob").await;
    let mut carol = Peer::joined_url(&url, Transport::Polling, "calm", "carol").await;
    let dave = Peer::joined_url(&url, Transport::Polling, "calm", "dave").await;
    carol.expect("user-joined").await;

    for n in 0..3 {
        // The relay handler panics; alice gets no answer for it, and nothing else breaks.
        alice.emit("offer", json!({"roomId": "boom", "targetId": "bob", "offer": {"n": n}})).await;
    }
    // The same connection goes on: its next events are handled, in order.
    let ack = alice.ack("join-room", json!({"roomId": "calm", "userId": "alice"})).await;
    assert_eq!(ack["users"], json!(["carol", "dave", "alice"]));
    // Bob, in the room whose relays panic, is still served: his relay into "calm",
    // a room he is not in, is handled and answered with not-in-room.
    bob.emit("answer", json!({"roomId": "calm", "targetId": "alice", "answer": {}})).await;
    assert_eq!(bob.expect("signaling-error").await["code"], "not-in-room");
    // Other connections are untouched.
    dave.emit("offer", json!({"roomId": "calm", "targetId": "carol", "offer": {"still": "works"}})).await;
    assert_eq!(carol.expect_skipping("offer", &["user-joined"]).await["offer"], json!({"still": "works"}));
    assert!(!server.is_finished(), "the server is still running");
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    // Each panic was logged as an error, naming the connection.
    let panicked: Vec<_> = logs.lines().into_iter().filter(|l| l.contains("event handler panicked")).collect();
    assert_eq!(panicked.len(), 3, "{:?}", logs.lines());
    assert!(panicked.iter().all(|l| l.contains("ERROR") && l.contains("conn_id=")), "{panicked:?}");
}
