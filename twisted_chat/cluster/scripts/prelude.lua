-- Shared by every script that may publish: it goes before their text.
-- KEYS[1] is the seq counter and KEYS[2] the stream, ARGV[1] the stream's
-- MAXLEN.  A publishing script calls need_seq() first, and so refuses to
-- run if the counter is missing (Redis lost its data): the node then seeds
-- it again above what it has delivered (seed.lua, room_seed.lua).
-- publish_in(seq, stream, head): takes the next seq of that counter and
-- appends the frame head .. seq .. '}' to that stream with the id <seq>-0;
-- publish(head) does it in KEYS[1] and KEYS[2]; join_head(name) is a lobby
-- join event's head.  A session's keys (its name, and with it its rooms,
-- dseq and direct frames) stay while it is connected:
-- session_lives(key) when it joins or resumes, session_ends(key, ttl) when
-- its connection ends, for it to be resumed within ttl seconds.
local function need_seq(key)
  if redis.call('EXISTS', key or KEYS[1]) == 0 then
    error({err = 'NOSEQ the seq counter is missing'})
  end
end
local function publish_in(seq_key, stream_key, head)
  local seq = redis.call('INCR', seq_key)
  local added = redis.pcall('XADD', stream_key, 'MAXLEN', '~', ARGV[1],
                            seq .. '-0', 'f', head .. seq .. '}')
  if type(added) == 'table' and added.err then
    redis.call('DECR', seq_key)
    error(added.err)
  end
  return seq
end
local function publish(head)
  return publish_in(KEYS[1], KEYS[2], head)
end
local function session_lives(key)
  for _, k in ipairs({key, key .. ':rooms', key .. ':dseq', key .. ':direct'}) do
    redis.call('PERSIST', k)
  end
end
local function session_ends(key, ttl)
  for _, k in ipairs({key, key .. ':rooms', key .. ':dseq', key .. ':direct'}) do
    redis.call('EXPIRE', k, ttl)
  end
end
local function join_head(name)
  return '{"type":"join","name":"' .. name .. '","seq":'
end
