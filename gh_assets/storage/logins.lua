-- Update login buckets after a page's write: set each user's login -> id, and remove stale
-- entries only while the bucket still maps the login to that same id (another account may own
-- the login by now: that entry is kept).
--
-- KEYS[i] a login bucket (one key per call on Redis Cluster, any number on a single Redis)
-- ARGV, per key in KEYS order: sets, removals, then `sets` login, id pairs and `removals`
--      login, id pairs; logins already lower-cased (ascii_lower)

local at = 1
for _, bucket in ipairs(KEYS) do
  local sets, removals = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  at = at + 2
  if sets > 0 then
    redis.call('HSET', bucket, unpack(ARGV, at, at + 2 * sets - 1))
    at = at + 2 * sets
  end
  for _ = 1, removals do
    local login, id = ARGV[at], ARGV[at + 1]
    if redis.call('HGET', bucket, login) == id then
      redis.call('HDEL', bucket, login)
    end
    at = at + 2
  end
end
return at - 1
