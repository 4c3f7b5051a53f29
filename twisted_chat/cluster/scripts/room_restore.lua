-- A room other than the lobby as this node knows it, put back after Redis
-- lost it.  KEYS[1..7] the room, KEYS[8] the registry of rooms.  ARGV[2]
-- presence limit, ARGV[3] the room's name, ARGV[4] the last seq this node
-- delivered, ARGV[5] 'seed' (the counter and the registry only), '0' (its
-- members too, silently) or '1' (their joins announced), ARGV[6] topic,
-- ARGV[7] '1' with accounts, ARGV[8] the session key prefix, then for each
-- member: name in lower case, entry, operator key (each member's session
-- gets the room back in its rooms).  Returns the names now held by someone
-- else.
local R = room_keys()
local current = redis.call('GET', R.seq)
if not current or tonumber(current) < tonumber(ARGV[4]) then
  redis.call('SET', R.seq, ARGV[4])
end
redis.call('PERSIST', R.seq)
redis.call('PERSIST', R.events)
redis.call('HSETNX', KEYS[8], string.lower(ARGV[3]), ARGV[3])
local lost = {}
if ARGV[5] == 'seed' then return lost end
if ARGV[6] ~= '' then redis.call('SET', R.topic, ARGV[6], 'NX') end
local spelled = redis.call('HGET', KEYS[8], string.lower(ARGV[3]))
local first
for i = 9, #ARGV, 3 do
  if redis.call('HSETNX', R.members, ARGV[i], ARGV[i + 1]) == 1 then
    local _, token, _, _, name = parse_member(ARGV[i + 1])
    redis.call('SADD', ARGV[8] .. token .. ':rooms', spelled)
    first = first or {name, ARGV[i + 2]}
    if ARGV[5] == '1' and redis.call('HLEN', R.members) <= tonumber(ARGV[2]) then
      publish('{"type":"join","room":"' .. spelled .. '","name":"' .. name .. '","seq":')
    end
  elseif redis.call('HGET', R.members, ARGV[i]) ~= ARGV[i + 1] then
    local _, _, _, _, name = parse_member(ARGV[i + 1])
    table.insert(lost, name)
  end
end
if first and redis.call('SCARD', R.ops) == 0 then
  redis.call('SADD', R.ops, first[2])
  publish('{"type":"op","room":"' .. spelled .. '","name":"' .. first[1] ..
          '","by":null,"seq":')
end
return lost
