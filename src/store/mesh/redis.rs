//! The mesh in Redis (`p` is the prefix in braces, `{switchboard}` by default): `p:m:org:{org}` hash, client id to its
//! JSON; `p:m:admin:{org}`
//! string, the admin seat's JSON, with a TTL (the lease); `p:m:inst:{instance}`
//! set, the clients an instance registered (organization and id), so a
//! survivor deletes them once it is dead. A client whose instance is dead is
//! not listed meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::MeshStore;
use crate::domain::ConnId;
use crate::domain::mesh::{AdminSeat, ClientId, MeshClient, OrgId};
use crate::store::StoreError;
use crate::store::redis::instances::Instances;
use crate::store::redis::{HashCas, key, unavailable};

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

/// The engine's name in the per-instance notes ([`Instances::note`]).
const ENGINE: &str = "m";

/// Between organization and client id in a note (ids hold no control character).
const SEP: char = '\u{1f}';

/// How a client of an organization is noted.
fn entry(org: &OrgId, client: &ClientId) -> String {
    format!("{org}{SEP}{client}")
}

/// Mesh state in Redis, shared by every instance.
pub struct RedisMesh {
    client: Client,
    prefix: String,
    instances: Instances,
    claim: Script,
    if_held: Script,
    cas: HashCas,
}

impl RedisMesh {
    /// A store over `client` (connected) for instance `instance`.
    pub fn new(client: Client, prefix: &str, instance: &str) -> Self {
        Self {
            instances: Instances::new(client.clone(), prefix, instance),
            cas: HashCas::new(client.clone()),
            client,
            prefix: prefix.to_owned(),
            claim: Script::from_lua(CLAIM),
            if_held: Script::from_lua(IF_HELD),
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
        self.cas.swap(&self.org_key(org), client.as_str(), read, next).await
    }

    /// Renews `seat` for `ttl_ms` (0: empties it) if it still holds the seat; whether it did.
    async fn if_held(&self, org: &OrgId, seat: &AdminSeat, ttl_ms: u64) -> Result<bool, StoreError> {
        let args = vec![encode(seat)?, ttl_ms.to_string()];
        let keys = vec![self.admin_key(org)];
        let held: i64 = self.if_held.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(held == 1)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn decode<T: DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Unavailable(format!("mesh state in Redis is corrupt: {e}")))
}

#[async_trait]
impl MeshStore for RedisMesh {
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError> {
        let old = self.read(org, &client.id).await?.map(|(_, c)| c);
        let _: () =
            self.client.hset(self.org_key(org), (client.id.as_str(), encode(&client)?)).await.map_err(unavailable)?;
        self.instances.note(ENGINE, &entry(org, &client.id)).await?;
        Ok(old)
    }

    async fn restore(&self, org: &OrgId, client: MeshClient) -> Result<bool, StoreError> {
        let set: bool =
            self.client.hsetnx(self.org_key(org), client.id.as_str(), encode(&client)?).await.map_err(unavailable)?;
        if set {
            self.instances.note(ENGINE, &entry(org, &client.id)).await?;
        }
        Ok(set)
    }

    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &ConnId, now: u64) -> Result<(), StoreError> {
        if let Some((raw, mut c)) = self.read(org, client).await?.filter(|(_, c)| &c.conn == conn) {
            c.last_seen = c.last_seen.max(now);
            // A newer connection of the client may have replaced it meanwhile: then nothing.
            self.swap(org, client, raw, encode(&c)?).await?;
        }
        Ok(())
    }

    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &ConnId) -> Result<bool, StoreError> {
        let left = match self.read(org, client).await? {
            Some((raw, c)) if &c.conn == conn => self.swap(org, client, raw, String::new()).await?,
            _ => false,
        };
        // This instance's connection is gone either way.
        self.instances.unnote(ENGINE, &entry(org, client)).await?;
        Ok(left)
    }

    async fn prune(
        &self,
        live: &(dyn for<'x> Fn(&'x OrgId, &'x ClientId, &'x ConnId) -> bool + Sync),
    ) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for noted in self.instances.leftovers(ENGINE, self.instances.me()).await? {
            let Some((org, client)) = noted.split_once(SEP) else { continue };
            let (Ok(org), Ok(client)) = (OrgId::parse(org), ClientId::parse(client)) else { continue };
            let record = self.read(&org, &client).await?.filter(|(_, c)| c.instance == self.instances.me());
            match record {
                Some((_, c)) if live(&org, &client, &c.conn) => continue,
                Some((raw, _)) => pruned += usize::from(self.swap(&org, &client, raw, String::new()).await?),
                None => {}
            }
            self.instances.unnote(ENGINE, &noted).await?;
        }
        Ok(pruned)
    }

    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let locate = |noted: &str| {
            let (org, client) = noted.split_once(SEP)?;
            Some((self.org_key(&OrgId::parse(org).ok()?), Some(ClientId::parse(client).ok()?.as_str().to_owned())))
        };
        let theirs = |_: &str, raw: &str| Ok(decode::<MeshClient>(raw)?.instance == dead);
        self.instances.forget_leftovers(ENGINE, dead, locate, theirs).await
    }

    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError> {
        let raws: HashMap<String, String> = self.client.hgetall(self.org_key(org)).await.map_err(unavailable)?;
        let all = raws.values().map(|raw| decode(raw)).collect::<Result<Vec<MeshClient>, _>>()?;
        // One round trip for every instance named, however many clients.
        let alive = self.instances.alive_among(all.iter().map(|c| c.instance.as_str())).await?;
        let mut clients: Vec<MeshClient> = all.into_iter().filter(|c| alive.contains(c.instance.as_str())).collect();
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
