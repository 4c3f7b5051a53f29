-- KEYS[3] names, KEYS[4] session, KEYS[5] the names of users outside the
-- lobby.  ARGV[2] presence limit, ARGV[3] owner ("node token"), ARGV[4]
-- the leave event's members after its name, ARGV[5] how long the session
-- stays resumable.  The user's name is freed (a user outside the lobby
-- leaves silently).
need_seq()
local name = redis.call('GET', KEYS[4])
if not name then return 0 end
local lower = string.lower(name)
local entry = ARGV[3] .. ' ' .. name
if redis.call('HGET', KEYS[5], lower) == entry then
  redis.call('HDEL', KEYS[5], lower)
  session_ends(KEYS[4], ARGV[5])
  return 0
end
if redis.call('HGET', KEYS[3], lower) ~= entry then return 0 end
session_ends(KEYS[4], ARGV[5])
local announce = redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2])
redis.call('HDEL', KEYS[3], lower)
if announce then
  return publish('{"type":"leave","name":"' .. name .. '",' .. ARGV[4] .. ',"seq":')
end
return 0
