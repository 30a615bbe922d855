//! PeerJS ids and queues in Redis (`p` is the prefix in braces): `p:pj:ids`
//! hash, id to its holder's JSON; `p:pj:q:{id}` list, the messages waiting
//! for an id (JSON, oldest first), kept at most as long as they may wait;
//! `p:pj:inst:{instance}` set, the ids an instance registered, so a
//! survivor deletes them once it is dead. An id whose holder's instance is
//! dead is free meanwhile: the claim script checks the holder's heartbeat
//! key (named from the same prefix, so on one Redis Cluster slot).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use super::{Claim, Expired, Holder, PeerStore};
use crate::domain::ConnId;
use crate::domain::peerjs::{PeerId, Waiting};
use crate::store::StoreError;
use crate::store::redis::instances::{Instances, alive_key};
use crate::store::redis::{HashCas, decode, encode, key, unavailable, valid};

/// Claims an id, and notes it for the claimant's instance in the same step
/// (a note failing after the claim would leave the id held by nobody). KEYS:
/// the ids hash, the instance's notes. ARGV: the id, the holder's JSON, its
/// token, the limit, what comes before and after an instance's id in its
/// heartbeat key, and the claimant's instance (alive: it is running).
/// Answers `{outcome, older connection}`.
const CLAIM: &str = r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local h = cjson.decode(held)
  if h.token == ARGV[3] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    redis.call('SADD', KEYS[2], ARGV[1])
    return {'took-over', h.conn}
  end
  if h.instance == ARGV[7] or redis.call('EXISTS', ARGV[5] .. h.instance .. ARGV[6]) == 1 then
    return {'taken'}
  end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'full'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return {'opened'}
"#;

/// Who holds an id, if its instance is alive: one round trip per relay.
/// KEYS[1] the ids hash; ARGV: the id, the heartbeat key's parts (as
/// [`CLAIM`]'s), the asking instance (alive).
const HOLDER: &str = r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return false end
local instance = cjson.decode(held)['instance']
if instance == ARGV[4] or redis.call('EXISTS', ARGV[2] .. instance .. ARGV[3]) == 1 then return held end
return false
"#;

/// Queues a message. KEYS[1] the queue; ARGV: its JSON, the most that may wait, ms to keep.
const ENQUEUE: &str = r#"
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Takes a queue (ARGV[1] '') or, if its oldest came at or before ARGV[1],
/// expires it. KEYS[1] the queue. Answers `{'taken', ...}`, `{'since', at}` or `{'empty'}`.
const TAKE: &str = r#"
local first = redis.call('LINDEX', KEYS[1], 0)
if not first then return {'empty'} end
if ARGV[1] ~= '' then
  local at = cjson.decode(first)['at']
  if at > tonumber(ARGV[1]) then return {'since', tostring(at)} end
end
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
table.insert(all, 1, 'taken')
return all
"#;

/// The engine's name in the per-instance notes ([`Instances::note`]).
const ENGINE: &str = "pj";

/// PeerJS state in Redis, shared by every instance.
pub struct RedisPeers {
    client: Client,
    prefix: String,
    instances: Instances,
    cas: HashCas,
    claim: Script,
    holder: Script,
    enqueue: Script,
    take: Script,
    /// `{prefix}:inst:` and `:alive`: an instance's heartbeat key is them around its id.
    alive: (String, String),
}

impl RedisPeers {
    /// A store over `client` (connected) for instance `instance`.
    pub fn new(client: Client, prefix: &str, instance: &str) -> Self {
        Self {
            instances: Instances::new(client.clone(), prefix, instance),
            cas: HashCas::new(client.clone()),
            client,
            prefix: prefix.to_owned(),
            claim: Script::from_lua(CLAIM),
            holder: Script::from_lua(HOLDER),
            alive: {
                let key = alive_key(prefix, "\u{0}");
                let (before, after) = key.split_once('\u{0}').unwrap_or_default();
                (before.to_owned(), after.to_owned())
            },
            enqueue: Script::from_lua(ENQUEUE),
            take: Script::from_lua(TAKE),
        }
    }

    fn ids_key(&self) -> String {
        key(&self.prefix, &["pj", "ids"])
    }

    fn queue_key(&self, id: &PeerId) -> String {
        key(&self.prefix, &["pj", "q", id.as_str()])
    }

    fn holder_of(&self, raw: &str) -> Result<Holder, StoreError> {
        decode(&self.ids_key(), raw, Ok::<Holder, String>)
    }

    fn waiting(&self, id: &PeerId, raws: &[String]) -> Result<Vec<Waiting>, StoreError> {
        raws.iter().map(|raw| decode(&self.queue_key(id), raw, Ok::<Waiting, String>)).collect()
    }

