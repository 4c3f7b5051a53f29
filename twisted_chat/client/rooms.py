# -*- test-case-name: tests.unit.test_client_rooms -*-
"""
What the client knows of rooms: their names, L{Room} (one membership: the
seq of the last event seen, the topic), and which room becomes the current
one when the current one is left (L{pick_current}).
"""

import re

from twisted_chat.wire import LOBBY, REASON_KICKED, REASON_PART

#: The leave reasons that end one membership only (the others end the
#: connection, in every room).
MEMBERSHIP_ENDS = frozenset([REASON_PART, REASON_KICKED])

#: What a room name (and a user name) is made of.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)


def is_name(text):
    """
    Whether C{text} is a room (or user) name: 1 to 32 of C{A-Z a-z 0-9 _ -}.
    """
    return isinstance(text, str) and _NAME_RE.fullmatch(text) is not None


def room_key(name):
    """
    The key of a room name: room names are unique ignoring case.
    """
    return name.lower()


def same_room(one, other):
    """
    Whether two room names (either may be L{None}) name the same room.
    """
    return (isinstance(one, str) and isinstance(other, str)
            and room_key(one) == room_key(other))


def room_of(message):
    """
    The room a room-scoped frame is for: its C{room} member, else the lobby.
    """
    room = message.get("room")
    return room if isinstance(room, str) else LOBBY


def pick_current(names):
    """
    The room that becomes current when the current one is left: the lobby
    if C{names} (the rooms one is in, in the order they were joined) has
    it, else the one joined last, else L{None}.
    """
    names = list(names)
    for name in names:
        if same_room(name, LOBBY):
            return name
    return names[-1] if names else None


class Room:
    """
    One room the session is in.

    @ivar name: its name, as the server spells it.
    @ivar seq: the seq of its last event seen, or L{None}.
    @ivar topic: its topic (C{""} for none), as last heard.
    """

    def __init__(self, name, seq=None, topic=""):
        self.name = name
        self.seq = seq
        self.topic = topic

    def __repr__(self):
        return "<Room %r seq=%r>" % (self.name, self.seq)
