-- The rate-budget governor's scripts, one Lua library loaded as separate scripts by governor.py.
-- Time is Redis's (TIME), never the caller's. Every key of every identity shares one hash tag,
-- so a script may weigh several identities at once, on one Redis or on Redis Cluster.
--
-- Per identity: a hash (KEYS[2i-1]) and a sorted set of leases (KEYS[2i]).
-- Hash fields, per resource R ("core" for REST, "graphql"):
--   R:limit, R:remaining, R:reset  the primary budget as GitHub's headers last said (none: no
--                                  answer has said, e.g. GitHub Enterprise without limits)
--   R:ended                        the reset of the last window refilled: answers naming it or
--                                  an earlier one are of a window that is over by our clock
--   R:probe                        set while such answers come (GitHub's clock behind ours by
--                                  more than the margin): a refill gives one point, not the limit
--   R:tat                          the theoretical arrival time of the next point (pacing)
--   R:since                        when its pacing state began (absent: new, or lost)
-- and, for the identity: block_started, block_until, block_level, lowered_until.
-- A lease is "R|cost|id", scored by its expiry: a process killed mid-request frees it then. The
-- leases are the one record of reserved primary points: nothing else can outlive them.

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

-- Times as text with microseconds: Lua's own conversion keeps 14 digits, 0.1 ms of an epoch
-- time, and that rounding could fit one slot too many into a minute.
local function fmt(x)
  return string.format('%.6f', x)
end

local function num(hash, field)
  return tonumber(redis.call('HGET', hash, field))
end

-- Release the leases that expired (their holder died): their reservations go with them.
local function expire(leases, t)
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', fmt(t))
end

-- Primary points of `resource` reserved by the live leases.
local function reserved(leases, resource)
  local total = 0
  for _, lease in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
    local kind, cost = string.match(lease, '^([^|]+)|([^|]+)|')
    if kind == resource then
      total = total + tonumber(cost)
    end
  end
  return total
end

-- The primary budget of `resource` now: remaining (nil: unknown, or unlimited), reset. The
-- window is over only `margin` seconds after its reset: GitHub's clock may be behind Redis's.
local function primary(hash, resource, t, margin)
  local limit = num(hash, resource .. ':limit')
  if limit == nil or limit < 0 then  -- below 0: stored by an older release, meaning unknown
    return nil, nil
  end
  local reset = num(hash, resource .. ':reset')
  if reset ~= nil and t >= reset + margin then
    -- A new window: GitHub starts it full; its reset is known from the next answer. While
    -- GitHub still counts a window we refilled, one probe asks whether it has ended.
    local fill = limit
    if redis.call('HEXISTS', hash, resource .. ':probe') == 1 then
      fill = math.min(limit, 1)
    end
    redis.call('HSET', hash, resource .. ':remaining', fill, resource .. ':ended', reset)
    redis.call('HDEL', hash, resource .. ':reset')
    return limit, nil
  end
  return num(hash, resource .. ':remaining'), reset
end

-- A pacing state that is new, or was lost (FLUSHDB, a restart without persistence) while GitHub
-- still counts the last minute: slots already granted may lie up to `horizon` (and one step,
-- perhaps lowered) ahead, so pacing starts past them, at the lowered rate for one `minute`.
local function begin(hash, resource, t, horizon, step, minute)
  if redis.call('HSETNX', hash, resource .. ':since', fmt(t)) == 0 then
    return
  end
  local tat = num(hash, resource .. ':tat') or 0
  redis.call('HSET', hash, resource .. ':tat', fmt(math.max(tat, t + horizon + step)))
  local lowered_until = num(hash, 'lowered_until') or 0
  redis.call('HSET', hash, 'lowered_until', fmt(math.max(lowered_until, t + minute)))
end

