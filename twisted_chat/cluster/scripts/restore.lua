-- KEYS[3] names, KEYS[4] the names of users outside the lobby.  ARGV[2]
-- presence limit, ARGV[3] "1" to announce joins, ARGV[4] session key
-- prefix, then for each user: name in lower case, entry, name, token, "1"
-- if in the lobby, the last dseq this node sent the session (its counter
-- is raised to it, so that direct messages go on from there).  Returns
-- the names now held by someone else.
need_seq()
local lost = {}
for i = 5, #ARGV, 6 do
  local dseq = ARGV[4] .. ARGV[i + 3] .. ':dseq'
  if tonumber(redis.call('GET', dseq) or '0') < tonumber(ARGV[i + 5]) then
    redis.call('SET', dseq, ARGV[i + 5])
  end
  local lobby = ARGV[i + 4] == '1'
  local here, there = KEYS[3], KEYS[4]
  if not lobby then here, there = KEYS[4], KEYS[3] end
  local elsewhere = redis.call('HGET', there, ARGV[i])
  if not elsewhere and redis.call('HSETNX', here, ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('SET', ARGV[4] .. ARGV[i + 3], ARGV[i + 2])
    session_lives(ARGV[4] .. ARGV[i + 3])
    if lobby and ARGV[3] == '1' and redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2]) then
      publish(join_head(ARGV[i + 2]))
    end
  elseif (elsewhere or redis.call('HGET', here, ARGV[i])) ~= ARGV[i + 1] then
    table.insert(lost, ARGV[i + 2])
  end
end
return lost
