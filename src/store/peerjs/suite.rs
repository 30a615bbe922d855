//! The rules both PeerJS engines keep.

use std::time::Duration;

use fred::prelude::*;

use super::memory::MemoryPeers;
use super::redis::RedisPeers;
use super::{Claim, Expired, Holder, PeerStore};
use crate::domain::ConnId;
use crate::domain::peerjs::{Forwarded, PeerId, PeerMessage, Waiting};
use crate::testing::RedisProcess;

fn id(s: &str) -> PeerId {
    PeerId::parse(s).unwrap()
}

fn holder(token: &str, conn: &str, instance: &str) -> Holder {
    Holder { token: token.into(), conn: ConnId::new(conn), instance: instance.into() }
}

fn waiting(src: &str, dst: &str, at: u64) -> Waiting {
    let message = PeerMessage { kind: Forwarded::Offer, src: id(src), dst: id(dst), payload: Some(at.into()) };
    Waiting { message, at }
}

const KEEP: Duration = Duration::from_secs(60);

async fn ids_and_queues(s: &dyn PeerStore) {
    assert_eq!(s.claim(&id("ann"), &holder("t1", "c1", "a"), 2).await.unwrap(), Claim::Opened);
    assert_eq!(s.claim(&id("ann"), &holder("t2", "c2", "a"), 2).await.unwrap(), Claim::Taken, "another token");
    assert_eq!(s.claim(&id("bob"), &holder("t3", "c3", "a"), 2).await.unwrap(), Claim::Opened);
    assert_eq!(s.claim(&id("cy"), &holder("t4", "c4", "a"), 2).await.unwrap(), Claim::Full, "the limit");
    assert_eq!(
        s.claim(&id("ann"), &holder("t1", "c5", "a"), 2).await.unwrap(),
        Claim::TookOver(ConnId::new("c1")),
        "the same token takes over, even at the limit"
    );
    assert_eq!(s.holder(&id("ann")).await.unwrap(), Some(holder("t1", "c5", "a")));
    assert!(!s.release(&id("ann"), &ConnId::new("c1")).await.unwrap(), "not by the older connection");
    let mut ids = s.ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, vec![id("ann"), id("bob")]);
    assert!(s.release(&id("ann"), &ConnId::new("c5")).await.unwrap());
    assert_eq!(s.holder(&id("ann")).await.unwrap(), None);
    assert!(s.restore(&id("ann"), &holder("t1", "c5", "a")).await.unwrap(), "a gap is filled");
    assert!(s.restore(&id("ann"), &holder("t1", "c5", "a")).await.unwrap(), "its own record is fine");
    assert!(!s.restore(&id("bob"), &holder("tx", "c9", "a")).await.unwrap(), "never replaces another");

    assert!(s.enqueue(&waiting("ann", "dan", 10), 2, KEEP).await.unwrap());
    assert!(s.enqueue(&waiting("bob", "dan", 20), 2, KEEP).await.unwrap());
    assert!(!s.enqueue(&waiting("ann", "dan", 30), 2, KEEP).await.unwrap(), "at most max wait");
    assert_eq!(s.expire(&id("dan"), 9).await.unwrap(), Expired::Since(10), "not old enough");
    assert_eq!(s.take(&id("dan")).await.unwrap(), vec![waiting("ann", "dan", 10), waiting("bob", "dan", 20)]);
    assert_eq!(s.take(&id("dan")).await.unwrap(), vec![], "taken once");
    assert_eq!(s.expire(&id("dan"), 100).await.unwrap(), Expired::Empty);
    s.enqueue(&waiting("ann", "eve", 10), 8, KEEP).await.unwrap();
    s.enqueue(&waiting("ann", "eve", 50), 8, KEEP).await.unwrap();
    assert_eq!(
        s.expire(&id("eve"), 10).await.unwrap(),
        Expired::Taken(vec![waiting("ann", "eve", 10), waiting("ann", "eve", 50)]),
        "the whole queue goes once its oldest is old enough"
    );
}

#[tokio::test]
async fn memory_keeps_ids_unique_and_queues_in_order() {
    ids_and_queues(&MemoryPeers::new()).await;
}

async fn redis_client(redis: &RedisProcess) -> Client {
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    client
}

#[tokio::test]
async fn redis_keeps_ids_unique_and_queues_in_order() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    ids_and_queues(&RedisPeers::new(redis_client(&redis).await, "test", "a")).await;
}

#[tokio::test]
async fn redis_frees_the_ids_of_a_dead_instance_at_once_and_forgets_them() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let client = redis_client(&redis).await;
    let alive = crate::store::redis::instances::alive_key("test", "b");
    let _: () = client.set(&alive, "1", None, None, false).await.unwrap();
    let (a, b) = (RedisPeers::new(client.clone(), "test", "a"), RedisPeers::new(client.clone(), "test", "b"));
    assert_eq!(b.claim(&id("ann"), &holder("t1", "c1", "b"), 10).await.unwrap(), Claim::Opened);
    assert_eq!(a.claim(&id("ann"), &holder("t2", "c2", "a"), 10).await.unwrap(), Claim::Taken, "b is alive");
    assert_eq!(a.ids().await.unwrap(), vec![id("ann")]);
    let _: () = client.del(&alive).await.unwrap();
    assert_eq!(a.holder(&id("ann")).await.unwrap(), None, "a dead instance's id is no destination");
    assert!(a.ids().await.unwrap().is_empty(), "nor listed");
    b.claim(&id("bob"), &holder("t3", "c3", "b"), 10).await.unwrap();
    assert_eq!(a.claim(&id("ann"), &holder("t2", "c2", "a"), 10).await.unwrap(), Claim::Opened, "it is free");
    assert_eq!(a.forget_instance("b").await.unwrap(), 1, "bob goes; ann is a's now");
    assert_eq!(a.holder(&id("ann")).await.unwrap(), Some(holder("t2", "c2", "a")));
}