-- acquire: KEYS = hash, leases of each candidate identity.
-- ARGV: resource, points, cost, interval, max_in_flight, lease_ttl, horizon, lease_id,
--       preferred (1-based index, 0 none), floor, lowered_factor, reset_margin, minute
-- Returns {1, index, delay, lease, now} for a grant (send after `delay` seconds), else
-- {0, wait, reason, now}: no identity can send for `wait` seconds (reason says which limit).
local function acquire(keys, argv)
  local resource, points, cost = argv[1], tonumber(argv[2]), tonumber(argv[3])
  local interval, max_in_flight = tonumber(argv[4]), tonumber(argv[5])
  local lease_ttl, horizon, lease_id = tonumber(argv[6]), tonumber(argv[7]), argv[8]
  local preferred, floor, lowered = tonumber(argv[9]), tonumber(argv[10]), tonumber(argv[11])
  local margin, minute = tonumber(argv[12]), tonumber(argv[13])
  local t = now()
  local best, best_reset, best_slot = nil, nil, nil
  local wait, reason = nil, nil
  local function hold(seconds, why)
    if wait == nil or seconds < wait then
      wait, reason = seconds, why
    end
  end
  for i = 1, #keys / 2 do
    local hash, leases = keys[2 * i - 1], keys[2 * i]
    begin(hash, resource, t, horizon, interval * lowered, minute)
    local block_until = num(hash, 'block_until') or 0
    if block_until > t then
      hold(block_until - t, 'secondary')
    else
      expire(leases, t)
      local remaining, reset = primary(hash, resource, t, margin)
      local tat = math.max(num(hash, resource .. ':tat') or 0, t)
      if redis.call('ZCARD', leases) >= max_in_flight then
        hold(math.max(interval, 0.01), 'in_flight')
      elseif remaining ~= nil and remaining - reserved(leases, resource) - floor < cost then
        local ends = reset and reset + margin or t + 60
        hold(math.max(ends - t, 0.01), 'primary')
      elseif tat - t > horizon then
        hold(tat - t - horizon, 'pacing')
      elseif i == preferred then
        best, best_reset, best_slot = i, -1, tat
      elseif best_reset ~= -1 then
        -- Spend first the budget that resets soonest: what is not spent by then is lost.
        local r = reset or math.huge
        if best == nil or r < best_reset then
          best, best_reset, best_slot = i, r, tat
        end
      end
    end
  end
  if best == nil then
    return {0, fmt(wait), reason, fmt(t)}
  end
  local hash, leases = keys[2 * best - 1], keys[2 * best]
  local step = interval
  if (num(hash, 'lowered_until') or 0) > t then
    step = interval * lowered
  end
  redis.call('HSET', hash, resource .. ':tat', fmt(best_slot + points * step))
  local lease = resource .. '|' .. cost .. '|' .. lease_id
  redis.call('ZADD', leases, fmt(best_slot + lease_ttl), lease)
  return {1, best, fmt(best_slot - t), lease, fmt(t)}
end

