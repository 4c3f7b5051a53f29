-- A member leaves a room other than the lobby (a part, or its connection
-- ended).  KEYS[1..7] the room, KEYS[8] the registry of rooms, KEYS[9] the
-- session's rooms.  ARGV[2] presence limit, ARGV[3] name in lower case,
-- ARGV[4] owner ("node token"), ARGV[5] the leave event's members after
-- its name, ARGV[6] '1' if the session leaves the room for good (a part),
-- ARGV[7] '1' with accounts, ARGV[8] how long an emptied room's counter
-- stays, ARGV[9] the room's name.  The leave's seq, 0 if not announced,
-- -1 if it was not this member's.
need_seq()
local seq = remove_member(room_keys(), ARGV[3], ARGV[4], ARGV[5], ARGV[2], ARGV[7],
                          ARGV[8], KEYS[8], string.lower(ARGV[9]), ARGV[9])
if ARGV[6] == '1' then redis.call('SREM', KEYS[9], ARGV[9]) end
return seq
