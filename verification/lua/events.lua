-- What happened to a verification lives in its state hash, not in a second key: fields e1, e2, ...
-- (JSON, never a code), counted by the field `events`. A pending verification's few short events keep
-- the hash a small listpack, and the whole record has one key and one TTL.
local function add_event(event)
  local n = redis.call('HINCRBY', KEYS[1], 'events', 1)
  redis.call('HSET', KEYS[1], 'e' .. n, cjson.encode(event))
end

-- The hash as flat field, value pairs, less its events and the code's hash: what check and finish
-- answer with, so a reply stays small however many events there are.
local function record()
  local all = redis.call('HGETALL', KEYS[1])
  local reply = {}
  for i = 1, #all, 2 do
    if all[i] ~= 'hash' and not string.find(all[i], '^e%d') then
      reply[#reply + 1] = all[i]
      reply[#reply + 1] = all[i + 1]
    end
  end
  return reply
end

