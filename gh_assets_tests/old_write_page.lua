-- The page write of the old key schema (global gh:ids and gh:logins), as released before
-- the block schema: test_migrate.py writes old stores with it. Not used by gh_assets.
--
-- Replace one crawled page atomically: Redis runs a script as a single step, so readers see the
-- page as it was before or as it is after, never half-written, and a failed call writes nothing.
--
-- KEYS[1] page bookkeeping hash   KEYS[2] page member set   KEYS[3] page gone set
-- KEYS[4] login -> id hash        KEYS[5] all-ids sorted set KEYS[6] page -> fetched_at sorted set
-- KEYS[7] deferred pages (page -> when due after a rate limit)
-- KEYS[8] answers a stopped attempt at this page staged for its re-run (now written: dropped)
-- KEYS[9] the page's aggregates hash   KEYS[10..] one value histogram per counter (page_aggregates)
-- ARGV[1] user key prefix         ARGV[2] page key           ARGV[3] page fetched_at (epoch seconds)
-- ARGV[4] JSON {"users": [[field, value, ...]], "gone": [id], "meta": [field, value, ...],
--         "agg": [field, value, ...], "hist": [[value, accounts, ...], one per KEYS[10..]]}, all
--         strings (sums of squares outgrow a Lua number: they stay decimal strings); each user's
--         fields start with id and login, in the order they are stored

local user_prefix, page, fetched_at = ARGV[1], ARGV[2], ARGV[3]
local data = cjson.decode(ARGV[4])
local logins = KEYS[4]
local CHUNK = 1000 -- arguments per batched call: unpack() is bounded by Lua's C stack

-- One command over many arguments, CHUNK at a time: one call per page instead of one per user.
local function batched(command, key, items)
  for first = 1, #items, CHUNK do
    redis.call(command, key, unpack(items, first, math.min(first + CHUNK - 1, #items)))
  end
end

-- Forget a login -> id entry only while it still points at this id (another account may own it now).
local function forget_login(login, id)
  if login and redis.call('HGET', logins, string.lower(login)) == id then
    redis.call('HDEL', logins, string.lower(login))
  end
end

-- Redis does not roll a script back: refuse a bad payload before the first write.
local listed = {}
for _, fields in ipairs(data.users) do
  if fields[1] ~= 'id' or fields[3] ~= 'login' or type(fields[4]) ~= 'string' or #fields % 2 == 1 then
    return redis.error_reply('page ' .. page .. ': a user without id or login')
  end
  listed[fields[2]] = true
end
local AGGREGATES = 9
if type(data.agg) ~= 'table' or #data.agg % 2 == 1 or type(data.hist) ~= 'table'
    or #data.hist ~= #KEYS - AGGREGATES then
  return redis.error_reply('page ' .. page .. ': malformed aggregates')
end
for _, pairs in ipairs(data.hist) do
  if type(pairs) ~= 'table' or #pairs % 2 == 1 then
    return redis.error_reply('page ' .. page .. ': malformed aggregates')
  end
end

-- Users that left the page (deleted accounts) lose their hash, login entry and id.
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not listed[id] then
    local key = user_prefix .. id
    forget_login(redis.call('HGET', key, 'login'), id)
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[5], id)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])

local login_pairs, scored, members = {}, {}, {}
for u, fields in ipairs(data.users) do
  local id, login = fields[2], fields[4]
  local key = user_prefix .. id
  local old_login = redis.call('HGET', key, 'login')
  local lower = string.lower(login)
  if old_login and string.lower(old_login) ~= lower then
    forget_login(old_login, id)
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(fields))
  login_pairs[2 * u - 1], login_pairs[2 * u] = lower, id
  scored[2 * u - 1], scored[2 * u] = id, id
  members[u] = id
end
if #members > 0 then
  batched('HSET', logins, login_pairs)
  batched('ZADD', KEYS[5], scored)
  batched('SADD', KEYS[2], members)
end

for _, id in ipairs(data.gone) do
  local key = user_prefix .. id
  forget_login(redis.call('HGET', key, 'login'), id)
  redis.call('DEL', key)
end
if #data.gone > 0 then
  batched('ZREM', KEYS[5], data.gone)
  batched('SADD', KEYS[3], data.gone)
end

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(data.meta))
redis.call('ZADD', KEYS[6], fetched_at, page)
redis.call('ZREM', KEYS[7], page)
redis.call('DEL', KEYS[8])

-- The page's aggregates are replaced with it: no reader sees one version's users with another's
-- aggregates. A page without users leaves none.
redis.call('DEL', unpack(KEYS, AGGREGATES))
if #data.agg > 0 then
  batched('HSET', KEYS[AGGREGATES], data.agg)
end
for i, pairs in ipairs(data.hist) do
  if #pairs > 0 then
    batched('HSET', KEYS[AGGREGATES + i], pairs) -- CHUNK is even: pairs stay whole
  end
end
return #data.users
