-- Delete a verification and every index entry that names it (the Durable API's purge).
-- KEYS[1] = state hash   KEYS[2] = phone index (create.lua) of the number the caller read
-- KEYS[3] = deadlines zset   KEYS[4] = created zset
-- ARGV[1] = id   ARGV[2] = creation time (ms) the caller saw in the created index, or empty for any
-- returns 1 when a verification was deleted; 0 when there was none (its index entries are removed all the
--   same), or when the id now names a newer verification than the one the caller saw (nothing is touched)
local created = redis.call('HGET', KEYS[1], 'created')
if created and ARGV[2] ~= '' and created ~= ARGV[2] then
  return 0
end
-- The number's index ("<id> <ms>...", create.lua) forgets the id only while it still points here: a newer
-- start owns it otherwise. The times its rate limits count stay: a purge does not give a number new starts.
local index = created and redis.call('GET', KEYS[2])
if index and string.match(index, '^%S*') == ARGV[1] then
  local hits = string.sub(index, #ARGV[1] + 1)
  if hits == '' then
    redis.call('DEL', KEYS[2])
  else
    redis.call('SET', KEYS[2], hits, 'KEEPTTL')
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if created then
  return 1
end
return 0
