-- KEYS[3] names.  ARGV[2] presence limit, ARGV[3] "1" to announce joins,
-- ARGV[4] session key prefix, ARGV[5] session TTL, then for each member:
-- name in lower case, entry, name, token.  Returns the names now held by
-- someone else.
need_seq()
local lost = {}
for i = 6, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('SET', ARGV[4] .. ARGV[i + 3], ARGV[i + 2], 'EX', ARGV[5])
    if ARGV[3] == '1' and redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[2]) then
      publish(join_head(ARGV[i + 2]))
    end
  elseif redis.call('HGET', KEYS[3], ARGV[i]) ~= ARGV[i + 1] then
    table.insert(lost, ARGV[i + 2])
  end
end
return lost
