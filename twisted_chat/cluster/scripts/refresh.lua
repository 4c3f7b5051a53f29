-- KEYS[1] the set of nodes, KEYS[2] this node's liveness key, KEYS[3]
-- names.  ARGV[1] node, ARGV[2] milliseconds to live.
-- {1 if the node was not registered, 1 if it had been reaped, room size}.
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local new = redis.call('SADD', KEYS[1], ARGV[1])
local reaped = redis.call('DEL', KEYS[2] .. ':reaped')
return {new, reaped, redis.call('HLEN', KEYS[3])}
