-- A user leaves the lobby but stays on the server: its entry moves from
-- names to outside, so that its name stays taken.  KEYS[3] names, KEYS[4]
-- session, KEYS[5] outside.  ARGV[2] presence limit, ARGV[3] owner ("node
-- token"), ARGV[4] the leave event's members after its name.
-- -1 if it is not in the lobby; else the leave's seq, or 0.
need_seq()
local name = redis.call('GET', KEYS[4])
if not name then return -1 end
local lower = string.lower(name)
local entry = ARGV[3] .. ' ' .. name
if redis.call('HGET', KEYS[3], lower) ~= entry then return -1 end
local announce = redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2])
redis.call('HDEL', KEYS[3], lower)
redis.call('HSET', KEYS[5], lower, entry)
if announce then
  return publish('{"type":"leave","name":"' .. name .. '",' .. ARGV[4] .. ',"seq":')
end
return 0
