"""
The chat room: L{Room}, this node's members and the delivery of events to
them, over an L{IRoomStore} that holds the room's shared state
(L{MemoryStore} in one process, L{twisted_chat.cluster.RedisStore} in a
cluster).

The parts: C{interfaces.py} (L{IRoom}, L{IRoomStore}, L{IChatClient}),
C{room.py} (L{Room}), C{backlog.py} (L{Backlog}, the frames kept for
replay) and C{memory.py} (L{MemoryStore}).
"""

from twisted_chat.room.backlog import Backlog
from twisted_chat.room.interfaces import IChatClient, IRoom, IRoomStore
from twisted_chat.room.memory import MemoryStore
from twisted_chat.room.room import PRESENCE_DELAY, Room

__all__ = [
    "Backlog",
    "IChatClient",
    "IRoom",
    "IRoomStore",
    "MemoryStore",
    "PRESENCE_DELAY",
    "Room",
]
