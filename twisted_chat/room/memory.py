# -*- test-case-name: tests.unit.test_room -*-
"""
The room's shared state in this process's memory: L{MemoryStore}, the
store of a server that runs alone.
"""

from collections import OrderedDict

from twisted.internet import defer
from zope.interface import implementer

from twisted_chat import wire
from twisted_chat.room.interfaces import IRoomStore


@implementer(IRoomStore)
class MemoryStore:
    """
    Sessions and the seq counter in dicts, and the names of the room's own
    members (in one process they are the whole room); every event is
    handed to the room at once.

    A session whose connection has left stays resumable while the room's
    backlog reaches back to when it left (and while there are no more than
    C{backlog} such sessions).
    """

    #: A process's memory is there from the start.
    ready = True

    def __init__(self, users=None):
        """
        @param users: the server's users, by name in lower case, when it
            has rooms other than this one (L{twisted_chat.room.Rooms}); by
            default the room's own members are all the users there are.
        """
        self.room = None
        self.users = users
        self.seq = 0
        self._guests = 0
        # Every resumable session's name, by token.
        self._sessions = {}
        # Sessions whose connection ended, with the seq they ended at,
        # oldest first.
        self._ended = OrderedDict()

    def attach(self, room):
        """
        Serve C{room}.  (L{IRoomStore}.)
        """
        self.room = room
        self.seq = room.seq
        if self.users is None:
            self.users = room.members_by_name

    @property
    def room_size(self):
        """
        How many members the room has.  (L{IRoomStore}.)
        """
        return len(self.room)

    def new_guest_name(self):
        """
        The next unused C{guest-N} name.  (L{IRoomStore}.)
        """
        while True:
            self._guests += 1
            name = "%s%d" % (wire.GUEST_PREFIX, self._guests)
            if name.lower() not in self.users:
                return name

    def publish(self, event, urgent=True):
        """
        Give C{event} the next seq and hand it to the room.
        (L{IRoomStore}.)

        This is the only place the counter changes, so it rises by exactly
        one per event and every member sees the same order.
        """
        self.seq += 1
        event["seq"] = self.seq
        self.room.deliver_event(self.seq, wire.encode_frame(event), urgent)
        return defer.succeed(None)

    def join(self, member):
        """
        Record C{member}'s name and session and announce it.
        (L{IRoomStore}.)
        """
        self._sessions[member.session] = member.name
        self._ended.pop(member.session, None)
        if len(self.room) <= self.room.presence_limit:
            return self.publish(self.room.event("join", name=member.name), urgent=False)
        return defer.succeed(None)

    def resume(self, member, token):
        """
        Hand session C{token} over to C{member}: its name, if still free.
        (L{IRoomStore}.)
        """
        name = self._sessions.get(token)
        if name is None:
            return defer.fail(wire.ProtocolError(
                wire.RESUME_FAILED, "unknown session", oldest_seq=self.room.oldest_seq))
        holder = self.users.get(name.lower())
        if holder is not None and holder.session != token:
            name = member.name
        member.name = name
        member.session = token
        d = self.join(member)
        return d.addCallback(lambda _: name)

    def leave(self, member, reason, message, quietly, by=None):
        """
        Free C{member}'s name, keep its session resumable, and announce it
        left unless C{quietly}; C{by} is the operator who kicked it, if
        one did.  (L{IRoomStore}.)
        """
        # The room has let it go already: it was one more.
        was_small = len(self.room) + 1 <= self.room.presence_limit
        if member.session in self._sessions:
            self._sessions[member.session] = member.name
            self._ended[member.session] = self.seq
            self._forget_ended()
        if quietly or not was_small:
            return defer.succeed(None)
        event = self.room.event("leave", name=member.name, reason=reason)
        if by is not None:
            event["by"] = by
        if message is not None:
            event["message"] = message
        return self.publish(event, urgent=False)

    def _forget_ended(self):
        """
        Forget ended sessions that can no longer be resumed.
        """
        oldest = self.room.oldest_seq
        limit = self.room.backlog.size + 1
        ended = self._ended
        while ended:
            token, ended_seq = next(iter(ended.items()))
            if ended_seq + 1 >= oldest and len(ended) <= limit:
                break
            del ended[token]
            del self._sessions[token]

    def rename(self, member, new_name):
        """
        Give C{member} C{new_name} and announce it.  (L{IRoomStore}.)
        """
        holder = self.users.get(new_name.lower())
        if holder is not None and holder is not member:
            return defer.fail(wire.ProtocolError(
                wire.NICK_TAKEN, "the name %s is taken" % (new_name,)))
        if member not in self.room:
            # It left while a store that answers later would have waited.
            return defer.fail(wire.ProtocolError(
                wire.UNAVAILABLE, "the connection has ended"))
        old_name = member.name
        self._sessions[member.session] = new_name
        return self.publish(self.room.event("nick", old=old_name, new=new_name))

    def renamed(self, member, old):
        """
        Announce that C{member} was called C{old}, in a room other than the
        one that checked the name.  (L{IRoomStore}.)
        """
        return self.publish(self.room.event("nick", old=old, new=member.name))

    def names(self):
        """
        The members' names, sorted.  (L{IRoomStore}.)
        """
        return defer.succeed(sorted(member.name for member in self.room.members()))
