# -*- test-case-name: tests.unit.test_lifecycle -*-
"""
The life of one client connection, as a small state machine.

::

    connectionMade --refused--> CLOSING
        |
        +--> PENDING (guests) --first frame, or JOIN_HOLD s--> JOINED
        |        |
        |        +--resume--> RESUMING --answered, or refused--> JOINED
        |
        +--> LOGIN (accounts) --logged in--> JOINED
                 |
                 +--resume--> RESUMING --answered--> JOINED
                                       --refused--> LOGIN

    any state --quit, error, timeout, lost, shutdown--> CLOSING

PENDING and LOGIN are welcomed connections that are in no room yet (the
room keeps events for them); while RESUMING, the room is asked to continue
an old session, and the connection reads nothing more until it has
answered; JOINED is a member; CLOSING ignores what arrives.
"""

NEW = "new"
PENDING = "pending"
LOGIN = "login"
RESUMING = "resuming"
JOINED = "joined"
CLOSING = "closing"

#: The moves each state allows.
MOVES = {
    NEW: frozenset([PENDING, LOGIN, CLOSING]),
    PENDING: frozenset([JOINED, RESUMING, CLOSING]),
    LOGIN: frozenset([JOINED, RESUMING, CLOSING]),
    RESUMING: frozenset([JOINED, LOGIN, CLOSING]),
    JOINED: frozenset([CLOSING]),
    CLOSING: frozenset(),
}


class BadMove(Exception):
    """
    A connection was asked to make a move its state does not allow: a bug
    in the server, never the client's doing.
    """


def move(state, new):
    """
    The move from C{state} to C{new}::

        self.state = move(self.state, JOINED)

    @return: C{new}.
    @raise BadMove: if C{state} does not allow it.
    """
    if new not in MOVES[state]:
        raise BadMove("a connection cannot go from %s to %s" % (state, new))
    return new
