-- Record what Twilio said about a claimed send.
-- KEYS[1] = state hash
-- ARGV[1] = outcome: sent | retry (not accepted; the send may be tried again)
--           | unknown (no answer: Twilio may have accepted it; the ledger stays `sending`)
-- ARGV[2] = message SID (sent) or reason (retry, unknown)
-- returns {"recorded"} | {"skip", send_status}
local s = redis.call('HMGET', KEYS[1], 'status', 'send')
if s[2] ~= 'sending' then
  return {'skip', s[2] or ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'sent' then
  redis.call('HSET', KEYS[1], 'send', 'sent', 'sid', ARGV[2], 'updated', now)
  add_event({t = now, e = 'sms_sent'})
elseif ARGV[1] == 'unknown' then
  -- Nothing changes but the record of it: the hash stays, in case the SMS did arrive.
  redis.call('HSET', KEYS[1], 'updated', now)
  if s[1] == 'pending' then
    redis.call('HSET', KEYS[1], 'reason', ARGV[2])  -- a final one keeps the reason it ended with
  end
  add_event({t = now, e = 'sms_unknown', reason = ARGV[2]})
else
  -- Twilio did not accept it, so nobody holds this code: forget its hash until the next try (emptied,
  -- not deleted: events.lua).
  redis.call('HSET', KEYS[1], 'hash', '', 'send', 'queued', 'updated', now)
  if s[1] == 'pending' then
    redis.call('HSET', KEYS[1], 'reason', ARGV[2])
  end
  add_event({t = now, e = 'sms_retry', reason = ARGV[2]})
end
return {'recorded'}
