-- Shared by the scripts of rooms other than the lobby (room_*.lua, and
-- reap.lua, which takes lost users out of every room); it goes after the
-- prelude.  A room's keys all carry its hash tag: twisted-chat:{<key>}:<role>.
-- A member's entry in members (by name in lower case) is
-- "<node> <token> <seq when it joined> <address or -> <name>".
-- room_keys() is the room of KEYS[1..7] (seq, events, members, ops, bans,
-- topic, positions); room_named(prefix, key) builds them, for reap.lua.
local function room_keys()
  return {seq = KEYS[1], events = KEYS[2], members = KEYS[3], ops = KEYS[4],
          bans = KEYS[5], topic = KEYS[6], positions = KEYS[7]}
end
local function room_named(prefix, key)
  local p = prefix .. '{' .. key .. '}:'
  return {seq = p .. 'seq', events = p .. 'events', members = p .. 'members',
          ops = p .. 'ops', bans = p .. 'bans', topic = p .. 'topic',
          positions = p .. 'positions'}
end
local function parse_member(entry)
  return string.match(entry, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
end
-- What operator rights are given to: the session, or, with accounts
-- ('1'), the account.
local function op_key(accounts, token, name)
  if accounts == '1' then return 'account:' .. string.lower(name) end
  return token
end
-- The member called lower leaves room R (whose name is spelled, and whose
-- key in the registry is key): its leave event (head_tail: the members
-- after its name, without braces) is published while the room, it
-- included, is small enough; an emptied room is forgotten but for its
-- counter and stream, which expire after ttl seconds; a room left without an
-- operator gets its longest-present member as one.  -1 if it was no
-- member (or, with owner, not that owner's); else the leave's seq, or 0.
local function forget_room(R, registry, key, ttl)
  redis.call('DEL', R.members, R.ops, R.bans, R.topic, R.positions)
  redis.call('HDEL', registry, key)
  redis.call('EXPIRE', R.seq, ttl)
  -- (Its stream too, but not at once: the last leave is still to be read.)
  redis.call('EXPIRE', R.events, ttl)
end
local function remove_member(R, lower, owner, tail, limit, accounts, ttl,
                             registry, key, spelled)
  local entry = redis.call('HGET', R.members, lower)
  if owner and (not entry or string.sub(entry, 1, #owner + 1) ~= owner .. ' ') then
    -- Not under that name (a rename this room missed): by its owner.
    entry = nil
    local all = redis.call('HGETALL', R.members)
    for i = 1, #all, 2 do
      if string.sub(all[i + 1], 1, #owner + 1) == owner .. ' ' then
        lower, entry = all[i], all[i + 1]
      end
    end
  end
  if not entry then
    -- (A room put back empty after Redis lost it, that nobody entered.)
    if redis.call('HLEN', R.members) == 0 then forget_room(R, registry, key, ttl) end
    return -1
  end
  local node, token, _, _, name = parse_member(entry)
  local announce = redis.call('HLEN', R.members) <= tonumber(limit)
  redis.call('HDEL', R.members, lower)
  local seq = 0
  if announce then
    seq = publish_in(R.seq, R.events, '{"type":"leave","room":"' .. spelled ..
                     '","name":"' .. name .. '",' .. tail .. ',"seq":')
  end
  redis.call('SREM', R.ops, op_key(accounts, token, name))
  if redis.call('HLEN', R.members) == 0 then
    forget_room(R, registry, key, ttl)
  elseif redis.call('SCARD', R.ops) == 0 then
    local heir, heir_token, since
    for _, other in ipairs(redis.call('HVALS', R.members)) do
      local _, t, joined, _, n = parse_member(other)
      if since == nil or tonumber(joined) < since then
        heir, heir_token, since = n, t, tonumber(joined)
      end
    end
    redis.call('SADD', R.ops, op_key(accounts, heir_token, heir))
    publish_in(R.seq, R.events, '{"type":"op","room":"' .. spelled .. '","name":"' ..
               heir .. '","by":null,"seq":')
  end
  return seq
end
