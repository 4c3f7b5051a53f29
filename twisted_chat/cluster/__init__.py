# -*- test-case-name: tests.test_cluster -*-
"""
Several chat nodes, one room: the room's state lives in Redis.

With C{--redis URL} the server's hub is a L{ClusterHub}.  Every broadcast
event is appended once to a Redis Stream by a Lua script that also takes
the next C{seq} from a counter, so the sequence is global and gap-free; the
stream entry's id is C{<seq>-0}.  Every node reads the stream (C{XREAD
BLOCK} from the last id it delivered) and sends each event's frame, framed
once, to its own clients.  Names, sessions and node liveness are Redis keys;
docs/cluster.rst describes them and the failure modes.

The Redis client is txredisapi, a Twisted-native one, on connections that
L{ClientService} keeps up (docs/cluster.rst says why).
"""

from twisted_chat.cluster.hub import (  # noqa: F401 (the package's names)
    BEHIND_FRACTION,
    BEHIND_RETRY_AFTER,
    BLOCK_MS,
    GUEST_TAG_LENGTH,
    JOIN,
    LEAVE,
    LOAD,
    MAX_RETRY_DELAY,
    POSITION,
    PUBLISH,
    READ_COUNT,
    REAP,
    REFRESH,
    RENAME,
    REPLY_TIMEOUT,
    RESTORE,
    RESUME,
    SEED,
    SESSION_TTL,
    STALE_POSITION,
    ClusterHub,
    RedisAddress,
    RedisLink,
)
