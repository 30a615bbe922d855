//! Mesh clients and admin seats behind one trait (seed 000): which clients
//! each organization has (cluster-wide), and who holds its admin seat.
//!
//! The admin seat is a lease held for an instance: the instance holding the
//! admin's connection renews it; if that instance dies the lease runs out and
//! another instance elects a new admin. Engines: [`MemoryMesh`] (one
//! instance) and [`RedisMesh`]. Times are Unix milliseconds, passed in.
//!
//! Redis layout (prefix `p`): `p:m:org:{org}` hash, client id to its JSON;
//! `p:m:orgs` set of organizations with clients; `p:m:admin:{org}` string,
//! the admin seat's JSON, with a TTL (the lease).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::redis::{HASH_CAS, alive_key, key, unavailable};
use crate::domain::mesh::{Candidate, ClientId, OrgId};

/// A connected mesh client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeshClient {
    /// Its id in the organization.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// Declared capabilities.
    pub capabilities: Vec<String>,
    /// When it joined (Unix ms).
    pub joined_at: u64,
    /// Its last heartbeat or message (Unix ms).
    pub last_seen: u64,
    /// The instance holding its connection.
    pub instance: String,
    /// Its socket.io connection id.
    pub conn: String,
}

impl MeshClient {
    /// As the election sees it.
    pub fn candidate(&self) -> Candidate {
        Candidate { id: self.id.clone(), capabilities: self.capabilities.clone(), joined_at: self.joined_at }
    }
}

/// Who holds an organization's admin seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSeat {
    /// The admin client.
    pub client: ClientId,
    /// The instance holding the admin's connection (it renews the lease).
    pub instance: String,
    /// Whether it is a main admin device (not a temporary admin).
    pub main: bool,
}

/// Clients and admin seats: the operations the `/mesh` namespace needs.
#[async_trait]
pub trait MeshStore: Send + Sync + 'static {
    /// Records `client` in `org` (replacing an older connection of the same id).
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError>;

    /// Refreshes `client`'s last-seen time, if `conn` still holds it.
    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &str, now: u64) -> Result<(), StoreError>;

    /// Removes `client` from `org` if `conn` still holds it; whether it did.
    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &str) -> Result<bool, StoreError>;

    /// The clients of `org` whose instance is alive, earliest join first.
    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError>;

    /// The admin seat of `org`, if its lease runs.
    async fn admin(&self, org: &OrgId) -> Result<Option<AdminSeat>, StoreError>;

    /// Takes the seat for `seat` for `ttl` if it is empty, or replaces a
    /// temporary admin when `seat` is a main admin; whether `seat` holds it now.
    async fn claim_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError>;

    /// Renews the lease if `seat` holds it; whether it does.
    async fn renew_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError>;

    /// Empties the seat if `client` holds it; whether it did.
    async fn release_admin(&self, org: &OrgId, client: &ClientId) -> Result<bool, StoreError>;
}

/// Mesh state in this process's memory.
#[derive(Default)]
pub struct MemoryMesh {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    orgs: HashMap<OrgId, Vec<MeshClient>>,
    /// Seat and lease deadline (an `Instant`-free deadline in ms since the store's epoch).
    admins: HashMap<OrgId, (AdminSeat, std::time::Instant)>,
}

