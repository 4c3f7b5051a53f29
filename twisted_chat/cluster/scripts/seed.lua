-- KEYS[1] seq.  ARGV[1] the highest seq this node has delivered.  Creates
-- the counter, or raises it to ARGV[1]; 1 if it had to.
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return current and 1 or 2
end
return 0
