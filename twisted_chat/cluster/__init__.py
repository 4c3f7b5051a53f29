# -*- test-case-name: tests.test_cluster -*-
"""
Several chat nodes, one server: the rooms' state lives in Redis.

With C{--redis URL} the server's rooms keep their shared state in Redis: the
lobby in a L{RedisStore}, every other room in a L{RoomStore}, under
L{SharedRooms}.  Every event of a room is appended once to the room's Redis
Stream by a Lua script that also takes the next C{seq} from the room's
counter, so each room's sequence is global and gap-free; the stream entry's
id is C{<seq>-0}.  Every node reads the streams of its rooms (one C{XREAD
BLOCK} from the last ids it delivered, with its inbox of direct messages)
and sends each event's frame, framed once, to its own clients.  Names,
sessions and node liveness are Redis keys; docs/cluster.rst describes them
and the failure modes.

The Redis client is txredisapi, a Twisted-native one, on connections that
L{ClientService} keeps up (docs/cluster.rst says why).

The parts: C{link.py} (the Redis address and connections), C{reader.py}
(the stream reader), C{liveness.py} (refresh, reap and restore of nodes),
C{store.py} (L{RedisStore}: the lobby's state in Redis, and the node),
C{rooms.py} (L{SharedRooms} and L{RoomStore}: the other rooms and direct
messages), C{lua.py} and C{scripts/*.lua} (the Lua scripts, package data).
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
from twisted_chat.cluster.rooms import RoomStore, SharedRooms
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
    "RoomStore",
    "SharedRooms",
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
