-- What a session resuming on this node had: KEYS[1] its rooms, KEYS[2] its
-- dseq counter, KEYS[3] its kept direct frames.  {rooms, last dseq,
-- frames oldest first}.
return {redis.call('SMEMBERS', KEYS[1]), redis.call('GET', KEYS[2]) or '0',
        redis.call('LRANGE', KEYS[3], 0, -1)}
