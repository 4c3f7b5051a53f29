-- KEYS[3] names, KEYS[4] session, KEYS[5] the names of users outside the
-- lobby.  ARGV[2] presence limit, ARGV[3] name in lower case, ARGV[4]
-- names entry, ARGV[5] name.  A user who left the
-- lobby comes back into it (its entry moves from outside to names).
-- -1: the name is taken; 0: joined silently; else the join event's seq.
need_seq()
local outside = redis.call('HGET', KEYS[5], ARGV[3])
if outside == ARGV[4] then
  redis.call('HDEL', KEYS[5], ARGV[3])
elseif outside then
  return -1
end
if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[4]) == 0 then return -1 end
redis.call('SET', KEYS[4], ARGV[5])
session_lives(KEYS[4])
if redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2]) then
  return publish(join_head(ARGV[5]))
end
return 0
