-- Record the delivery status Twilio reports for the challenge SMS (its status callback).
-- Callbacks arrive out of order, so a status only replaces one of a lower rank: a late `sent`
-- never hides `delivered`, `undelivered` or `failed`. The verification's own status is untouched.
-- KEYS[1] = state hash
-- ARGV[1] = delivery status: sent | delivered | undelivered | failed
-- ARGV[2] = message SID the callback is about   ARGV[3] = Twilio error code (may be empty)
-- returns {"recorded", status} | {"stale", current_status} | {"other_message", ""} | {"not_found", ""}
--         | {"unknown_status", ""}
local rank = {sent = 1, delivered = 2, undelivered = 2, failed = 2}
if not rank[ARGV[1]] then
  return {'unknown_status', ''}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found', ''}
end
local s = redis.call('HMGET', KEYS[1], 'delivery', 'sid')
local current, sid = s[1], s[2]
-- Before the worker records the SID the callback cannot be matched; the signed URL names the id.
if sid and sid ~= '' and sid ~= ARGV[2] then
  return {'other_message', ''}
end
if current and (rank[current] or 0) >= rank[ARGV[1]] then
  return {'stale', current}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'delivery', ARGV[1])
local event = {t = now, e = 'delivery', status = ARGV[1]}
if ARGV[3] ~= '' then
  event.error = tonumber(ARGV[3]) or ARGV[3]
end
add_event(event)
return {'recorded', ARGV[1]}