    /// Runs [`TAKE`] on `dst`'s queue (`cutoff` '' takes it whatever its age).
    async fn take_if(&self, dst: &PeerId, cutoff: String) -> Result<Expired, StoreError> {
        let keys = vec![self.queue_key(dst)];
        let out: Vec<String> =
            self.take.evalsha_with_reload(&self.client, keys, vec![cutoff]).await.map_err(unavailable)?;
        match out.split_first() {
            Some((tag, rest)) if tag == "taken" => Ok(Expired::Taken(self.waiting(dst, rest)?)),
            Some((tag, [at])) if tag == "since" => {
                Ok(Expired::Since(decode(&self.queue_key(dst), at, Ok::<u64, String>)?))
            }
            _ => Ok(Expired::Empty),
        }
    }
}

#[async_trait]
impl PeerStore for RedisPeers {
    async fn claim(&self, id: &PeerId, holder: &Holder, limit: usize) -> Result<Claim, StoreError> {
        let (before, after) = &self.alive;
        let args = vec![
            id.as_str().to_owned(),
            encode(holder)?,
            holder.token.to_string(),
            limit.to_string(),
            before.to_owned(),
            after.to_owned(),
            self.instances.me().to_owned(),
        ];
        let keys = vec![self.ids_key(), self.instances.notes_key(ENGINE)];
        let out: Vec<String> = self.claim.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(match out.first().map(String::as_str) {
            Some("opened") => Claim::Opened,
            Some("took-over") => Claim::TookOver(ConnId::new(out.get(1).map_or("", String::as_str))),
            Some("taken") => Claim::Taken,
            _ => Claim::Full,
        })
    }

    async fn restore(&self, id: &PeerId, holder: &Holder) -> Result<bool, StoreError> {
        let raw = encode(holder)?;
        let set: bool = self.client.hsetnx(self.ids_key(), id.as_str(), raw.as_str()).await.map_err(unavailable)?;
        if set {
            self.instances.note(ENGINE, id.as_str()).await?;
            return Ok(true);
        }
        Ok(self.holder(id).await?.as_ref() == Some(holder))
    }

    async fn release(&self, id: &PeerId, conn: &ConnId) -> Result<bool, StoreError> {
        let raw: Option<String> = self.client.hget(self.ids_key(), id.as_str()).await.map_err(unavailable)?;
        let released = match raw {
            Some(raw) if &self.holder_of(&raw)?.conn == conn => {
                self.cas.swap(&self.ids_key(), id.as_str(), raw, String::new()).await?
            }
            _ => false,
        };
        if released {
            self.instances.unnote(ENGINE, id.as_str()).await?;
        }
        Ok(released)
    }

    async fn holder(&self, id: &PeerId) -> Result<Option<Holder>, StoreError> {
        let (before, after) = &self.alive;
        let args = vec![id.as_str(), before, after, self.instances.me()];
        let raw: Option<String> =
            self.holder.evalsha_with_reload(&self.client, vec![self.ids_key()], args).await.map_err(unavailable)?;
        raw.map(|raw| self.holder_of(&raw)).transpose()
    }

    async fn ids(&self) -> Result<Vec<PeerId>, StoreError> {
        let raws: HashMap<String, String> = self.client.hgetall(self.ids_key()).await.map_err(unavailable)?;
        let all = raws
            .iter()
            .map(|(id, raw)| {
                let corrupt = |why| StoreError::Unavailable(format!("{} in Redis is corrupt: {why}", self.ids_key()));
                Ok((valid(id, PeerId::parse).map_err(corrupt)?, self.holder_of(raw)?))
            })
            .collect::<Result<Vec<(PeerId, Holder)>, StoreError>>()?;
        let alive = self.instances.alive_among(all.iter().map(|(_, h)| &*h.instance)).await?;
        Ok(all.into_iter().filter(|(_, h)| alive.contains(&*h.instance)).map(|(id, _)| id).collect())
    }

    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let locate = |noted: &str| Some((self.ids_key(), Some(noted.to_owned())));
        let theirs = |_: &str, raw: &str| Ok(&*self.holder_of(raw)?.instance == dead);
        self.instances.forget_leftovers(ENGINE, dead, locate, theirs).await
    }

    async fn enqueue(&self, waiting: &Waiting, max: usize, keep: Duration) -> Result<bool, StoreError> {
        let keys = vec![self.queue_key(&waiting.message.dst)];
        let args = vec![encode(waiting)?, max.to_string(), keep.as_millis().max(1).to_string()];
        let queued: i64 = self.enqueue.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(queued == 1)
    }

    async fn take(&self, dst: &PeerId) -> Result<Vec<Waiting>, StoreError> {
        match self.take_if(dst, String::new()).await? {
            Expired::Taken(all) => Ok(all),
            _ => Ok(Vec::new()),
        }
    }

    async fn expire(&self, dst: &PeerId, cutoff: u64) -> Result<Expired, StoreError> {
        self.take_if(dst, cutoff.to_string()).await
    }
}
