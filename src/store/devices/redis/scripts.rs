//! The Lua scripts of [`RedisQueues`](super::RedisQueues): each change to a
//! queue or a notice list, and to the byte counters the budgets read, is one
//! script, so it is atomic across instances.

/// The next id of the counter `k`. A missing counter (never used, expired
/// after [`COUNTER_TTL_MS`] idle, or lost with Redis's data) starts from Redis's
/// time in microseconds, so ids never repeat: each counter gives fewer than
/// one id per microsecond. (Below 2^53, so JavaScript reads them exactly.)
pub(super) const NEXT_ID: &str = r#"
local function next_id(k)
  if redis.call('EXISTS', k) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', k, string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
  end
  local id = redis.call('INCR', k)
  redis.call('PEXPIRE', k, ARGV[#ARGV])
  -- As text: Lua would print a number this large in exponent notation.
  return string.format('%d', id)
end
"#;

/// How long an unused id counter is kept (ms); a counter that expires starts
/// again from the time, above every id it gave.
pub(super) const COUNTER_TTL_MS: u64 = 7 * 24 * 3_600 * 1_000;

/// Takes a signal that leaves its queue (as stored, `raw`) off its three
/// byte counters (`base` is the engine's key prefix, `p:d:`), deleting a
/// counter that reaches zero.
pub(super) const RELEASE: &str = r#"
local function release(base, raw)
  local e = cjson.decode(raw)
  local n = tonumber(e.bytes) or 0
  if n <= 0 then return end
  for _, k in ipairs({base .. 'q:' .. e.to .. ':bytes', base .. 'u:' .. e.sender_user .. ':bytes', base .. 'bytes'}) do
    if redis.call('DECRBY', k, n) <= 0 then redis.call('DEL', k) end
  end
end
"#;

/// Queues a signal unless it would pass a budget; returns its id, 0 when the
/// queue holds its most signals, -2 / -3 / -4 when the queue's, the sending
/// user's or the total byte budget would be passed, -1 when Redis ran it
/// past its deadline (see
/// [`RedisClock`](crate::store::redis::clock::RedisClock)): the sender was
/// answered `unavailable` by then, and a retry must not queue it twice.
/// The id is spliced in as the JSON's first field.
/// KEYS: queue, id counter, queued set, queue bytes, sender bytes, total bytes.
/// ARGV: max signals, signal JSON without id, receiver, deadline (Redis's
/// Unix ms), body bytes, queue budget, sender budget, total budget, counter TTL.
pub(super) const ENQUEUE: &str = r#"
if now > tonumber(ARGV[4]) then return -1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local bytes = tonumber(ARGV[5])
for i = 4, 6 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') + bytes > tonumber(ARGV[i + 2]) then return 2 - i end
end
local id = next_id(KEYS[2])
redis.call('ZADD', KEYS[1], id, '{"id":' .. id .. ',' .. string.sub(ARGV[2], 2))
redis.call('SADD', KEYS[3], ARGV[3])
if bytes > 0 then
  for i = 4, 6 do redis.call('INCRBY', KEYS[i], bytes) end
end
return id
"#;

/// Moves one expired signal to its sender's notices, if it is still queued;
/// returns the notice's id, 0 when another instance moved it first.
/// KEYS: queue, queued set, sender's notices, sender's notice counter, noticed set.
/// ARGV: the signal's JSON as read, receiver, notice JSON without id, sender,
/// key prefix (for [`RELEASE`]), counter TTL.
pub(super) const EXPIRE: &str = r#"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
release(ARGV[5], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
local id = next_id(KEYS[4])
redis.call('ZADD', KEYS[3], id, '{"id":' .. id .. ',' .. string.sub(ARGV[3], 2))
redis.call('SADD', KEYS[5], ARGV[4])
return id
"#;

/// Removes the entries with ids in a range from a queue or a notice list
/// (only those whose `owner` is ARGV[5], unless it is empty), and the
/// device from the index once its list is empty; returns them. Signals are
/// taken off their byte counters ([`RELEASE`]) when ARGV[4] is the key
/// prefix (empty for notices).
/// KEYS: sorted set, index set. ARGV: lowest id, highest id, device, key prefix or '', owner or ''.
pub(super) const DROP: &str = r#"
local removed = {}
for _, raw in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])) do
  if ARGV[5] == '' or cjson.decode(raw).owner == ARGV[5] then
    redis.call('ZREM', KEYS[1], raw)
    if ARGV[4] ~= '' then release(ARGV[4], raw) end
    table.insert(removed, raw)
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return removed
"#;
