-- The users one block's pages hold by their own bookkeeping: the sum of each page's `users`.
-- One call, so it runs atomically, beside the block's id snapshot in read_frame's MULTI/EXEC.
--
-- KEYS[1] the block's set of pages   ARGV[1] the block's page key prefix (a page's hash: ARGV[1] .. page)

local total = 0
for _, page in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local users = redis.call('HGET', ARGV[1] .. page, 'users')
  if users and not string.match(users, '^%d+$') then
    local shown = (string.gsub(string.sub(users, 1, 30), '%c', '?'))
    return redis.error_reply(ARGV[1] .. page .. " has a non-integer 'users': '" .. shown .. "'")
  end
  total = total + (tonumber(users) or 0)
end
return total
