-- KEYS[3] names, KEYS[4] session, KEYS[5] the names of users outside the
-- lobby.  ARGV[2] owner, ARGV[3] new name.
-- -1: taken; -2: not this node's any more; 0: renamed outside the lobby
-- (nothing to announce there); else the lobby's nick event's seq.
need_seq()
local old = redis.call('GET', KEYS[4])
if not old then return -2 end
local oldlower = string.lower(old)
local entry = ARGV[2] .. ' ' .. old
local where = KEYS[3]
if redis.call('HGET', KEYS[5], oldlower) == entry then
  where = KEYS[5]
elseif redis.call('HGET', KEYS[3], oldlower) ~= entry then
  return -2
end
local newlower = string.lower(ARGV[3])
if newlower ~= oldlower and (redis.call('HEXISTS', KEYS[3], newlower) == 1
                             or redis.call('HEXISTS', KEYS[5], newlower) == 1) then
  return -1
end
redis.call('HDEL', where, oldlower)
redis.call('HSET', where, newlower, ARGV[2] .. ' ' .. ARGV[3])
redis.call('SET', KEYS[4], ARGV[3])
if where == KEYS[5] then return 0 end
return publish('{"type":"nick","old":"' .. old .. '","new":"' .. ARGV[3] .. '","seq":')
