//! The rules both worker pool engines keep.

use fred::prelude::*;

use super::WorkerStore;
use super::memory::MemoryWorkers;
use super::redis::RedisWorkers;
use crate::domain::ConnId;
use crate::domain::worker::WorkerRecord;
use crate::testing::RedisProcess;

fn worker(id: &str, conn: &str, last_seen: u64) -> WorkerRecord {
    WorkerRecord {
        worker_id: id.into(),
        region: "us-west".into(),
        capacity: 100,
        last_seen,
        instance: "a".into(),
        conn: ConnId::new(conn),
    }
}

async fn pool(s: &dyn WorkerStore) {
    s.put(worker("w2", "c2", 10)).await.unwrap();
    assert_eq!(s.put(worker("w1", "c1", 10)).await.unwrap(), None);
    assert_eq!(s.put(worker("w1", "c3", 20)).await.unwrap().map(|w| w.conn), Some(ConnId::new("c1")), "taken over");
    assert!(!s.refresh(&worker("w1", "c1", 30)).await.unwrap(), "the older connection refreshes nothing");
    assert!(!s.remove("w1", &ConnId::new("c1")).await.unwrap(), "an older connection removes nothing");
    assert!(s.refresh(&worker("w1", "c3", 20)).await.unwrap());
    assert_eq!(s.get("w1").await.unwrap().map(|w| w.conn), Some(ConnId::new("c3")));
    assert_eq!(s.get("w9").await.unwrap(), None);
    let all = s.all().await.unwrap();
    assert_eq!(all.iter().map(|w| (w.worker_id.as_str(), w.last_seen)).collect::<Vec<_>>(), [("w1", 20), ("w2", 10)]);
    assert!(all[0].healthy(1019, 1000) && !all[0].healthy(1020, 1000));
    assert!(s.remove("w1", &ConnId::new("c3")).await.unwrap());
    assert_eq!(s.all().await.unwrap().len(), 1);

    // Silent workers are forgotten; one heard from since stays.
    s.put(worker("w3", "c4", 50)).await.unwrap();
    s.put(worker("w4", "c5", 51)).await.unwrap();
    assert_eq!(s.forget_silent(50).await.unwrap(), ["w2", "w3"]);
    assert_eq!(s.all().await.unwrap().iter().map(|w| w.worker_id.as_str()).collect::<Vec<_>>(), ["w4"]);
    assert!(s.forget_silent(50).await.unwrap().is_empty());
    // A forgotten worker that heartbeats again is back.
    assert!(s.refresh(&worker("w3", "c4", 60)).await.unwrap());
    assert_eq!(s.get("w3").await.unwrap().map(|w| w.last_seen), Some(60));
}

#[tokio::test]
async fn memory_keeps_the_pool() {
    pool(&MemoryWorkers::default()).await;
}

#[tokio::test]
async fn redis_keeps_the_pool() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    pool(&RedisWorkers::new(client, "test")).await;
}
