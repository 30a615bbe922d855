//! The Lua scripts of the Redis room engine, each with the keys it declares
//! (all under the prefix's hash tag, so one node runs each on a Redis Cluster).

#[cfg(doc)]
use crate::store::redis::clock::RedisClock;

/// Compare-and-set of one room plus set updates, all or nothing.
/// KEYS: room hash, rooms zset, version counter, then the guard keys (each
/// must not exist), then one key per set update.
/// ARGV: expected version, members JSON ('' deletes), room id, created ms,
/// the channel on which the room id is published once written, the deadline
/// (Redis's Unix ms, '0' for none: see [`RedisClock`]), how many guard keys,
/// then per set update: '+' (SADD) or '-' (SREM) and the member, 'D' (DEL the
/// key; member ignored), or 'H' and `<ttl ms>:<value>` (SET the key with a TTL).
/// Returns 1 written, 0 the version moved, -1 a guard key exists, -2 too late.
/// Runs after [`LUA_NOW`](crate::store::redis::clock::LUA_NOW).
pub(super) const CAS: &str = r#"
if ARGV[6] ~= '0' and now > tonumber(ARGV[6]) then return -2 end
local guards = tonumber(ARGV[7])
for i = 4, 3 + guards do
  if redis.call('EXISTS', KEYS[i]) == 1 then return -1 end
end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  local nv = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[1], 'v', nv, 'created', ARGV[4], 'members', ARGV[2])
  if v == 0 then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
end
local first = 4 + guards
for i = first, #KEYS do
  local op, member = ARGV[8 + (i - first) * 2], ARGV[9 + (i - first) * 2]
  if op == '+' then redis.call('SADD', KEYS[i], member)
  elseif op == '-' then redis.call('SREM', KEYS[i], member)
  elseif op == 'D' then redis.call('DEL', KEYS[i])
  else
    local ttl, value = string.match(member, '^(%d+):(.*)$')
    redis.call('SET', KEYS[i], value, 'PX', ttl)
  end
end
redis.call('PUBLISH', ARGV[5], ARGV[3])
return 1
"#;

/// Unregisters a connection of this instance that holds no seat any more.
/// KEYS: its rooms set, this instance's connections set. ARGV: the connection.
pub(super) const DROP_IDLE: &str = r#"
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

/// The rooms of one page, read atomically: the total, then created and
/// members per room ('' for one deleted since its id was listed).
/// KEYS: rooms zset, then each room's hash (declared, for Redis Cluster).
pub(super) const LIST: &str = r#"
local out = { redis.call('ZCARD', KEYS[1]) }
for i = 2, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'created', 'members')
  table.insert(out, h[1] or '0')
  table.insert(out, h[2] or '')
end
return out
"#;

/// Keeps a relay for a held seat. KEYS: the seat's hold marker, its kept list.
/// ARGV: the most kept, the relay. Returns {1} kept, {0} full, {-1} not held,
/// {2, conn} resumed on conn and handed over (deliver there).
pub(super) const KEEP: &str = r#"
local m = redis.call('GET', KEYS[1])
if not m then return {-1} end
if string.sub(m, 1, 5) == 'live:' then return {2, string.sub(m, 6)} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[1]) then return {0} end
redis.call('RPUSH', KEYS[2], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {1}
"#;

/// Hands over up to ARGV[1] kept relays, oldest first; when none are left,
/// marks the hold handed over to connection ARGV[2] (if it still exists).
/// KEYS: the seat's hold marker, its kept list. Returns the relays.
pub(super) const TAKE: &str = r#"
local items = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[2], #items, -1)
  return items
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], 'live:' .. ARGV[2], 'KEEPTTL') end
return items
"#;
