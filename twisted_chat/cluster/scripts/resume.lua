-- KEYS[3] names, KEYS[4] session, KEYS[5] the names of users outside the
-- lobby.  ARGV[2] presence limit, ARGV[3] node, ARGV[4] token, ARGV[5] a
-- guest name.  A resumed session is in the lobby.
-- {0}: unknown session; {1, name}: taken over silently; {2, name}: joined.
need_seq()
local name = redis.call('GET', KEYS[4])
if not name then return {0} end
local lower = string.lower(name)
local entry = redis.call('HGET', KEYS[3], lower)
local outside = redis.call('HGET', KEYS[5], lower)
local function token_of(e) return select(2, string.match(e, '^(%S+) (%S+) ')) end
if entry and token_of(entry) == ARGV[4] then
  redis.call('HSET', KEYS[3], lower, ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. name)
  session_lives(KEYS[4])
  return {1, name}
end
if outside and token_of(outside) == ARGV[4] then
  redis.call('HDEL', KEYS[5], lower)
elseif entry or outside then
  name = ARGV[5]
  lower = string.lower(name)
end
redis.call('HSET', KEYS[3], lower, ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. name)
redis.call('SET', KEYS[4], name)
session_lives(KEYS[4])
if redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2]) then
  publish(join_head(name))
end
return {2, name}
