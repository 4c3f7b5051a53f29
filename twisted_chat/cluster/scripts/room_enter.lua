-- A member enters a room other than the lobby, made if it does not exist
-- (its maker, or whoever enters it empty, becomes its operator).  KEYS[1..7] the room, KEYS[8] the
-- registry of rooms, KEYS[9] the session's rooms.  ARGV[2] presence limit,
-- ARGV[3] name in lower case, ARGV[4] node, ARGV[5] token, ARGV[6] address
-- (- for none, or with accounts), ARGV[7] name, ARGV[8] the room's name as
-- asked, ARGV[9] the member's operator key, ARGV[10] --max-rooms, ARGV[11]
-- how many events to return (0: none).
-- {-1}: banned; {-2}: too many rooms; else {1 joined or 2 already a member
-- of this session (taken over by this node, silently), the seq before,
-- members, topic, the room's name, the newest events up to the seq before
-- (newest first)}.
local R = room_keys()
local key = string.lower(ARGV[8])
local spelled = redis.call('HGET', KEYS[8], key)
local made = false
if not spelled then
  if redis.call('HLEN', KEYS[8]) + 1 >= tonumber(ARGV[10]) then return {-2} end
  spelled = ARGV[8]
  redis.call('HSET', KEYS[8], key, spelled)
  redis.call('SET', R.seq, '0', 'NX')
  redis.call('PERSIST', R.seq)
  redis.call('PERSIST', R.events)
  made = true
else
  need_seq()
end
local entry = redis.call('HGET', R.members, ARGV[3])
local before = tonumber(redis.call('GET', R.seq))
local status = 1
if entry then
  local _, token, joined, _, _ = parse_member(entry)
  if token == ARGV[5] then
    status = 2
    redis.call('HSET', R.members, ARGV[3], ARGV[4] .. ' ' .. token .. ' ' .. joined ..
               ' ' .. ARGV[6] .. ' ' .. ARGV[7])
  end
end
if status == 1 then
  if redis.call('HEXISTS', R.bans, ARGV[3]) == 1 then return {-1} end
  if ARGV[6] ~= '-' then
    for _, hosts in ipairs(redis.call('HVALS', R.bans)) do
      if string.find(' ' .. hosts .. ' ', ' ' .. ARGV[6] .. ' ', 1, true) then
        return {-1}
      end
    end
  end
  redis.call('HSET', R.members, ARGV[3], ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. before ..
             ' ' .. ARGV[6] .. ' ' .. ARGV[7])
  if made or redis.call('HLEN', R.members) == 1 then
    redis.call('SADD', R.ops, ARGV[9])
  end
  if redis.call('HLEN', R.members) <= tonumber(ARGV[2]) then
    publish('{"type":"join","room":"' .. spelled .. '","name":"' .. ARGV[7] .. '","seq":')
  end
end
redis.call('SADD', KEYS[9], spelled)
local events = {}
if tonumber(ARGV[11]) > 0 and before > 0 then
  events = redis.call('XREVRANGE', R.events, before .. '-0', '-', 'COUNT', ARGV[11])
end
return {status, before, redis.call('HLEN', R.members),
        redis.call('GET', R.topic) or '', spelled, events}
