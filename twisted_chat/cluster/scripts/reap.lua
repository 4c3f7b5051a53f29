-- KEYS[3] names, KEYS[4] the set of nodes, KEYS[5] positions, KEYS[6] the
-- registry of rooms, KEYS[7] the names of users outside the lobby.
-- ARGV[2] presence limit, ARGV[3] this node, ARGV[4] the liveness key
-- prefix, ARGV[5] how long a reaped mark stays (and a reaped session stays
-- resumable), ARGV[6] the key prefix, ARGV[7] '1' with accounts, ARGV[8]
-- how long an emptied room's counter stays.  Every node whose liveness key
-- has expired is removed (SREM makes that happen once), and its users
-- leave with reason timeout: the lobby, then every other room they were in
-- (whose keys this builds, from the registry).
need_seq()
local left = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if node ~= ARGV[3] and redis.call('EXISTS', ARGV[4] .. node) == 0 then
    redis.call('SREM', KEYS[4], node)
    redis.call('HDEL', KEYS[5], node)
    redis.call('SET', ARGV[4] .. node .. ':reaped', '1', 'EX', ARGV[5])
    redis.call('DEL', ARGV[6] .. 'inbox:' .. node)
    local all = redis.call('HGETALL', KEYS[3])
    local size = #all / 2
    for i = 1, #all, 2 do
      local owner, token, name = string.match(all[i + 1], '^(%S+) (%S+) (%S+)$')
      if owner == node then
        redis.call('HDEL', KEYS[3], all[i])
        session_ends(ARGV[6] .. 'session:' .. token, ARGV[5])
        if size <= tonumber(ARGV[2]) then
          publish('{"type":"leave","name":"' .. name .. '","reason":"timeout","seq":')
        end
        size = size - 1
        left = left + 1
      end
    end
    local outside = redis.call('HGETALL', KEYS[7])
    for i = 1, #outside, 2 do
      local owner, token = string.match(outside[i + 1], '^(%S+) (%S+) ')
      if owner == node then
        redis.call('HDEL', KEYS[7], outside[i])
        session_ends(ARGV[6] .. 'session:' .. token, ARGV[5])
        left = left + 1
      end
    end
    local rooms = redis.call('HGETALL', KEYS[6])
    for i = 1, #rooms, 2 do
      local R = room_named(ARGV[6], rooms[i])
      redis.call('HDEL', R.positions, node)
      local members = redis.call('HGETALL', R.members)
      for j = 1, #members, 2 do
        if string.match(members[j + 1], '^(%S+) ') == node then
          remove_member(R, members[j], nil, '"reason":"timeout"', ARGV[2], ARGV[7],
                        ARGV[8], KEYS[6], rooms[i], rooms[i + 1])
        end
      end
    end
  end
end
return left
