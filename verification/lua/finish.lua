-- Move a pending verification to a final status: the expiry timer, a cancel, or a failed send.
-- KEYS[1] = state hash   KEYS[2] = deadlines zset
-- ARGV[1] = final status (expired | canceled | failed)   ARGV[2] = retention (s)   ARGV[3] = id
-- ARGV[4] = reason (may be empty)   ARGV[5] = the number the record must be for, or empty for any
-- ARGV[6..] = more field, value pairs to set
-- returns {outcome, ms, field, value, ...}: the outcome, then the state hash as it is after (record() in events.lua)
--   outcome: done | not_due (expired asked before the deadline; ms = time left) | not_pending | not_found
--            | expired (another final status asked after the deadline: it expired first, and says so)
-- An id that is not pending (or gone) leaves the deadlines index too, so the sweep never meets it again.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {'not_found', 0}
end
local function answer(outcome, ms)
  local reply = record()
  table.insert(reply, 1, ms)
  table.insert(reply, 1, outcome)
  return reply
end

local s = redis.call('HMGET', KEYS[1], 'status', 'expires', 'phone')
if ARGV[5] ~= '' and s[3] ~= ARGV[5] then
  -- A number's index can outlive the record it names, whose id a Durable start may then give to
  -- another number's verification: that one is not this number's to cancel.
  return {'not_found', 0}
end
if s[1] ~= 'pending' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return answer('not_pending', 0)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local final = ARGV[1]
-- The worker's clock may run ahead of Redis's: the deadline is Redis's to judge.
if final == 'expired' and now < tonumber(s[2]) then
  return answer('not_due', tonumber(s[2]) - now)
end
local outcome = 'done'
if final ~= 'expired' and now >= tonumber(s[2]) then
  -- Past its deadline a verification is expired, whatever is asked of it now (as a check would find).
  final, outcome = 'expired', 'expired'
  ARGV[4] = ''
end
redis.call('HSET', KEYS[1], 'status', final, 'updated', now)
-- The reason is the record's, not the event's: a reason in an event would often pass the 64 bytes
-- that keep the hash a compact listpack (events.lua).
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[4])
elseif final ~= 'expired' and redis.call('HEXISTS', KEYS[1], 'reason') == 1 then
  -- A send's retry reason is not why it was canceled; emptied, not deleted (events.lua).
  redis.call('HSET', KEYS[1], 'reason', '')
end
if outcome == 'done' then
  for i = 6, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
add_event({t = now, e = final})
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZREM', KEYS[2], ARGV[3])
return answer(outcome, now)
