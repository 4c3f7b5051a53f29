-- Who is in a room other than the lobby.  KEYS[3] members, KEYS[4] ops,
-- KEYS[8] the registry.  ARGV[1] the room's key, ARGV[2] '1' with
-- accounts.  {} if there is no such room; else {the room's name, names,
-- operators' names}.
local spelled = redis.call('HGET', KEYS[8], ARGV[1])
if not spelled then return {} end
local names, ops = {}, {}
for _, entry in ipairs(redis.call('HVALS', KEYS[3])) do
  local _, token, _, _, name = parse_member(entry)
  table.insert(names, name)
  if redis.call('SISMEMBER', KEYS[4], op_key(ARGV[2], token, name)) == 1 then
    table.insert(ops, name)
  end
end
return {spelled, names, ops}
