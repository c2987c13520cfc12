-- Start a verification: store its state, index it, and point its number at it.
-- KEYS[1] = state hash        KEYS[2] = phone index string   KEYS[3] = deadlines zset
-- KEYS[4] = created zset      KEYS[5..] = rate limits (limits.lua); one whose key is KEYS[2] is a
--   per-number limit, kept in the index itself
-- ARGV[1] = id                ARGV[2] = phone (E.164)   ARGV[3] = window (ms)
-- ARGV[4] = max attempts      ARGV[5] = code length     ARGV[6] = retention (s)
-- ARGV[7..] = (amount, window s) of each rate limit; then, optionally, the broker's db and the start's
--   broker commands as (lpush | publish, key, payload) triples (store.Enqueue), run once the start is made
-- returns {"created", created_ms, expires_ms, previous_id_or_empty} | {"exists"}
--   | {"rate_limited", n, retry_after_s}: the n-th limit refused first (limits.lua)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}  -- before the limits: a duplicate spends none
end
-- A script is not rolled back, so what it would refuse to run is refused before it writes anything.
local queued = 7 + 2 * (#KEYS - 4)
for i = queued + 1, #ARGV, 3 do
  if ARGV[i] ~= 'lpush' and ARGV[i] ~= 'publish' then
    return redis.error_reply('create.lua enqueues with lpush and publish only, not ' .. ARGV[i])
  end
end
-- The number's index: the id of its newest verification, then the times (ms) of its starts that its
-- limits still count, newest first: "<id> <ms> <ms>...". One key serves SMS replies and the limits.
local index = redis.call('GET', KEYS[2]) or ''
local previous = string.match(index, '^%S*')
local hits = {}
for hit in string.gmatch(index, ' (%d+)') do
  hits[#hits + 1] = tonumber(hit)
end
local t = redis.call('TIME')
local refused, retry_after = take_slots(5, 7, #KEYS - 4, t, {key = KEYS[2], hits = hits})
if refused > 0 then
  return {'rate_limited', refused, retry_after}
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[3])
-- A record that is never finished still vanishes: its deadline plus the retention.
local ttl = math.ceil(tonumber(ARGV[3]) / 1000) + tonumber(ARGV[6])
-- No `started` event is stored: `created` says when, and Store.events puts it first (64 bytes a record).
redis.call('HSET', KEYS[1],
  'phone', ARGV[2], 'status', 'pending', 'send', 'queued',
  'created', now, 'updated', now, 'expires', expires,
  'attempts', ARGV[4], 'max', ARGV[4], 'len', ARGV[5])
redis.call('EXPIRE', KEYS[1], ttl)
-- This start's hit first, then as many older ones as the largest per-number limit counts; kept as long as
-- the record, or the longest of those limits' windows.
local keep, longest = 0, ttl
for i = 0, #KEYS - 5 do
  if KEYS[5 + i] == KEYS[2] then
    keep = math.max(keep, tonumber(ARGV[7 + 2 * i]))
    longest = math.max(longest, tonumber(ARGV[8 + 2 * i]))
  end
end
local entry = {ARGV[1]}
if keep > 0 then
  entry[2] = now
  for i = 1, math.min(#hits, keep - 1) do
    entry[#entry + 1] = hits[i]
  end
end
redis.call('SET', KEYS[2], table.concat(entry, ' '), 'EX', longest)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
-- The start's two task messages and the one message of their task-sent events, as kombu would have
-- sent them: in the broker's database, last, so the script switches database once.
if #ARGV >= queued then
  redis.call('SELECT', ARGV[queued])
  for i = queued + 1, #ARGV, 3 do
    redis.call(ARGV[i], ARGV[i + 1], ARGV[i + 2])
  end
end
return {'created', now, expires, previous}
