-- Rate limits inside the script that does the work, so a limited request is one round trip and a refusal
-- spends nothing. Each limit is kept as the `limits` library keeps a moving window (its
-- acquire_moving_window.lua, under its key): a list of hit times in seconds, newest first, trimmed to
-- the limit's amount, expiring with its window.
-- take_slots(first_key, first_arg, count, t): the limits are KEYS[first_key .. first_key + count - 1],
-- each with ARGV pair (amount, window seconds) from ARGV[first_arg]; t is the script's one TIME reply.
-- Every limit is tested before any is taken. Returns 0, 0 once one slot of each is taken; else the
-- position (1-based) of the first that refuses, and the whole seconds until every refusing one has a
-- free slot (Retry-After). A limit of 0 refuses everything, as in the library. Hit times are Redis's
-- clock, one for every web process.
local function take_slots(first_key, first_arg, count, t)
  if count == 0 then
    return 0, 0
  end
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local refused, wait = 0, 0
  for i = 0, count - 1 do
    local amount, window = tonumber(ARGV[first_arg + 2 * i]), tonumber(ARGV[first_arg + 2 * i + 1])
    local oldest = amount > 0 and redis.call('LINDEX', KEYS[first_key + i], amount - 1)
    if amount < 1 or (oldest and tonumber(oldest) >= now - window) then
      if refused == 0 then
        refused = i + 1
      end
      -- The oldest hit in the window leaves it at oldest + window; a limit of 0 never frees a slot.
      wait = math.max(wait, amount < 1 and window or tonumber(oldest) + window - now)
    end
  end
  if refused > 0 then
    return refused, math.max(1, math.ceil(wait))
  end
  for i = 0, count - 1 do
    local key, amount, window = KEYS[first_key + i], ARGV[first_arg + 2 * i], ARGV[first_arg + 2 * i + 1]
    if redis.call('LPUSH', key, now) > tonumber(amount) then
      redis.call('LTRIM', key, 0, tonumber(amount) - 1)
    end
    redis.call('EXPIRE', key, window)
  end
  return 0, 0
end