impl MemoryMesh {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MeshStore for MemoryMesh {
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError> {
        let mut state = self.lock();
        let clients = state.orgs.entry(org.clone()).or_default();
        let old = clients.iter().position(|c| c.id == client.id).map(|at| clients.remove(at));
        clients.push(client);
        Ok(old)
    }

    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &str, now: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(c) =
            state.orgs.get_mut(org).and_then(|cs| cs.iter_mut().find(|c| &c.id == client && c.conn == conn))
        {
            c.last_seen = c.last_seen.max(now);
        }
        Ok(())
    }

    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(clients) = state.orgs.get_mut(org) else { return Ok(false) };
        let before = clients.len();
        clients.retain(|c| !(&c.id == client && c.conn == conn));
        let left = before != clients.len();
        if clients.is_empty() {
            state.orgs.remove(org);
        }
        Ok(left)
    }

    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError> {
        Ok(self.lock().orgs.get(org).cloned().unwrap_or_default())
    }

    async fn admin(&self, org: &OrgId) -> Result<Option<AdminSeat>, StoreError> {
        let state = self.lock();
        Ok(state.admins.get(org).filter(|(_, until)| *until > std::time::Instant::now()).map(|(s, _)| s.clone()))
    }

    async fn claim_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = std::time::Instant::now();
        let current = state.admins.get(org).filter(|(_, until)| *until > now).map(|(s, _)| s.clone());
        let free = match &current {
            None => true,
            Some(held) => held == seat || (seat.main && !held.main),
        };
        if free {
            state.admins.insert(org.clone(), (seat.clone(), now + ttl));
        }
        Ok(free)
    }

    async fn renew_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = std::time::Instant::now();
        match state.admins.get_mut(org) {
            Some((held, until)) if held == seat && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_admin(&self, org: &OrgId, client: &ClientId) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.admins.get(org).is_some_and(|(s, _)| &s.client == client) {
            state.admins.remove(org);
            return Ok(true);
        }
        Ok(false)
    }
}

/// Takes the admin seat: KEYS[1] the seat; ARGV: the new seat's JSON, ttl ms,
/// whether it is a main admin ('1'). Free, or held by the same seat, or held
/// by a temporary admin while a main admin claims: taken.
const CLAIM: &str = r#"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  if ARGV[3] ~= '1' or cjson.decode(held)['main'] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Renews (ARGV[2] ms) or deletes (ARGV[2] = '0') the seat if it is still ARGV[1].
const IF_HELD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"#;

/// Mesh state in Redis, shared by every instance.
pub struct RedisMesh {
    client: Client,
    prefix: String,
    instance: String,
    claim: Script,
    if_held: Script,
    cas: Script,
}

impl RedisMesh {
    /// A store over `client` (connected) for instance `instance`.
    pub fn new(client: Client, prefix: &str, instance: &str) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
            claim: Script::from_lua(CLAIM),
            if_held: Script::from_lua(IF_HELD),
            cas: Script::from_lua(HASH_CAS),
        }
    }

    fn org_key(&self, org: &OrgId) -> String {
        key(&self.prefix, &["m", "org", org.as_str()])
    }

    fn admin_key(&self, org: &OrgId) -> String {
        key(&self.prefix, &["m", "admin", org.as_str()])
    }

    /// `client`'s record as stored and decoded.
    async fn read(&self, org: &OrgId, client: &ClientId) -> Result<Option<(String, MeshClient)>, StoreError> {
        let raw: Option<String> = self.client.hget(self.org_key(org), client.as_str()).await.map_err(unavailable)?;
        raw.map(|raw| decode(&raw).map(|c| (raw, c))).transpose()
    }

    /// Replaces `client`'s record `read` by `next` ('' deletes) unless it changed meanwhile.
    async fn swap(&self, org: &OrgId, client: &ClientId, read: String, next: String) -> Result<bool, StoreError> {
        let args = vec![client.as_str().to_owned(), read, next];
        let done: i64 =
            self.cas.evalsha_with_reload(&self.client, vec![self.org_key(org)], args).await.map_err(unavailable)?;
        Ok(done == 1)
    }

    /// Renews `seat` for `ttl_ms` (0: empties it) if it still holds the seat; whether it did.
    async fn if_held(&self, org: &OrgId, seat: &AdminSeat, ttl_ms: u64) -> Result<bool, StoreError> {
        let args = vec![encode(seat)?, ttl_ms.to_string()];
        let keys = vec![self.admin_key(org)];
        let held: i64 = self.if_held.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(held == 1)
    }

    /// Whether `instance` is alive (this one always is).
    async fn alive(&self, instance: &str) -> Result<bool, StoreError> {
        if instance == self.instance {
            return Ok(true);
        }
        self.client.exists(alive_key(&self.prefix, instance)).await.map_err(unavailable)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Unavailable(format!("mesh state in Redis is corrupt: {e}")))
}

