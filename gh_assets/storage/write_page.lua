-- Replace one crawled page atomically: Redis runs a script as a single step, so readers see the
-- page as it was before or as it is after, never half-written, and a failed call writes nothing.
-- Every key is the page's block's (one hash tag: one Cluster slot) and every key is declared,
-- user hashes included, so Redis Cluster routes the call, and refuses it while the slot moves
-- (TRYAGAIN, ASK) instead of writing beside keys already migrated.
--
-- KEYS[1] page bookkeeping hash   KEYS[2] page member set   KEYS[3] page gone set
-- KEYS[4] the block's id index (sorted set)   KEYS[5] the block's set of pages
-- KEYS[6] answers a stopped attempt at this page staged for its re-run (now written: dropped)
-- KEYS[7] the block's users no page holds (forget-pages kept them for wider pages)
-- KEYS[8] the block's version: a counter every change of its pages moves (the summary's cache)
-- KEYS[9] the page's aggregates hash   KEYS[10 .. 9 + #hist] one value histogram per counter
-- On a single Redis only (payload "finish"), next: KEYS gh:pages, gh:deferred, gh:blocks,
--         gh:schema, then one login bucket per entry of finish.sets
-- then the user hashes the write touches: the page's users, its gone ids and (with ARGV[4]
--         "strict") the ids it held before (its members, and KEYS[7]'s ids in its window),
--         read by the caller just before
-- ARGV[1] user key prefix of the block   ARGV[2] page key   ARGV[4] "strict" or ""
-- ARGV[3] JSON {"users": [[field, value, ...]], "gone": [id], "meta": [field, value, ...],
--         "agg": [field, value, ...], "hist": [[value, accounts, ...], one per histogram],
--         ["finish": {"fetched_at": epoch seconds, "block": b, "schema": gh:schema's value,
--         "sets": [[login, id, ...], one per login bucket]], ["started": the crawl's start]},
--         all strings (sums of squares outgrow a Lua number: they stay decimal strings); each
--         user's fields start with id and login, in the order they are stored
--
-- Returns {users written, {login, id, login, id, ...}}: the login entries the write made stale
-- (users gone, left or renamed), for the caller to remove from the login buckets, each only
-- while it still maps that login to that id; {-1, {}}, writing nothing, when the page holds a
-- crawl that started later than this one ("started", Redis's microseconds: the later wins).
-- Strict (on a cluster, where the caller declares every key), a member the caller did not
-- declare (the page was rewritten between its read and this call) is refused with GHSTALE
-- before anything is written.
--
-- On a single Redis the page's login entries and its registration in gh:pages are written here
-- too, in the same step ("finish"); on a cluster their keys are in other slots, so the caller
-- writes them right after this script.

local user_prefix, page, strict = ARGV[1], ARGV[2], ARGV[4] == 'strict'
local data = cjson.decode(ARGV[3])
local CHUNK = 1000 -- arguments per batched call: unpack() is bounded by Lua's C stack
local AGGREGATES = 9

-- One command over many arguments, CHUNK at a time: one call per page instead of one per user.
local function batched(command, key, items)
  for first = 1, #items, CHUNK do
    redis.call(command, key, unpack(items, first, math.min(first + CHUNK - 1, #items)))
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
if type(data.agg) ~= 'table' or #data.agg % 2 == 1 or type(data.hist) ~= 'table' then
  return redis.error_reply('page ' .. page .. ': malformed aggregates')
end
for _, pairs in ipairs(data.hist) do
  if type(pairs) ~= 'table' or #pairs % 2 == 1 then
    return redis.error_reply('page ' .. page .. ': malformed aggregates')
  end
end
local finish = data.finish
local first_finish = AGGREGATES + #data.hist + 1
local first_user = first_finish
if finish then
  if type(finish.sets) ~= 'table' then
    return redis.error_reply('page ' .. page .. ': malformed login entries')
  end
  first_user = first_finish + 4 + #finish.sets
end
-- The later-started crawl of a page wins: an older one finishing last writes nothing. Equal
-- starts are the same crawl's write tried again; a damaged stored start orders nothing.
local stored_start = tonumber(redis.call('HGET', KEYS[1], 'started'))
if data.started and stored_start and stored_start > tonumber(data.started) then
  return {-1, {}}
end
local declared = {}
for i = first_user, #KEYS do
  declared[KEYS[i]] = true
end
local function check_declared(id)
  return declared[user_prefix .. id]
end
for _, fields in ipairs(data.users) do
  if not check_declared(fields[2]) then
    return redis.error_reply('page ' .. page .. ': user ' .. fields[2] .. ' is not declared')
  end
end
for _, id in ipairs(data.gone) do
  if not check_declared(id) then
    return redis.error_reply('page ' .. page .. ': user ' .. id .. ' is not declared')
  end
end
-- What the page held: its members, and the block's users no page holds (kept by forget-pages
-- for the wider pages that replace theirs) within its window; those it no longer lists left.
local first_id, last_id = string.match(page, '^(%d+)-(%d+)$')
if not first_id then
  return redis.error_reply('page ' .. page .. ': not a page key (first-last)')
end
first_id, last_id = tonumber(first_id), tonumber(last_id)
local held, claimed = redis.call('SMEMBERS', KEYS[2]), {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local number = tonumber(id)
  if number and number >= first_id and number <= last_id then
    held[#held + 1] = id
    claimed[#claimed + 1] = id
  end
end
local left, seen = {}, {}
for _, id in ipairs(held) do
  if not listed[id] and not seen[id] then
    if strict and not check_declared(id) then
      return redis.error_reply('GHSTALE page ' .. page .. ' changed since its members were read')
    end
    seen[id] = true
    left[#left + 1] = id
  end
end

local stale = {}
local function forget(key, id)
  local login = redis.call('HGET', key, 'login')
  if login then
    stale[#stale + 1] = login
    stale[#stale + 1] = id
  end
end

-- Users that left the page (deleted accounts) lose their hash and id; their login goes stale.
for _, id in ipairs(left) do
  local key = user_prefix .. id
  forget(key, id)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('DEL', KEYS[2], KEYS[3])

local scored, members = {}, {}
for u, fields in ipairs(data.users) do
  local id, login = fields[2], fields[4]
  local key = user_prefix .. id
  local old_login = redis.call('HGET', key, 'login')
  if old_login and string.lower(old_login) ~= string.lower(login) then
    stale[#stale + 1] = old_login
    stale[#stale + 1] = id
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(fields))
  scored[2 * u - 1], scored[2 * u] = id, id
  members[u] = id
end
if #members > 0 then
  batched('ZADD', KEYS[4], scored)
  batched('SADD', KEYS[2], members)
end

for _, id in ipairs(data.gone) do
  local key = user_prefix .. id
  forget(key, id)
  redis.call('DEL', key)
end
if #data.gone > 0 then
  batched('ZREM', KEYS[4], data.gone)
  batched('SADD', KEYS[3], data.gone)
end

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(data.meta))
redis.call('SADD', KEYS[5], page)
redis.call('DEL', KEYS[6])
if #claimed > 0 then
  batched('SREM', KEYS[7], claimed) -- now the page's members, or gone with it
end
redis.call('INCR', KEYS[8])

-- The page's aggregates are replaced with it: no reader sees one version's users with another's
-- aggregates. A page without users leaves none.
redis.call('DEL', unpack(KEYS, AGGREGATES, first_finish - 1))
if #data.agg > 0 then
  batched('HSET', KEYS[AGGREGATES], data.agg)
end
for i, pairs in ipairs(data.hist) do
  if #pairs > 0 then
    batched('HSET', KEYS[AGGREGATES + i], pairs) -- CHUNK is even: pairs stay whole
  end
end

if finish then
  for i, pairs in ipairs(finish.sets) do
    batched('HSET', KEYS[first_finish + 3 + i], pairs)
  end
  redis.call('ZADD', KEYS[first_finish], finish.fetched_at, page)
  redis.call('ZREM', KEYS[first_finish + 1], page)
  redis.call('ZADD', KEYS[first_finish + 2], finish.block, finish.block)
  redis.call('SET', KEYS[first_finish + 3], finish.schema, 'NX')
end
return {#data.users, stale}
