# -*- test-case-name: tests.test_hub -*-
"""
The chat room: who is in it, what they are called, and the event sequence.

L{ChatHub} knows nothing of sockets.  It talks to its members through
L{IChatClient}, so the server's protocol is one implementation and the tests
use small fakes.  Every broadcast event gets the next C{seq} and is encoded
into frame bytes once; every member is sent the same bytes.
"""

from twisted.logger import Logger
from zope.interface import Attribute, Interface

from twisted_chat import wire


class IChatClient(Interface):
    """
    A member of the room, as the hub sees it.
    """

    name = Attribute("The member's current name; the hub assigns it.")

    def send_frame(data):
        """
        Queue complete frame bytes (length prefix included) for the member.
        """

    def abort(reason):
        """
        Drop the member's connection at once; C{reason} is a leave reason.
        """


class ChatHub:
    """
    The room: members by name, the C{seq} counter, and broadcasting.

    @ivar seq: the C{seq} of the last broadcast event, 0 before the first.
    @ivar closing: set by L{close}; leaves are then no longer broadcast.
    """

    log = Logger()

    def __init__(self, clock):
        """
        @param clock: an L{IReactorTime}; message events carry its time.
        """
        self.clock = clock
        self.seq = 0
        self.closing = False
        self._members = {}
        self._guests = 0

    def __len__(self):
        return len(self._members)

    def __contains__(self, client):
        return self._members.get(client.name.lower()) is client

    def new_guest_name(self):
        """
        Return the next unused C{guest-N} name.
        """
        while True:
            self._guests += 1
            name = "%s%d" % (wire.GUEST_PREFIX, self._guests)
            if name not in self._members:
                return name

    def names(self):
        """
        The members' names, sorted (by code point; names are ASCII).
        """
        return sorted(member.name for member in self._members.values())

    def join(self, client):
        """
        Add C{client}, under the name it already carries, and broadcast
        C{join}.
        """
        self._members[client.name.lower()] = client
        self._broadcast({"type": "join", "name": client.name})

    def leave(self, client, reason, message=None):
        """
        Remove C{client} and broadcast C{leave}, unless the room is closing.

        Does nothing if C{client} is not a member, so it is safe to call
        from every way a connection can end.
        """
        if client not in self:
            return
        del self._members[client.name.lower()]
        if self.closing:
            return
        event = {"type": "leave", "name": client.name, "reason": reason}
        if message is not None:
            event["message"] = message
        self._broadcast(event)

    def rename(self, client, new_name):
        """
        Give C{client} the name C{new_name} and broadcast C{nick}.

        @raise wire.ProtocolError: L{wire.BAD_NICK} for an invalid name,
            L{wire.NICK_TAKEN} if another member has it in any case.
        """
        wire.check_nick(new_name)
        key = new_name.lower()
        holder = self._members.get(key)
        if holder is not None and holder is not client:
            raise wire.ProtocolError(
                wire.NICK_TAKEN, "the name %s is taken" % (new_name,)
            )
        old_name = client.name
        del self._members[old_name.lower()]
        self._members[key] = client
        client.name = new_name
        self._broadcast({"type": "nick", "old": old_name, "new": new_name})

    def message(self, client, text):
        """
        Broadcast a chat message from C{client}; the text must be checked.
        """
        self._broadcast(
            {
                "type": "message",
                "from": client.name,
                "text": text,
                "time": self.clock.seconds(),
            }
        )

    def close(self, message):
        """
        Stop broadcasting leaves and send every member a C{shutdown} frame.
        """
        self.closing = True
        self._send_all(wire.encode_frame({"type": "shutdown", "message": message}))

    def _broadcast(self, event):
        """
        Give C{event} the next C{seq} and send it to every member.

        This is the only place C{seq} changes, so it rises by exactly one per
        event and every member sees the same order.
        """
        self.seq += 1
        event["seq"] = self.seq
        self._send_all(wire.encode_frame(event))

    def _send_all(self, data):
        """
        Send C{data} to every member; a member whose send fails is aborted
        after the others have been served.
        """
        failed = []
        for client in list(self._members.values()):
            try:
                client.send_frame(data)
            except Exception:
                self.log.failure("sending to {name} failed", name=client.name)
                failed.append(client)
        for client in failed:
            client.abort(wire.REASON_ERROR)
