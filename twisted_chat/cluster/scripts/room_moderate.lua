-- An operator's act in a room other than the lobby.  KEYS[1..7] the room,
-- KEYS[8] the registry of rooms, KEYS[9] the lobby's names, KEYS[10] the
-- names of users outside the lobby.
-- ARGV[2] the act (topic, op, kick, ban, unban), ARGV[3] the actor's
-- operator key, ARGV[4] presence limit, ARGV[5] '1' with accounts, ARGV[6]
-- how long an emptied room's counter stays, ARGV[7] the room's name,
-- ARGV[8] the key prefix, ARGV[9] a node inbox's MAXLEN, ARGV[10] the
-- actor's name, then the act's: topic: ARGV[11] the topic, ARGV[12] its
-- event's head (the node encodes the text); op, kick, ban,
-- unban: ARGV[11] the name as asked, and for kick ARGV[12] the leave
-- event's members after its name, for ban ARGV[12] the banned user's
-- address if the node knows it (else -).
-- {-1}: not an operator; {-2}: no such member; {0}: nothing to do; {1}.
-- A kicked member's node is told through its inbox stream
-- (k=kick, t=token, r=room, s=the leave's seq or 0).
need_seq()
local R = room_keys()
local act, spelled = ARGV[2], ARGV[7]
local head = '{"type":"' .. act .. '","room":"' .. spelled .. '",'
if redis.call('SISMEMBER', R.ops, ARGV[3]) == 0 then return {-1} end
if act == 'topic' then
  redis.call('SET', R.topic, ARGV[11])
  publish(ARGV[12])
  return {1}
end
local lower = string.lower(ARGV[11])
local entry = redis.call('HGET', R.members, lower)
local function kick(tail)
  local node, token = parse_member(entry)
  local seq = remove_member(R, lower, nil, tail, ARGV[4], ARGV[5], ARGV[6],
                            KEYS[8], string.lower(spelled), spelled)
  redis.call('SREM', ARGV[8] .. 'session:' .. token .. ':rooms', spelled)
  redis.call('XADD', ARGV[8] .. 'inbox:' .. node, 'MAXLEN', '~', ARGV[9], '*',
             'k', 'kick', 't', token, 'r', spelled, 's', seq)
end
if act == 'op' or act == 'kick' then
  if not entry then return {-2} end
  if act == 'kick' then
    kick(ARGV[12])
    return {1}
  end
  local _, token, _, _, name = parse_member(entry)
  local key = op_key(ARGV[5], token, name)
  if redis.call('SISMEMBER', R.ops, key) == 1 then return {0} end
  redis.call('SADD', R.ops, key)
  publish(head .. '"name":"' .. name .. '","by":"' .. ARGV[10] .. '","seq":')
  return {1}
end
if act == 'unban' then
  if redis.call('HDEL', R.bans, lower) == 0 then return {0} end
  publish(head .. '"name":"' .. ARGV[11] .. '","by":"' .. ARGV[10] .. '","seq":')
  return {1}
end
-- ban: the name, and the addresses of the user if online.
local name = ARGV[11]
local hosts = {}
if ARGV[12] ~= '-' then table.insert(hosts, ARGV[12]) end
local user = redis.call('HGET', KEYS[9], lower) or redis.call('HGET', KEYS[10], lower)
if user then name = string.match(user, '^%S+ %S+ (%S+)$') end
if entry then
  local _, _, _, host, n = parse_member(entry)
  name = n
  if host ~= '-' then table.insert(hosts, host) end
end
local old = redis.call('HGET', R.bans, lower)
if old and old ~= '' then table.insert(hosts, old) end
if ARGV[5] == '1' then hosts = {} end
redis.call('HSET', R.bans, lower, table.concat(hosts, ' '))
publish(head .. '"name":"' .. name .. '","by":"' .. ARGV[10] .. '","seq":')
if entry then kick('"reason":"kicked","by":"' .. ARGV[10] .. '"') end
return {1}