-- release: KEYS = hash, leases of the identity that sent.
-- ARGV: lease, charged (1: the request counts on the primary budget), limit, remaining, reset,
--       resource of the headers ('' when the answer had none)
-- Ends the lease and corrects the primary budget from GitHub's headers; an answer without them
-- changes nothing but the count of a charged request.
local function release(keys, argv)
  local hash, leases = keys[1], keys[2]
  local lease, charged = argv[1], tonumber(argv[2])
  local limit, remaining, reset, seen = tonumber(argv[3]), tonumber(argv[4]), tonumber(argv[5]),
    argv[6]
  local resource, cost = string.match(lease, '^([^|]+)|([^|]+)|')
  if resource ~= nil then
    redis.call('ZREM', leases, lease)
  end
  if seen ~= '' then
    resource = seen
  end
  if resource == nil then
    return 0
  end
  if limit ~= nil and remaining ~= nil and reset ~= nil then
    local stored = num(hash, resource .. ':reset')
    local ended = num(hash, resource .. ':ended')
    if ended ~= nil and reset <= ended then
      -- A window refilled already. Unless a later one has been seen, GitHub still counts it
      -- (its clock is behind ours by more than the margin): hold its count a margin longer,
      -- by Redis's clock, rather than take its passed reset again and refill at once; and
      -- until a later window is seen, each refill is one probe.
      redis.call('HSET', hash, resource .. ':probe', 1)
      if stored == nil then
        local known = num(hash, resource .. ':remaining') or remaining
        redis.call('HSET', hash, resource .. ':remaining', math.min(known, remaining),
          resource .. ':reset', fmt(now()))
      end
    elseif stored == nil or reset > stored then
      redis.call('HSET', hash, resource .. ':limit', limit, resource .. ':remaining', remaining,
        resource .. ':reset', reset)
      redis.call('HDEL', hash, resource .. ':probe')
    elseif reset == stored then
      -- Answers overtake each other: the lowest count is the latest.
      local known = num(hash, resource .. ':remaining') or remaining
      redis.call('HSET', hash, resource .. ':limit', limit, resource .. ':remaining',
        math.min(known, remaining))
    end
  elseif charged == 1 then
    local known = num(hash, resource .. ':remaining')
    if known ~= nil then
      local left = math.max(known - tonumber(cost), 0)
      redis.call('HSET', hash, resource .. ':remaining', left)
      if left == 0 and redis.call('HEXISTS', hash, resource .. ':probe') == 1
          and redis.call('HEXISTS', hash, resource .. ':reset') == 0 then
        -- A probe answered without headers: the next probe a margin later, not never.
        redis.call('HSET', hash, resource .. ':reset', fmt(now()))
      end
    end
  end
  return 1
end

-- block: KEYS = hash of the identity GitHub refused with a secondary limit.
-- ARGV: retry_after (-1: not sent), sent_at (the refused request's slot; '' unknown: now),
--       min_wait, jitter (0..1, the caller's random), cooldown, forget_after (seconds without a
--       block after which the doubling starts again)
-- Every process stops sending for the identity until the block ends; pacing resumes from
-- there, at a lowered rate until `cooldown` after it. A refusal of a request sent before the
-- latest block began is of that block's episode (it was in flight): it does not double the
-- block again, only lengthens it to its own Retry-After. Returns the seconds to the end.
local function block(keys, argv)
  local hash = keys[1]
  local retry_after, sent_at = tonumber(argv[1]), tonumber(argv[2])
  local min_wait, jitter = tonumber(argv[3]), tonumber(argv[4])
  local cooldown, forget_after = tonumber(argv[5]), tonumber(argv[6])
  local t = now()
  local ended = num(hash, 'block_until') or 0
  local started = num(hash, 'block_started') or 0
  local stop
  if sent_at ~= nil and sent_at < started then
    stop = ended
    if retry_after >= 0 then
      stop = math.max(ended, t + retry_after)
    end
  else
    local level = num(hash, 'block_level') or 0
    if t - ended > forget_after then
      level = 0
    end
    local wait = retry_after
    if wait < 0 then
      wait = min_wait * (2 ^ level) * (1 + 0.25 * jitter)
    end
    stop = math.max(ended, t + wait)
    redis.call('HSET', hash, 'block_level', level + 1, 'block_started', fmt(t))
  end
  redis.call('HSET', hash, 'block_until', fmt(stop), 'lowered_until', fmt(stop + cooldown))
  for _, resource in ipairs({'core', 'graphql'}) do
    local tat = num(hash, resource .. ':tat') or 0
    redis.call('HSET', hash, resource .. ':tat', fmt(math.max(tat, stop)))
  end
  return fmt(stop - t)
end

-- blocked: KEYS = hash. Seconds left of the identity's block (0: none), checked by a grant
-- that waited for its pacing slot before it sends.
local function blocked(keys, argv)
  local left = (num(keys[1], 'block_until') or 0) - now()
  return fmt(math.max(left, 0))
end

-- observe: KEYS = hash, leases. Headers of an answer outside any lease (the token's GET /user).
local function observe(keys, argv)
  return release(keys, {'', 0, argv[1], argv[2], argv[3], argv[4]})
end

local scripts = {acquire = acquire, release = release, block = block, blocked = blocked,
  observe = observe}
return scripts[ARGV[1]](KEYS, {select(2, unpack(ARGV))})
