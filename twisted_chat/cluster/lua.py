# -*- test-case-name: tests.test_cluster -*-
"""
The cluster's Lua scripts, read once, at import, from the package's
C{scripts/*.lua} files (package data, found with L{importlib.resources}).

Each file starts with comment lines that say what its KEYS and ARGV are;
they are left out of the text sent to Redis, since C{EVAL} sends the whole
script with every call.  A script that may publish an event is
C{scripts/prelude.lua} (its C{need_seq}, C{publish} and C{join_head}
functions) followed by its own file; a script of a room other than the
lobby has C{scripts/roomlib.lua} (its members' entries, and how a member
leaves) between the two.
"""

from importlib.resources import files

from twisted_chat import wire


def read(name):
    """
    The text of C{scripts/<name>.lua}, without its leading comment lines.
    """
    path = files(__package__) / "scripts" / (name + ".lua")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("--"):
        del lines[0]
    return "".join(lines)


def event_head(event):
    """
    C{event}'s JSON up to and including C{"seq":}: what a publishing
    script is given, to append the seq and the closing brace.
    """
    return wire.encode(event)[:-1] + b',"seq":'


def leave_tail(reason, message=None, by=None):
    """
    A leave event's members after its name, without braces, as the
    scripts that publish a leave are given them.
    """
    fields = {"reason": reason}
    if by is not None:
        fields["by"] = by
    if message is not None:
        fields["message"] = message
    return wire.encode(fields)[1:-1]


PRELUDE = read("prelude")
ROOMLIB = read("roomlib")


def _publishing(name):
    return PRELUDE + "\n" + read(name)


def _of_rooms(name):
    return PRELUDE + "\n" + ROOMLIB + "\n" + read(name)


#: A chat message.
PUBLISH = _publishing("publish")
#: Where a node has read the stream to, for PUBLISH's flow control.
POSITION = read("position")
#: A member joins: its name, its session, and (maybe) a join event.
JOIN = _publishing("join")
#: A member leaves: its name is freed, and (maybe) a leave event.
LEAVE = _publishing("leave")
#: A member leaves the lobby, keeping its name.
LOBBY_PART = _publishing("lobby_part")
#: A nick change.
RENAME = _publishing("rename")
#: A session resumed on this node.
RESUME = _publishing("resume")
#: The users of nodes whose liveness key expired leave, every room.
REAP = _of_rooms("reap")
#: This node's liveness key, and the room's size.
REFRESH = read("refresh")
#: This node's users, put back after Redis lost them.
RESTORE = _publishing("restore")
#: The seq counter, made again or raised to what this node delivered.
SEED = read("seed")
#: The counter and the newest events, when a node starts.
LOAD = read("load")
#: A member enters a room other than the lobby (made if new).
ROOM_ENTER = _of_rooms("room_enter")
#: A member leaves a room other than the lobby.
ROOM_LEAVE = _of_rooms("room_leave")
#: A member of a room other than the lobby was renamed.
ROOM_NICK = _of_rooms("room_nick")
#: An operator's act: topic, op, kick, ban, unban.
ROOM_MODERATE = _of_rooms("room_moderate")
#: Who is in a room other than the lobby, and its operators.
ROOM_WHO = _of_rooms("room_who")
#: A room other than the lobby put back after Redis lost it.
ROOM_RESTORE = _of_rooms("room_restore")
#: The rooms other than the lobby, for a rooms listing.
ROOMS = read("rooms")
#: A direct message.
DIRECT = read("direct")
#: A resuming session's rooms and direct messages.
SESSION = read("session")

#: Every script, by the name of its file in C{scripts/}.
SCRIPTS = {
    "publish": PUBLISH,
    "position": POSITION,
    "join": JOIN,
    "leave": LEAVE,
    "lobby_part": LOBBY_PART,
    "rename": RENAME,
    "resume": RESUME,
    "reap": REAP,
    "refresh": REFRESH,
    "restore": RESTORE,
    "seed": SEED,
    "load": LOAD,
    "room_enter": ROOM_ENTER,
    "room_leave": ROOM_LEAVE,
    "room_nick": ROOM_NICK,
    "room_moderate": ROOM_MODERATE,
    "room_who": ROOM_WHO,
    "room_restore": ROOM_RESTORE,
    "rooms": ROOMS,
    "direct": DIRECT,
    "session": SESSION,
}
