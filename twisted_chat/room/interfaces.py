# -*- test-case-name: tests.unit.test_room -*-
"""
The contracts of the room: what the server calls (L{IRoom}), what the room
keeps its shared state in (L{IRoomStore}), and what a member is to it
(L{IChatClient}).
"""

from zope.interface import Attribute, Interface


class IChatClient(Interface):
    """
    A member of the room, as the room sees it: the server's protocol, or a
    test's fake.
    """

    name = Attribute("The member's current name; the room assigns it.")
    session = Attribute("The member's session token.")

    def deliver(seq, data, room):
        """
        Queue frame bytes (length prefixes included): the frames of events
        C{seq}, C{seq + 1}, ... of C{room} (an L{IRoom}), one or more, back
        to back.
        """

    def deliver_direct(data):
        """
        Queue the frames of direct messages to this member's session.
        """

    def abort(reason):
        """
        Drop the member's connection at once; C{reason} is a leave reason.
        """

    def parted(room, seq):
        """
        The member is out of C{room} (a kick in a room too large to
        announce it), the last event of it sent being C{seq}: tell it.
        """

    def fell_behind(seq, room):
        """
        C{room} could not keep its events from C{seq} on for this member (a
        cluster node fell too far behind the stream): tell it, as if it had
        lagged, and send it nothing until it resumes.
        """


class IRoom(Interface):
    """
    The chat room as the server's connections use it.

    Every operation returns a L{Deferred}, whatever store is behind the
    room (as L{twisted.words.service.Group} does): with the memory store it
    has already fired, with Redis it fires when Redis has answered.  A
    refusal is a failure with a L{twisted_chat.wire.ProtocolError}, which
    the server sends to the member as an error frame.

    The rest of the room (L{batch}, L{expect}, L{flush_to}, the members of
    this node, ...) is this node's own and answers at once; the store
    reads the members and delivers events through the methods at the end.
    """

    seq = Attribute("The seq of the last event delivered here, 0 before any.")
    oldest_seq = Attribute("The seq of the oldest event kept for replay.")
    room_size = Attribute("How many members the whole room has.")
    ready = Attribute("Whether the room can take members yet.")
    closing = Attribute("Set by close(): leaves are no longer announced.")
    presence_limit = Attribute(
        "Join and leave are announced while the room has at most this many members.")
    backlog = Attribute("The Backlog of frames kept for replay; its size is --backlog.")
    stats = Attribute("The server's Stats, which the room adds to.")

    def join(member, after_seq):
        """
        Add C{member} under the name it carries and announce it; first send
        it the events after C{after_seq} (those since its welcome).

        @return: a Deferred that fires with L{None}.
        """

    def resume(member, token, last_seq):
        """
        Continue session C{token} on C{member}, first sending it the events
        after C{last_seq}.

        @return: a Deferred that fires with how many events were replayed,
            or fails with C{resume_failed}.
        """

    def leave(member, reason, message=None):
        """
        Remove C{member} (if it is one) and announce why it left.

        @return: a Deferred that fires with L{None}.
        """

    def rename(member, new_name):
        """
        Give C{member} the name C{new_name} and announce it.

        @return: a Deferred; it fails with C{bad_nick} or C{nick_taken}.
        """

    def message(member, text):
        """
        Broadcast a chat message (already checked) from C{member}.

        @return: a Deferred that fires once the event is in the room.
        """

    def names():
        """
        @return: a Deferred that fires with the members' names, sorted.
        """

    def expect(member):
        """
        C{member} was just welcomed: keep every event from now on for it
        until it joins, resumes or leaves.

        @return: the seq its welcome announces.
        """

    def new_guest_name():
        """
        @return: a C{guest-...} name for a new connection (the store's).
        """

    def holds(name):
        """
        Whether a member of this node has C{name}, in any case.
        """

    def member(name):
        """
        @return: this node's member called C{name} (in any case), or
            L{None}.
        """

    def members():
        """
        @return: a list of this node's members.
        """

    def batch():
        """
        A context manager: events broadcast inside it go to every member
        together, as one write, at its end.
        """

    def flush():
        """
        Send every member now the events delivered since the last flush.
        """

    def flush_to(member):
        """
        Send C{member} now the events it is owed, so that a reply cannot
        overtake them.
        """

    def close():
        """
        The server is stopping: send what is pending; leaves are not
        announced from now on.
        """

    # What the store calls.

    def deliver_event(seq, data, urgent=True):
        """
        Keep C{data}, the frame of event C{seq} (the one after L{seq}), and
        send it to every member; C{urgent} is false for join and leave,
        which may wait a little for company.
        """

    def lose_events(first):
        """
        Events from C{first} on never reached this node: tell every member
        it lagged.
        """

    def load(seq, frames=()):
        """
        Start from event C{seq}, keeping C{frames} (those up to it, oldest
        first) for replay.
        """


class IRoomStore(Interface):
    """
    Where the room's shared state lives: names, sessions, the seq counter,
    the sequence of events, and whether presence is announced.

    The store gives every event its seq and hands it back to the room it
    serves, in seq order, through C{room.deliver_event(seq, frame,
    urgent)}: at once in one process (L{twisted_chat.room.MemoryStore}),
    when the node reads it back from Redis in a cluster
    (L{twisted_chat.cluster.RedisStore}).  Every operation returns a
    L{Deferred}.
    """

    ready = Attribute("Whether the store has loaded the room.")
    room_size = Attribute("How many members the whole room has.")

    def attach(room):
        """
        Serve C{room}: deliver events to it, and read its members.
        """

    def new_guest_name():
        """
        @return: a C{guest-...} name no member has.
        """

    def join(member):
        """
        Record C{member}'s name and session, and publish its join while
        the room is small enough for presence.
        """

    def resume(member, token):
        """
        Give session C{token}, whose connection has left or is on another
        node, to C{member}: its name if still free, and publish the join
        as L{join} does.

        @return: a Deferred that fires with the member's name, or fails
            with C{resume_failed} for an unknown session.
        """

    def leave(member, reason, message, quietly):
        """
        Free C{member}'s name; keep its session resumable; publish its
        leave (unless C{quietly}: the server is stopping) while the room
        was small enough for presence.
        """

    def renamed(member, old):
        """
        Publish the C{nick} event of C{member}, called C{old} until the
        lobby's store renamed it, in this other room.
        """

    def rename(member, new_name):
        """
        Give C{member} C{new_name} and publish the C{nick} event.

        @return: a Deferred; it fails with C{nick_taken}.
        """

    def publish(event):
        """
        Give C{event} (a dict without C{seq}) the next seq and put it in the
        room.
        """

    def names():
        """
        @return: a Deferred that fires with the names of the whole room.
        """
