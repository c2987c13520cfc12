-- What happened to a verification lives in its state hash, not in a second key: fields e<n> (JSON, never
-- a code), n being the hash's field count when the event is written. No field is ever deleted (one
-- that no longer applies is set to ''), so that count only grows: each event's n is new and larger than
-- the one before, with no counter to store. An event's time `t` is in ms since the record's `created`
-- (ms since 1970 in events stored before; Store.events tells them apart). Both save bytes: a pending
-- verification's few short events keep the hash a small listpack, and the whole record has one key
-- and one TTL. Records stored with a counter (`events`, e1, e2, ...) read the same.
local function event_field()
  return 'e' .. redis.call('HLEN', KEYS[1])
end

local function add_event(event)
  event.t = event.t - tonumber(redis.call('HGET', KEYS[1], 'created'))
  redis.call('HSET', KEYS[1], event_field(), cjson.encode(event))
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

