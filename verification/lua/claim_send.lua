-- Claim the right to send the challenge: store the hash of the new code first, then mark the
-- ledger `sending`, so a code that reaches the phone always approves and a redelivered task
-- never sends a second SMS once one may have been accepted.
-- KEYS[1] = state hash
-- ARGV[1] = HMAC of the new code
-- returns {"claimed", phone, expires_ms} | {"skip", status, send_status}
local s = redis.call('HMGET', KEYS[1], 'status', 'send', 'phone', 'expires')
if not s[1] then
  return {'skip', 'not_found', ''}
end
if s[1] ~= 'pending' or s[2] ~= 'queued' then
  return {'skip', s[1], s[2]}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(s[4]) then
  return {'skip', 'past_deadline', s[2]}
end
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'send', 'sending', 'updated', now)
return {'claimed', s[3], tonumber(s[4])}