#[async_trait]
impl MeshStore for RedisMesh {
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError> {
        let old = self.read(org, &client.id).await?.map(|(_, c)| c);
        let _: () =
            self.client.hset(self.org_key(org), (client.id.as_str(), encode(&client)?)).await.map_err(unavailable)?;
        let _: () = self.client.sadd(key(&self.prefix, &["m", "orgs"]), org.as_str()).await.map_err(unavailable)?;
        Ok(old)
    }

    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &str, now: u64) -> Result<(), StoreError> {
        if let Some((raw, mut c)) = self.read(org, client).await?.filter(|(_, c)| c.conn == conn) {
            c.last_seen = c.last_seen.max(now);
            // A newer connection of the client may have replaced it meanwhile: then nothing.
            self.swap(org, client, raw, encode(&c)?).await?;
        }
        Ok(())
    }

    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &str) -> Result<bool, StoreError> {
        match self.read(org, client).await? {
            Some((raw, c)) if c.conn == conn => self.swap(org, client, raw, String::new()).await,
            _ => Ok(false),
        }
    }

    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError> {
        let raws: HashMap<String, String> = self.client.hgetall(self.org_key(org)).await.map_err(unavailable)?;
        let mut clients = Vec::with_capacity(raws.len());
        for raw in raws.values() {
            let c: MeshClient = decode(raw)?;
            if self.alive(&c.instance).await? {
                clients.push(c);
            }
        }
        clients.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.id.cmp(&b.id)));
        Ok(clients)
    }

    async fn admin(&self, org: &OrgId) -> Result<Option<AdminSeat>, StoreError> {
        let raw: Option<String> = self.client.get(self.admin_key(org)).await.map_err(unavailable)?;
        raw.map(|raw| decode(&raw)).transpose()
    }

    async fn claim_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        let args = vec![encode(seat)?, ttl.as_millis().to_string(), if seat.main { "1" } else { "0" }.to_owned()];
        let taken: i64 =
            self.claim.evalsha_with_reload(&self.client, vec![self.admin_key(org)], args).await.map_err(unavailable)?;
        Ok(taken == 1)
    }

    async fn renew_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        self.if_held(org, seat, ttl.as_millis().max(1) as u64).await
    }

    async fn release_admin(&self, org: &OrgId, client: &ClientId) -> Result<bool, StoreError> {
        let Some(seat) = self.admin(org).await?.filter(|s| &s.client == client) else { return Ok(false) };
        self.if_held(org, &seat, 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            conn: conn.into(),
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
        assert_eq!(replaced.conn, "c1", "the older connection is handed back");
        assert!(!s.leave(&org(), &ClientId::parse("ann").unwrap(), "c1").await.unwrap(), "not by the old one");
        s.touch(&org(), &ClientId::parse("ann").unwrap(), "c1", 500).await.unwrap();
        s.touch(&org(), &ClientId::parse("bob").unwrap(), "c2", 99).await.unwrap();
        let ids: Vec<_> = s.clients(&org()).await.unwrap().into_iter().map(|c| (c.id, c.last_seen)).collect();
        assert_eq!(ids, vec![(ClientId::parse("bob").unwrap(), 99), (ClientId::parse("ann").unwrap(), 3)]);
        assert!(s.leave(&org(), &ClientId::parse("ann").unwrap(), "c3").await.unwrap());
        assert!(s.clients(&OrgId::parse("other").unwrap()).await.unwrap().is_empty(), "organizations are apart");
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
}
