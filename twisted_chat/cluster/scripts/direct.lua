-- A direct message.  KEYS[1] the lobby's names, KEYS[2] the names of users
-- outside the lobby.  ARGV[1] the
-- key prefix, ARGV[2] the sender's token, ARGV[3] its node, ARGV[4] the
-- receiver's name in lower case, ARGV[5] the sender's name, ARGV[6] the
-- frame's members after "to", closing brace included, ARGV[7] how many
-- frames a session keeps, ARGV[8] a node inbox's MAXLEN.  (The session's keys stay while it is connected: see the
-- prelude.)  -1: the sender is not registered (Redis lost it, and its
-- node has not put it back yet: its counter may not be either).  Each session (the sender's, and the receiver's if another)
-- takes its next dseq; its frame is kept in the session's list and goes
-- to the inbox stream of the node that has the session (t=token, d=dseq,
-- n=the session's name, f=frame).  0: no such user; else 1.
local sender = string.lower(ARGV[5])
if not (redis.call('HEXISTS', KEYS[1], sender) == 1
        or redis.call('HEXISTS', KEYS[2], sender) == 1) then
  return -1
end
local entry = redis.call('HGET', KEYS[1], ARGV[4]) or redis.call('HGET', KEYS[2], ARGV[4])
if not entry then return 0 end
local node, token, name = string.match(entry, '^(%S+) (%S+) (%S+)$')
local function send(to_node, to_token, to_name)
  local base = ARGV[1] .. 'session:' .. to_token
  local dseq = redis.call('INCR', base .. ':dseq')
  local frame = '{"type":"direct","dseq":' .. dseq .. ',"from":"' .. ARGV[5] ..
                '","to":"' .. name .. '",' .. ARGV[6]
  redis.call('RPUSH', base .. ':direct', frame)
  redis.call('LTRIM', base .. ':direct', -tonumber(ARGV[7]), -1)
  redis.call('XADD', ARGV[1] .. 'inbox:' .. to_node, 'MAXLEN', '~', ARGV[8], '*',
             't', to_token, 'd', dseq, 'n', to_name, 'f', frame)
end
send(ARGV[3], ARGV[2], ARGV[5])
if token ~= ARGV[2] then send(node, token, name) end
return 1
