-- KEYS[1] the nodes' positions.  ARGV[1] node, ARGV[2] its last seq.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. redis.call('TIME')[1])
