-- One page's member count and aggregates in one atomic step; every key is the page's, so the
-- read is a single-slot call (Redis Cluster).
-- KEYS[1] page member set, KEYS[2..] the page's aggregate keys (KeyNames.aggregate_keys)
local found = {redis.call('SCARD', KEYS[1])}
for i = 2, #KEYS do
  found[i] = redis.call('HGETALL', KEYS[i])
end
return found
