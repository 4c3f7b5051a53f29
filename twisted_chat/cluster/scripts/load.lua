-- KEYS[1] seq, KEYS[2] stream.  ARGV[1] how many entries.  The counter and
-- the newest entries, newest first, read at one instant.
return {redis.call('GET', KEYS[1]),
        redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])}
