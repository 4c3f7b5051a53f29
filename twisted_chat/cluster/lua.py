# -*- test-case-name: tests.test_cluster -*-
"""
The cluster's Lua scripts, read once, at import, from the package's
C{scripts/*.lua} files (package data, found with L{importlib.resources}).

Each file starts with comment lines that say what its KEYS and ARGV are;
they are left out of the text sent to Redis, since C{EVAL} sends the whole
script with every call.  A script that may publish an event is
C{scripts/prelude.lua} (its C{publish} and C{join_head} functions) followed
by its own file.
"""

from importlib.resources import files


def read(name):
    """
    The text of C{scripts/<name>.lua}, without its leading comment lines.
    """
    path = files(__package__) / "scripts" / (name + ".lua")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("--"):
        del lines[0]
    return "".join(lines)


PRELUDE = read("prelude")


def _publishing(name):
    return PRELUDE + "\n" + read(name)


#: A chat message.
PUBLISH = _publishing("publish")
#: Where a node has read the stream to, for PUBLISH's flow control.
POSITION = read("position")
#: A member joins: its name, its session, and (maybe) a join event.
JOIN = _publishing("join")
#: A member leaves: its name is freed, and (maybe) a leave event.
LEAVE = _publishing("leave")
#: A nick change.
RENAME = _publishing("rename")
#: A session resumed on this node.
RESUME = _publishing("resume")
#: The users of nodes whose liveness key expired leave.
REAP = _publishing("reap")
#: This node's liveness key, and the room's size.
REFRESH = read("refresh")
#: This node's users, put back after Redis lost them.
RESTORE = _publishing("restore")
#: The seq counter, made again or raised to what this node delivered.
SEED = read("seed")
#: The counter and the newest events, when a node starts.
LOAD = read("load")

#: Every script, by the name of its file in C{scripts/}.
SCRIPTS = {
    "publish": PUBLISH,
    "position": POSITION,
    "join": JOIN,
    "leave": LEAVE,
    "rename": RENAME,
    "resume": RESUME,
    "reap": REAP,
    "refresh": REFRESH,
    "restore": RESTORE,
    "seed": SEED,
    "load": LOAD,
}
