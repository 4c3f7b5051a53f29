-- The rooms other than the lobby whose key starts with a prefix.
-- KEYS[1] the registry, KEYS[2] the lobby's names.  ARGV[1] the key prefix
-- of every key, ARGV[2] the prefix asked for (in lower case).  The lobby's
-- size, then for each room: name, members, topic.
local found = {redis.call('HLEN', KEYS[2])}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local key = all[i]
  if string.sub(key, 1, #ARGV[2]) == ARGV[2] then
    local p = ARGV[1] .. '{' .. key .. '}:'
    table.insert(found, all[i + 1])
    table.insert(found, redis.call('HLEN', p .. 'members'))
    table.insert(found, redis.call('GET', p .. 'topic') or '')
  end
end
return found
