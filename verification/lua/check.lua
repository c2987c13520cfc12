-- Check a candidate code: the one atomic step that compares and spends an attempt.
-- KEYS[1] = state hash   KEYS[2] = deadlines zset   KEYS[3..] = rate limits
-- ARGV[1] = HMAC of the candidate code   ARGV[2] = retention (s)   ARGV[3] = channel (api, sms, durable)
-- ARGV[4] = id   ARGV[5] = the number the record must be for (an SMS reply's sender), or empty for any
-- ARGV[6..] = (amount, window s) of each rate limit (limits.lua)
-- returns {outcome, field, value, ...}: the outcome, then the record's fields as they are after the check
--   (those Verification.from_hash reads; never the code's hash or the events)
--   outcome: approved | wrong | expired (deadline passed; marked now) | not_pending | not_found
--   or {"rate_limited", n, retry_after_s}: the n-th limit refused first (limits.lua), and nothing changed
-- Every request with a code runs this, so it reads the hash once and writes it once, and answers from
-- what it read. The limits come first: guessing at ids that do not exist counts too.
local t = redis.call('TIME')
local refused, retry_after = take_slots(3, 6, #KEYS - 2, t)
if refused > 0 then
  return {'rate_limited', refused, retry_after}
end
local FIELDS = {'phone', 'status', 'send', 'created', 'updated', 'expires', 'attempts', 'max', 'len',
                'reason', 'error', 'delivery'}
local s = redis.call('HMGET', KEYS[1], 'hash', unpack(FIELDS))
local hash = s[1]
local v = {}
for i, name in ipairs(FIELDS) do
  v[name] = s[i + 1]
end
-- A reply is checked against its number's index, which can outlive the record it names and whose id
-- a Durable start may have given to another number's verification since.
if not v.status or (ARGV[5] ~= '' and v.phone ~= ARGV[5]) then
  return {'not_found'}
end
local function answer(outcome)
  local reply = {outcome}
  for _, name in ipairs(FIELDS) do
    if v[name] then
      reply[#reply + 1] = name
      reply[#reply + 1] = v[name]
    end
  end
  return reply
end
if v.status ~= 'pending' then
  return answer('not_pending')
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The changes and the next event (events.lua's e<n>, its time from `created`) in one HSET; a final
-- status also starts the retention and leaves the deadlines index.
local function write(status, attempts, event)
  v.status, v.updated, v.attempts = status, now, attempts
  event.t = now - tonumber(v.created)
  redis.call('HSET', KEYS[1], 'status', status, 'updated', now, 'attempts', attempts,
    event_field(), cjson.encode(event))
  if status ~= 'pending' then
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
    redis.call('ZREM', KEYS[2], ARGV[4])
  end
end

local attempts = tonumber(v.attempts)
-- Redis's own clock decides, so a late or lost expiry task never lets a stale code through.
if now >= tonumber(v.expires) then
  write('expired', attempts, {t = now, e = 'expired'})
  return answer('expired')
end
-- 128 bits of the HMAC (codes.digest); a record stored by an earlier version holds all 256.
if hash and #ARGV[1] == 32 and string.sub(hash, 1, 32) == ARGV[1] then
  write('approved', attempts, {t = now, e = 'response', via = ARGV[3], ok = true})
  return answer('approved')
end
attempts = math.max(attempts - 1, 0)
write(attempts > 0 and 'pending' or 'max_attempts_reached', attempts,
  {t = now, e = 'response', via = ARGV[3], ok = false})
return answer('wrong')
