//! The rules both mesh engines keep.

use std::time::Duration;

use fred::prelude::*;

use super::MeshStore;
use super::memory::MemoryMesh;
use super::redis::RedisMesh;
use crate::domain::ConnId;
use crate::domain::mesh::{AdminSeat, ClientId, MeshClient, OrgId};
use crate::testing::RedisProcess;

fn org() -> OrgId {
    OrgId::parse("acme").unwrap()
}

fn seat(client: &str, instance: &str, main: bool) -> AdminSeat {
    AdminSeat { client: ClientId::parse(client).unwrap(), instance: instance.into(), main }
}

fn client(id: &str, conn: &str, joined_at: u64) -> MeshClient {
    MeshClient {
        id: ClientId::parse(id).unwrap(),
        name: id.into(),
        capabilities: vec!["admin.manage".into()],
        joined_at,
        last_seen: joined_at,
        instance: "a".into(),
        conn: ConnId::new(conn),
    }
}

/// The rules both engines keep.
async fn seats_and_clients(s: &dyn MeshStore) {
    const TTL: Duration = Duration::from_secs(30);
    assert!(s.claim_admin(&org(), &seat("temp", "a", false), TTL).await.unwrap());
    assert!(!s.claim_admin(&org(), &seat("rival", "b", false), TTL).await.unwrap(), "one holder");
    assert!(s.renew_admin(&org(), &seat("temp", "a", false), TTL).await.unwrap());
    assert!(!s.renew_admin(&org(), &seat("rival", "b", false), TTL).await.unwrap());
    assert!(
        s.claim_admin(&org(), &seat("chief", "b", true), TTL).await.unwrap(),
        "a main admin replaces a temporary one"
    );
    assert!(!s.claim_admin(&org(), &seat("chief2", "a", true), TTL).await.unwrap(), "not another main admin");
    assert!(!s.release_admin(&org(), &ClientId::parse("temp").unwrap()).await.unwrap());
    assert!(s.release_admin(&org(), &ClientId::parse("chief").unwrap()).await.unwrap());
    assert_eq!(s.admin(&org()).await.unwrap(), None);
    assert!(s.claim_admin(&org(), &seat("short", "a", false), Duration::from_millis(50)).await.unwrap());
    let free = async {
        while s.admin(&org()).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), free).await.expect("the lease runs out");

    assert_eq!(s.join(&org(), client("ann", "c1", 1)).await.unwrap(), None);
    s.join(&org(), client("bob", "c2", 2)).await.unwrap();
    let replaced = s.join(&org(), client("ann", "c3", 3)).await.unwrap().unwrap();
    assert_eq!(replaced.conn, ConnId::new("c1"), "the older connection is handed back");
    assert!(
        !s.leave(&org(), &ClientId::parse("ann").unwrap(), &ConnId::new("c1")).await.unwrap(),
        "not by the old one"
    );
    s.touch(&org(), &ClientId::parse("ann").unwrap(), &ConnId::new("c1"), 500).await.unwrap();
    s.touch(&org(), &ClientId::parse("bob").unwrap(), &ConnId::new("c2"), 99).await.unwrap();
    let ids: Vec<_> = s.clients(&org()).await.unwrap().into_iter().map(|c| (c.id, c.last_seen)).collect();
    assert_eq!(ids, vec![(ClientId::parse("bob").unwrap(), 99), (ClientId::parse("ann").unwrap(), 3)]);
    assert!(s.leave(&org(), &ClientId::parse("ann").unwrap(), &ConnId::new("c3")).await.unwrap());
    assert!(s.clients(&OrgId::parse("other").unwrap()).await.unwrap().is_empty(), "organizations are apart");

    // Putting back (after a data loss) fills a gap and never replaces a record.
    assert!(!s.restore(&org(), client("bob", "c-stale", 1)).await.unwrap(), "bob is there");
    assert!(s.restore(&org(), client("ann", "c3", 7)).await.unwrap(), "ann had left");
    let back: Vec<_> = s.clients(&org()).await.unwrap().into_iter().map(|c| (c.id, c.conn)).collect();
    assert_eq!(
        back,
        vec![
            (ClientId::parse("bob").unwrap(), ConnId::new("c2")),
            (ClientId::parse("ann").unwrap(), ConnId::new("c3"))
        ]
    );
}

#[tokio::test]
async fn memory_keeps_one_admin_per_organization_and_the_client_registry() {
    seats_and_clients(&MemoryMesh::new()).await;
}

#[tokio::test]
async fn redis_keeps_one_admin_per_organization_and_the_client_registry() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    seats_and_clients(&RedisMesh::new(client, "test", "a")).await;
}

#[tokio::test]
async fn redis_prunes_only_the_records_of_its_own_connections_that_are_gone() {
    let redis = tokio::task::spawn_blocking(RedisProcess::start).await.unwrap();
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let s = RedisMesh::new(client, "test", "a");
    s.join(&org(), self::client("ann", "c1", 1)).await.unwrap();
    s.join(&org(), self::client("bob", "c2", 2)).await.unwrap();
    let mut elsewhere = self::client("eve", "c9", 3);
    elsewhere.instance = "b".into();
    s.join(&org(), elsewhere).await.unwrap();
    // Only ann's connection is live here; eve is another instance's.
    let live = |_: &OrgId, _: &ClientId, conn: &ConnId| conn == &ConnId::new("c1");
    assert_eq!(s.prune(&live).await.unwrap(), 1);
    let ids: Vec<_> = s.clients(&org()).await.unwrap().into_iter().map(|c| c.id.as_str().to_owned()).collect();
    assert!(ids.contains(&"ann".to_owned()) && !ids.contains(&"bob".to_owned()), "{ids:?}");
    assert_eq!(s.prune(&live).await.unwrap(), 0, "once");
}
