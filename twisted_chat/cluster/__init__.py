# -*- test-case-name: tests.test_cluster -*-
"""
Several chat nodes, one room: the room's state lives in Redis.

With C{--redis URL} the server's room keeps its shared state in a
L{RedisStore} instead of memory.  Every broadcast
event is appended once to a Redis Stream by a Lua script that also takes
the next C{seq} from a counter, so the sequence is global and gap-free; the
stream entry's id is C{<seq>-0}.  Every node reads the stream (C{XREAD
BLOCK} from the last id it delivered) and sends each event's frame, framed
once, to its own clients.  Names, sessions and node liveness are Redis keys;
docs/cluster.rst describes them and the failure modes.

The Redis client is txredisapi, a Twisted-native one, on connections that
L{ClientService} keeps up (docs/cluster.rst says why).

The parts: C{link.py} (the Redis address and connections), C{reader.py}
(the stream reader), C{liveness.py} (refresh, reap and restore of nodes),
C{store.py} (L{RedisStore}: the room's state in Redis), C{lua.py} and
C{scripts/*.lua} (the Lua scripts, package data).
"""

from twisted_chat.cluster.store import (
    BEHIND_FRACTION,
    BEHIND_RETRY_AFTER,
    GUEST_TAG_LENGTH,
    SESSION_TTL,
    STALE_POSITION,
    RedisStore,
)
from twisted_chat.cluster.link import (
    MAX_RETRY_DELAY,
    REPLY_TIMEOUT,
    RedisAddress,
    RedisLink,
)
from twisted_chat.cluster.liveness import NodeLiveness
from twisted_chat.cluster.lua import (
    JOIN,
    LEAVE,
    LOAD,
    POSITION,
    PUBLISH,
    REAP,
    REFRESH,
    RENAME,
    RESTORE,
    RESUME,
    SEED,
)
from twisted_chat.cluster.reader import BLOCK_MS, READ_COUNT, StreamReader

__all__ = [
    "RedisStore",
    "NodeLiveness",
    "RedisAddress",
    "RedisLink",
    "StreamReader",
    "BEHIND_FRACTION",
    "BEHIND_RETRY_AFTER",
    "BLOCK_MS",
    "GUEST_TAG_LENGTH",
    "MAX_RETRY_DELAY",
    "READ_COUNT",
    "REPLY_TIMEOUT",
    "SESSION_TTL",
    "STALE_POSITION",
    "JOIN",
    "LEAVE",
    "LOAD",
    "POSITION",
    "PUBLISH",
    "REAP",
    "REFRESH",
    "RENAME",
    "RESTORE",
    "RESUME",
    "SEED",
]
