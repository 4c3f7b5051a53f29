-- KEYS[3] names, KEYS[4] session.  ARGV[2] owner, ARGV[3] new name,
-- ARGV[4] session TTL.  -1: taken; -2: not this node's any more.
need_seq()
local old = redis.call('GET', KEYS[4])
if not old then return -2 end
local oldlower = string.lower(old)
if redis.call('HGET', KEYS[3], oldlower) ~= ARGV[2] .. ' ' .. old then return -2 end
local newlower = string.lower(ARGV[3])
if newlower ~= oldlower and redis.call('HEXISTS', KEYS[3], newlower) == 1 then
  return -1
end
redis.call('HDEL', KEYS[3], oldlower)
redis.call('HSET', KEYS[3], newlower, ARGV[2] .. ' ' .. ARGV[3])
redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
return publish('{"type":"nick","old":"' .. old .. '","new":"' .. ARGV[3] .. '","seq":')
