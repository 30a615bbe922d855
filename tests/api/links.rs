//! The core is protocol-neutral: a connection that is not socket.io at all
//! (a `Link` of the test's own, as the raw-WebSocket protocols will be)
//! meets socket.io clients in the same room and channel, on one instance and
//! across a cluster, through the very same core operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use switchboard::config::Config;
use switchboard::core::event::Event;
use switchboard::core::link::{Link, Undelivered};
use switchboard::core::rooms::Actor;
use switchboard::core::{Core, Stores};
use switchboard::domain::signal::SignalKind;
use switchboard::domain::{ConnId, RoomId, UserId};
use switchboard::testing::RedisProcess;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cluster::cluster;
use crate::helpers::{Peer, Transport, WAIT};

/// A connection of no protocol: what the core sends it lands in a channel.
struct Raw {
    id: ConnId,
    events: mpsc::UnboundedSender<Event>,
    closed: AtomicBool,
}

impl Link for Raw {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, event: &Event) -> Result<(), Undelivered> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Undelivered::Gone);
        }
        self.events.send(event.clone()).map_err(|_| Undelivered::Gone)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A raw connection attached to `core`, and what it receives.
fn raw(core: &Core, id: &str) -> (Arc<dyn Link>, mpsc::UnboundedReceiver<Event>) {
    let (events, received) = mpsc::unbounded_channel();
    let link: Arc<dyn Link> = Arc::new(Raw { id: ConnId::new(id), events, closed: AtomicBool::new(false) });
    core.courier.attach(&link);
    (link, received)
}

async fn next(received: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, received.recv()).await.expect("an event in time").expect("the link is attached")
}

/// Serves `core` on 127.0.0.1:0; the server's base URL.
async fn serve(core: Arc<Core>, subscriptions: Option<switchboard::cluster::redis::Subscriptions>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(switchboard::server::run_core(listener, core, subscriptions, std::future::pending()));
    url
}

fn ids(room: &str, user: &str) -> (RoomId, UserId) {
    (RoomId::parse(room).unwrap(), UserId::parse(user).unwrap())
}

/// The raw connection and a socket.io client `sio` meet in `room`: each is
/// told of the other, relays cross both ways, and the raw one's departure reaches `sio`.
async fn meet(core: &Arc<Core>, link: &Arc<dyn Link>, received: &mut mpsc::UnboundedReceiver<Event>, sio: &mut Peer) {
    let (room, raw_user) = ids("mixed", "raw");
    let by = Actor { conn: link.id(), token_user: None, announced: true };
    core.rooms().join(by, &room, &raw_user).await.unwrap();
    assert_eq!(next(received).await, Event::RoomUsers { room: room.clone(), users: vec![raw_user.clone()] });

    let ack = sio.ack("join-room", json!({"roomId": "mixed", "userId": "sio"})).await;
    assert_eq!(ack["users"], json!(["raw", "sio"]), "the socket.io client sees the raw one in the room");
    let (_, sio_user) = ids("mixed", "sio");
    assert_eq!(next(received).await, Event::UserJoined { room: room.clone(), user: sio_user.clone() });

    let offer = json!({"roomId": "mixed", "targetId": "raw", "offer": {"sdp": "from socket.io"}});
    assert_eq!(sio.ack("offer", offer).await["ok"], true);
    let relayed = Event::Relay {
        room: room.clone(),
        sender: sio_user.clone(),
        kind: SignalKind::Offer,
        body: json!({"sdp": "from socket.io"}),
    };
    assert_eq!(next(received).await, relayed);

    core.rooms().relay(by, &room, &sio_user, SignalKind::Answer, json!({"sdp": "from raw"})).await.unwrap();
    let answer = sio.expect_skipping("answer", &["user-joined", "room-users"]).await;
    assert_eq!((answer["senderId"].clone(), answer["answer"].clone()), (json!("raw"), json!({"sdp": "from raw"})));

    core.rooms().leave_all(link.id(), true).await;
    let left = sio.expect_skipping("user-left", &["user-joined", "room-users"]).await;
    assert_eq!(left, json!({"roomId": "mixed", "userId": "raw"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_of_another_protocol_meets_socket_io_clients_in_one_room_on_one_instance() {
    let core = Arc::new(Core::new(Arc::new(Config::default()), Stores::memory(), "local", None));
    let url = serve(core.clone(), None).await;
    let (link, mut received) = raw(&core, "raw-1");
    let mut sio = Peer::connect_to(&url, Transport::Websocket).await;
    meet(&core, &link, &mut received, &mut sio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_of_another_protocol_meets_socket_io_clients_across_instances_in_rooms_and_channels() {
    let redis = tokio::task::block_in_place(RedisProcess::start);
    let config = Config { redis_url: Some(redis.url()), ..Config::default() };
    let (core, subscriptions) = switchboard::server::cluster(Arc::new(config)).await.unwrap();
    serve(core.clone(), Some(subscriptions)).await;
    let other = cluster(&redis, 1, |_| {}).await.remove(0);
    let (link, mut received) = raw(&core, "raw-2");
    // In a room, with the socket.io client on the other instance.
    let mut sio = Peer::connect(&other, Transport::Websocket).await;
    meet(&core, &link, &mut received, &mut sio).await;

    // In a directory channel: a socket.io subscriber's event reaches the raw one.
    core.directory().subscribe(link.id(), "news").await.unwrap();
    let mut dashboard = Peer::connect_ns(&other.url("/"), "/dashboard", None).await;
    assert_eq!(dashboard.ack("subscribe", json!({"channel": "news"})).await["ok"], true);
    let sent = dashboard.ack("headline", json!({"channel": "news", "text": "hello"})).await;
    assert_eq!(sent["ok"], true);
    let expected =
        Event::ChannelMessage { event: "headline".into(), payload: json!({"channel": "news", "text": "hello"}) };
    loop {
        // The raw connection is in no room now; only the channel message is for it.
        if next(&mut received).await == expected {
            break;
        }
    }
    // And back: the raw connection's event reaches the socket.io subscriber.
    let back = json!({"channel": "news", "text": "from raw"});
    core.directory().relay(link.id(), "news", "headline".into(), back.clone()).await.unwrap();
    assert_eq!(dashboard.wait_for("headline", |_| true).await, back);
}
