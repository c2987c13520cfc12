-- Start a verification: store its state, index it, and point its number at it.
-- KEYS[1] = state hash        KEYS[2] = phone index string   KEYS[3] = deadlines zset
-- KEYS[4] = created zset      KEYS[5..] = rate limits (limits.lua)
-- ARGV[1] = id                ARGV[2] = phone (E.164)   ARGV[3] = window (ms)
-- ARGV[4] = max attempts      ARGV[5] = code length     ARGV[6] = retention (s)
-- ARGV[7..] = (amount, window s) of each rate limit
-- returns {"created", created_ms, expires_ms, previous_id_or_empty} | {"exists"}
--   | {"rate_limited", n, retry_after_s}: the n-th limit refused first (limits.lua)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}  -- before the limits: a duplicate spends none
end
local t = redis.call('TIME')
local refused, retry_after = take_slots(5, 7, #KEYS - 4, t)
if refused > 0 then
  return {'rate_limited', refused, retry_after}
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[3])
-- A record that is never finished still vanishes: its deadline plus the retention.
local ttl = math.ceil(tonumber(ARGV[3]) / 1000) + tonumber(ARGV[6])
redis.call('HSET', KEYS[1],
  'phone', ARGV[2], 'status', 'pending', 'send', 'queued',
  'created', now, 'updated', now, 'expires', expires,
  'attempts', ARGV[4], 'max', ARGV[4], 'len', ARGV[5])
add_event({t = now, e = 'started'})
redis.call('EXPIRE', KEYS[1], ttl)
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return {'created', now, expires, previous}
