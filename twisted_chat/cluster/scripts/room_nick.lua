-- A member of a room other than the lobby was renamed (the lobby's
-- rename.lua took the name).  KEYS[1..3] the room's seq, events, members.
-- ARGV[2] old name in lower case, ARGV[3] new name, ARGV[4] the nick
-- event's head.  Its seq, or 0 if it is no member.
need_seq()
local entry = redis.call('HGET', KEYS[3], ARGV[2])
if not entry then return 0 end
local node, token, joined, host, _ = parse_member(entry)
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[3], string.lower(ARGV[3]),
           node .. ' ' .. token .. ' ' .. joined .. ' ' .. host .. ' ' .. ARGV[3])
return publish(ARGV[4])
