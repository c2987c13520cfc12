-- What happened to a verification lives in its state hash, not in a second key: fields e1, e2, ...
-- (JSON, never a code), counted by the field `events`. A pending verification's few short events keep
-- the hash a small listpack, and the whole record has one key and one TTL.
local function add_event(event)
  local n = redis.call('HINCRBY', KEYS[1], 'events', 1)
  redis.call('HSET', KEYS[1], 'e' .. n, cjson.encode(event))
end

