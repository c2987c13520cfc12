-- Check a candidate code: the one atomic step that compares and spends an attempt.
-- KEYS[1] = state hash   KEYS[2] = deadlines zset   KEYS[3..] = rate limits
-- ARGV[1] = HMAC of the candidate code   ARGV[2] = retention (s)   ARGV[3] = channel (api, sms, durable)
-- ARGV[4] = id   ARGV[5..] = (amount, window s) of each rate limit (limits.lua)
-- returns {outcome, field, value, ...}: the outcome, then the state hash as it is after the check (record() in events.lua)
--   outcome: approved | wrong | expired (deadline passed; marked now) | not_pending | not_found
--   or {"rate_limited", n, retry_after_s}: the n-th limit refused first (limits.lua), and nothing changed
-- The limits come first: guessing at ids that do not exist counts too.
local t = redis.call('TIME')
local refused, retry_after = take_slots(3, 5, #KEYS - 2, t)
if refused > 0 then
  return {'rate_limited', refused, retry_after}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
local function answer(outcome)
  local reply = record()
  table.insert(reply, 1, outcome)
  return reply
end

local s = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'expires', 'hash')
local status, attempts, expires, hash = s[1], tonumber(s[2]), tonumber(s[3]), s[4]
if status ~= 'pending' then
  return answer('not_pending')
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[2])

local function finish(final, event)
  redis.call('HSET', KEYS[1], 'status', final, 'updated', now, 'attempts', attempts)
  add_event(event)
  redis.call('EXPIRE', KEYS[1], retention)
  redis.call('ZREM', KEYS[2], ARGV[4])
end

-- Redis's own clock decides, so a late or lost expiry task never lets a stale code through.
if now >= expires then
  finish('expired', {t = now, e = 'expired'})
  return answer('expired')
end
if hash and hash == ARGV[1] then
  finish('approved', {t = now, e = 'response', via = ARGV[3], ok = true})
  return answer('approved')
end
attempts = attempts - 1
if attempts <= 0 then
  attempts = 0
  finish('max_attempts_reached', {t = now, e = 'response', via = ARGV[3], ok = false})
  return answer('wrong')
end
redis.call('HSET', KEYS[1], 'attempts', attempts, 'updated', now)
add_event({t = now, e = 'response', via = ARGV[3], ok = false})
return answer('wrong')
