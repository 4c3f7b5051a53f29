-- A chat message, refused while the slowest node is far behind.
-- KEYS[3] the nodes' positions.  ARGV[2]: the frame's payload up to and
-- including '"seq":'; ARGV[3] how far the slowest node may be behind;
-- ARGV[4] after how many seconds a position no longer counts.
need_seq()
local now = tonumber(redis.call('TIME')[1])
local head = tonumber(redis.call('GET', KEYS[1]))
for _, position in ipairs(redis.call('HVALS', KEYS[3])) do
  local seq, at = string.match(position, '^(%d+) (%d+)$')
  if seq and now - tonumber(at) <= tonumber(ARGV[4])
     and head - tonumber(seq) > tonumber(ARGV[3]) then
    return redis.error_reply('BEHIND a node is far behind the stream')
  end
end
return publish(ARGV[2])
