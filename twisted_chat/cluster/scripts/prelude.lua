-- Shared by every script that may publish (publish.lua, join.lua, leave.lua,
-- rename.lua, resume.lua, reap.lua, restore.lua): it goes before their text.
-- KEYS[1] is the seq counter and KEYS[2] the stream, ARGV[1] the stream's
-- MAXLEN.  A publishing script refuses to run if the counter is missing
-- (Redis lost its data): the node then seeds it again above what it has
-- delivered (seed.lua).
-- publish(head): takes the next seq and appends the frame head .. seq .. '}'
-- to the stream with the id <seq>-0; join_head(name) is a join event's head.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOSEQ the seq counter is missing')
end
local function publish(head)
  local seq = redis.call('INCR', KEYS[1])
  local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1],
                            seq .. '-0', 'f', head .. seq .. '}')
  if type(added) == 'table' and added.err then
    redis.call('DECR', KEYS[1])
    error(added.err)
  end
  return seq
end
local function join_head(name)
  return '{"type":"join","name":"' .. name .. '","seq":'
end
