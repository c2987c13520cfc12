-- Rate limits inside the script that does the work, so a limited request is one round trip and a refusal
-- spends nothing. Each limit but an `own` one (below) is kept as the `limits` library keeps a moving
-- window (its acquire_moving_window.lua, under its key): a list of hit times in seconds, newest first,
-- trimmed to the limit's amount, expiring with its window.
-- take_slots(first_key, first_arg, count, t, own): the limits are KEYS[first_key .. first_key + count - 1],
-- each with ARGV pair (amount, window seconds) from ARGV[first_arg]; t is the script's one TIME reply.
-- `own` (create.lua's, optional) is {key = a key, hits = its hit times in ms, newest first}: a limit under
-- that key is tested against those hits and not taken here; the caller writes the key with its new hit.
-- Every limit is tested before any is taken. Returns 0, 0 once one slot of each is taken; else the
-- position (1-based) of the first that refuses, and the whole seconds until every refusing one has a
-- free slot (Retry-After). A limit of 0 refuses everything, as in the library. Hit times are Redis's
-- clock, one for every web process.
local function take_slots(first_key, first_arg, count, t, own)
  if count == 0 then
    return 0, 0
  end
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local refused, wait = 0, 0
  for i = 0, count - 1 do
    local key = KEYS[first_key + i]
    local amount, window = tonumber(ARGV[first_arg + 2 * i]), tonumber(ARGV[first_arg + 2 * i + 1])
    local oldest = nil  -- the amount-th newest hit (s), which must leave the window for a slot to free
    if amount > 0 and own and key == own.key then
      oldest = own.hits[amount] and own.hits[amount] / 1000
    elseif amount > 0 then
      oldest = tonumber(redis.call('LINDEX', key, amount - 1))
    end
    if amount < 1 or (oldest and oldest >= now - window) then
      if refused == 0 then
        refused = i + 1
      end
      -- The oldest hit in the window leaves it at oldest + window; a limit of 0 never frees a slot.
      wait = math.max(wait, amount < 1 and window or oldest + window - now)
    end
  end
  if refused > 0 then
    return refused, math.max(1, math.ceil(wait))
  end
  for i = 0, count - 1 do
    local key, amount, window = KEYS[first_key + i], ARGV[first_arg + 2 * i], ARGV[first_arg + 2 * i + 1]
    if not (own and key == own.key) then
      if redis.call('LPUSH', key, now) > tonumber(amount) then
        redis.call('LTRIM', key, 0, tonumber(amount) - 1)
      end
      redis.call('EXPIRE', key, window)
    end
  end
  return 0, 0
end

