# -*- test-case-name: tests.unit.test_room -*-
"""
The chat room as this node serves it: L{Room}.

The room knows nothing of sockets.  It talks to its members through
L{IChatClient}, so the server's protocol is one implementation and the tests
use small fakes; and it keeps the room's shared state (names, sessions, the
seq counter, the events) in an L{IRoomStore}, so that one class serves one
process (L{MemoryStore}) and a cluster node (a Redis store) alike.  Every
event the store hands back is kept in a bounded L{Backlog} for replay, and
every member is sent the same bytes.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from twisted_chat import settings, wire
from twisted_chat.metrics import Stats
from twisted_chat.room.backlog import Backlog
from twisted_chat.room.interfaces import IRoom
from twisted_chat.room.memory import MemoryStore


#: With coalesce, how long join and leave events may wait to go out together
#: with later ones: a surge of arrivals then costs each member one write per
#: few milliseconds instead of one per arrival.  Anything else sends them
#: at once.
PRESENCE_DELAY = 0.01


def _deliver_after(client, seen, first, frames, room, joined=None):
    """
    Send C{client} those of C{frames} (the frames of events C{first},
    C{first + 1}, ... of C{room}) that come after C{seen}, the last event
    it has.

    @param joined: all of C{frames} already joined, if to hand.
    @return: how many frames it was sent.
    """
    if seen < first:
        client.deliver(first, joined if joined is not None else b"".join(frames), room)
        return len(frames)
    if seen < first + len(frames) - 1:
        client.deliver(seen + 1, b"".join(frames[seen + 1 - first :]), room)
        return first + len(frames) - 1 - seen
    return 0


def _send_replay(client, frames, room):
    """
    Send C{client} (seq, frame) pairs of C{room} from L{Backlog.replay}, as
    one write.

    @return: how many frames it was sent.
    """
    if frames:
        client.deliver(frames[0][0], b"".join(data for _, data in frames), room)
    return len(frames)


class Batching:
    """
    The context manager of L{Room.batch}, shared by every room of a server
    and made once: the server opens a batch around every read (a
    generator-based one is a tenth of the cost of answering a heartbeat),
    and the rooms that got events inside it flush at its end.
    """

    __slots__ = ("depth", "dirty")

    def __init__(self):
        self.depth = 0
        # The rooms with events to send at the end of the batch.
        self.dirty = []

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc_info):
        self.depth -= 1
        if self.depth == 0 and self.dirty:
            dirty, self.dirty = self.dirty, []
            for room in dirty:
                room._dirty = False
                if room._pending:
                    room._request_flush()
        return False


@implementer(IRoom)
class Room:
    """
    The room on this node: its members here, by name and by session, the
    events it was handed, and their delivery.

    Events delivered inside L{batch} (the server opens one around each
    read) are sent to every member together, as one write of their
    concatenated frames; with C{coalesce}, events are gathered for the
    whole reactor iteration.  Either way each event is encoded once, and
    every member gets the same bytes in the same order.

    @ivar name: the room's name, as its creator wrote it (L{wire.LOBBY}
        for the room every connection starts in).
    @ivar key: the name in lower case, by which the room is found.
    @ivar store: the L{IRoomStore}.
    @ivar backlog: the L{Backlog} of frames kept for replay.
    @ivar topic: the room's topic, empty before one is set.
    @ivar ops: what the room's operators are known by (L{Rooms.op_key}).
    @ivar bans: the names banned from the room, in lower case, each with
        the addresses its ban covers.
    @ivar closing: set by L{close}; leaves are then no longer announced.
    @ivar presence_limit: join and leave are broadcast only while the room
        has at most this many members.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        backlog=settings.DEFAULT_BACKLOG,
        presence_limit=settings.DEFAULT_PRESENCE_LIMIT,
        coalesce=False,
        hold_limit=settings.DEFAULT_SENDQ,
        store=None,
        name=wire.LOBBY,
        batching=None,
        seq=0,
        stats=None,
    ):
        """
        @param clock: an L{IReactorTime}; message events carry its time.
        @param backlog: how many events to keep for replay.
        @param presence_limit: see L{presence_limit}.
        @param coalesce: gather events until the end of the reactor
            iteration (C{clock.callLater(0)}) before sending them.
        @param hold_limit: see L{Backlog.hold_limit}; the server passes its
            C{sendq}, the most it holds for any one client.
        @param store: the L{IRoomStore}; a new L{MemoryStore} by default.
        @param name: see L{name}.
        @param batching: the L{Batching} shared by the server's rooms; a
            room of its own by default.
        @param seq: the room's last event before this node knew it (a room
            made again under a name continues its sequence).
        @param stats: the server's L{Stats}; new ones by default.
        """
        self.clock = clock
        self.name = name
        self.key = name.lower()
        self.lobby = self.key == wire.LOBBY
        self.topic = ""
        self.ops = set()
        # Banned names (in lower case), each with the addresses it covers.
        self.bans = {}
        self.stats = Stats() if stats is None else stats
        self.closing = False
        self.presence_limit = presence_limit
        self.coalesce = coalesce
        self.backlog = Backlog(backlog, hold_limit)
        self.backlog.seq = seq
        # Frames delivered but not yet sent to the members.
        self._pending = []
        # Whether a pending event must not wait (anything but presence).
        self._urgent = False
        # Members that were sent pending events early (they joined, or were
        # about to get a reply), with the seq they have.
        self._caught_up = {}
        self._batch = Batching() if batching is None else batching
        # Whether the room is in its batch's dirty list.
        self._dirty = False
        self._flush_call = None
        # This node's members, by name in lower case and by session.
        self._members = {}
        self._by_session = {}
        self.store = MemoryStore() if store is None else store
        self.store.attach(self)

    def __len__(self):
        return len(self._members)

    def __contains__(self, client):
        return self._members.get(client.name.lower()) is client

    @property
    def seq(self):
        """
        The seq of the last event delivered here, 0 before the first.
        """
        return self.backlog.seq

    @property
    def oldest_seq(self):
        """
        The seq of the oldest event still kept (C{seq + 1} when none is).
        """
        return self.backlog.oldest_seq

    @property
    def ready(self):
        """
        Whether the room can take members (a cluster's must reach Redis
        first).
        """
        return self.store.ready

    @property
    def room_size(self):
        """
        How many members the room has (on every node of a cluster).
        """
        return self.store.room_size

    # This node's members.

    @property
    def members_by_name(self):
        """
        This node's members by name in lower case (a live dict: do not
        change it).
        """
        return self._members

    def event(self, type, **fields):
        """
        A new event of this room: C{fields} after C{type}, and the room's
        name unless it is the lobby (whose frames are as they always were).
        """
        event = {"type": type}
        if not self.lobby:
            event["room"] = self.name
        event.update(fields)
        return event

    def next_for(self, client):
        """
        The first event of this room C{client} has not been sent.
        """
        sent = self._caught_up.get(client)
        if sent is None:
            sent = self.backlog.seq - len(self._pending)
        return sent + 1

    def members(self):
        """
        This node's members.
        """
        return list(self._members.values())

    def by_session(self, token):
        """
        This node's member whose session is C{token}, or L{None}.
        """
        return self._by_session.get(token)

    def replace(self, old, new):
        """
        C{new} takes the place of C{old} (its session's stale connection),
        with its name, without a leave or a join.
        """
        if old not in self:
            return
        self._remove(old)
        self._caught_up.pop(old, None)
        new.name = old.name
        self._add(new)

    def longest_present(self):
        """
        The member of this node that joined first, or L{None}.
        """
        return next(iter(self._by_session.values()), None)

    def member(self, name):
        """
        This node's member called C{name} (in any case), or L{None}.
        """
        return self._members.get(name.lower())

    def holds(self, name):
        """
        Whether a member has C{name}, in any case (on this node).
        """
        return name.lower() in self._members

    def new_guest_name(self):
        """
        A C{guest-...} name for a new connection.
        """
        return self.store.new_guest_name()

    # Delivery.

    def batch(self):
        """
        Gather the events delivered inside the block and send them to every
        member together at its end::

            with room.batch():
                ...

        Blocks may nest; the outermost one sends.
        """
        return self._batch

    def _request_flush(self):
        if not self.coalesce:
            self.flush()
            return
        delay = 0 if self._urgent else PRESENCE_DELAY
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(delay, self.flush)
        elif delay == 0 and self._flush_call.getTime() > self.clock.seconds():
            # Not reset(0): the reactor moves a call sooner by finding it in
            # its heap of every timer (one per connection), and a call made
            # in this iteration is not there yet, so the whole heap is
            # searched in vain; with 10,000 connections leaving at once
            # that was seconds of CPU.  Cancelling is cheap.
            self._flush_call.cancel()
            self._flush_call = self.clock.callLater(0, self.flush)

    def flush_to(self, client):
        """
        Send C{client} now the pending events it has not had, so that a
        reply to it cannot overtake them; the others keep waiting.
        """
        pending = self._pending
        if not pending or client not in self:
            return
        seq = self.backlog.seq
        first = seq - len(pending) + 1
        self.stats.deliveries += _deliver_after(
            client, self._caught_up.get(client, 0), first, pending, self)
        self._caught_up[client] = seq

    def flush(self):
        """
        Send every member the events delivered since the last flush, as one
        write.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        # Taken before delivering: a delivery can send a reply, which must
        # not send these frames again.
        frames, self._pending = self._pending, []
        caught_up, self._caught_up = self._caught_up, {}
        self._urgent = False
        if not frames:
            return
        first = self.backlog.seq - len(frames) + 1
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        failed = []
        delivered = 0
        for client in list(self._members.values()):
            try:
                delivered += _deliver_after(
                    client, caught_up.get(client, 0), first, frames, self, data)
            except Exception:
                self.log.failure("sending to {name} failed", name=client.name)
                failed.append(client)
        self.stats.deliveries += delivered
        for client in failed:
            client.abort(wire.REASON_ERROR)

    def deliver_event(self, seq, data, urgent=True):
        """
        The store hands over the frame of event C{seq} (the one after
        L{seq}): keep it and send it to every member (at the end of the
        current batch).

        @param urgent: whether it must go out at once; presence events may
            wait for others (see L{PRESENCE_DELAY}).
        """
        self.stats.events += 1
        self.backlog.append(seq, data)
        pending = self._pending
        pending.append(data)
        if urgent:
            self._urgent = True
        batch = self._batch
        if batch.depth == 0:
            self._request_flush()
        elif not self._dirty:
            self._dirty = True
            batch.dirty.append(self)

    def lose_events(self, first):
        """
        Events from C{first} on never reached this node (a cluster node
        fell further behind than the stream keeps): tell every member, as if
        it had lagged, and keep nothing from before for replay.
        """
        self.flush()
        self.backlog.reset(self.backlog.seq)
        for client in list(self._members.values()):
            client.fell_behind(first, self)

    def load(self, seq, frames=()):
        """
        Start from the room's event C{seq}, keeping C{frames} (the frames of
        the events up to it, oldest first) for replay.
        """
        self.backlog.reset(seq, frames)

    def replay(self, after_seq):
        """
        The events after C{after_seq}, as (seq, frame) pairs; see
        L{Backlog.replay}.
        """
        return self.backlog.replay(after_seq)

    def expect(self, client):
        """
        C{client} has just been welcomed and will join or resume soon: keep
        every event from now on for it until it does (L{join}, L{resume})
        or leaves, however many there are, within the backlog's
        C{hold_limit} bytes beyond it.

        @return: the seq its welcome announces, the last event before it.
        """
        return self.backlog.expect(client)

    def _catch_up(self, client, after_seq):
        """
        Send C{client} the events after C{after_seq}; if they are no longer
        kept, tell it explicitly (as if it had lagged) instead of leaving a
        silent gap.
        """
        frames = self.backlog.replay(after_seq)
        if frames is None:
            self.log.warn(
                "{name} joins after event {seq}, which is no longer kept: it "
                "is told it lagged", name=client.name, seq=after_seq + 1)
            client.fell_behind(after_seq + 1, self)
            return
        self.stats.deliveries += _send_replay(client, frames, self)
        # The replay reached the newest event, pending ones included.
        self._caught_up[client] = self.backlog.seq

    def _add(self, client):
        self._members[client.name.lower()] = client
        self._by_session[client.session] = client

    def _remove(self, client):
        del self._members[client.name.lower()]
        if self._by_session.get(client.session) is client:
            del self._by_session[client.session]

    # The operations (IRoom): each returns a Deferred.

    def join(self, client, after_seq):
        """
        Add C{client}, under the name it carries, and announce it.

        @param after_seq: the seq of the last event the client has seen (the
            one its welcome announced); every event since was kept for it
            (L{expect}) and is sent first, so it misses nothing between
            welcome and join.
        """
        self._catch_up(client, after_seq)
        self.backlog.forget(client)
        self._add(client)
        return self.store.join(client)

    def resume(self, client, token, last_seq):
        """
        Continue session C{token} on C{client}, replaying what it missed.

        If the session's connection is still here (a stale, half-open
        connection the server has not yet expired), that connection is
        aborted and C{client} takes its place without a leave or a join.
        Otherwise the store hands the session over: C{client} joins under
        the session's name when it is free (its own guest name otherwise).

        @param last_seq: the seq of the last event the client saw.
        @return: a Deferred that fires with how many events were replayed;
            it fails with L{wire.RESUME_FAILED}, with C{oldest_seq}, if the
            session is unknown or the backlog no longer reaches
            C{last_seq + 1}.
        """
        self.flush()
        try:
            frames = self.backlog.replay_for_resume(last_seq)
        except wire.ProtocolError:
            return defer.fail()
        old = self._by_session.get(token)
        if old is not None and old in self:
            self.stats.deliveries += _send_replay(client, frames, self)
            self.backlog.forget(client)
            if old is not client:
                self._remove(old)
                client.session = token
                client.name = old.name
                self._add(client)
                old.abort(wire.REASON_QUIT)
            return defer.succeed(len(frames))
        asked_at = self.backlog.seq
        # A store that answers at once publishes the join inside the batch:
        # it reaches the client after its replay, as a new event.
        with self._batch:
            d = self.store.resume(client, token)
            d.addCallback(self._resume_answered, client, token, frames, asked_at)
        return d

    def _resume_answered(self, name, client, token, frames, asked_at):
        client.session = token
        client.name = name
        if not self.backlog.expects(client):
            # Its connection was lost while the store answered: the store
            # now has the session here, so it leaves from here.
            self._add(client)
            self.leave(client, wire.REASON_RESET)
            return 0
        # Events delivered while the store answered follow the replay (the
        # connection had not joined, so they were kept for it); those not
        # yet sent to the members reach it with them, once it is one.
        later = self.backlog.replay(asked_at)
        if later is not None and self._pending:
            later = later[: len(later) - len(self._pending)]
        self.stats.deliveries += _send_replay(client, frames + (later or []), self)
        self.backlog.forget(client)
        if later is None:
            client.fell_behind(asked_at + 1, self)
        self._add(client)
        return len(frames) + len(later or [])

    def leave(self, client, reason, message=None):
        """
        Remove C{client} and announce it left, unless the room is closing.

        Does nothing if C{client} is not a member, so it is safe to call
        from every way a connection can end.
        """
        self.backlog.forget(client)
        if client not in self:
            return defer.succeed(None)
        # Its connection is ending: what is pending is not sent to it.
        self._caught_up.pop(client, None)
        self._remove(client)
        return self.store.leave(client, reason, message, self.closing)

    def part(self, client, message=None, reason=wire.REASON_PART, by=None):
        """
        C{client} leaves this room alone (it stays connected): it is sent
        what it is owed, then its own leave event as its last event of the
        room, when the room is small enough to announce one.

        @param reason: L{wire.REASON_PART}, or L{wire.REASON_KICKED} by the
            operator called C{by}.
        @return: a Deferred that fires with whether C{client} was sent its
            leave event.
        """
        self.flush_to(client)
        self.backlog.forget(client)
        self._caught_up.pop(client, None)
        self._remove(client)
        before = self.backlog.seq
        if by is None:
            d = self.store.leave(client, reason, message, self.closing)
        else:
            d = self.store.leave(client, reason, message, self.closing, by=by)
        told = self.backlog.seq > before
        if told:
            # (A store that answers at once published it just now.)
            client.deliver(self.backlog.seq, self.backlog.frames[-1], self)
        return d.addCallback(lambda _: told)

    def renamed(self, client, old):
        """
        Member C{client}, called C{old} until now, was renamed (the server
        checked the name): announce it here.
        """
        del self._members[old.lower()]
        self._members[client.name.lower()] = client
        return self.store.renamed(client, old)

    def depart(self, client):
        """
        C{client}, whose leave the store has recorded, goes: it is sent
        what it is owed first (its own leave included, if there is one).
        """
        if client not in self:
            return
        self.flush_to(client)
        self.backlog.forget(client)
        self._caught_up.pop(client, None)
        self._remove(client)

    def rename(self, client, new_name):
        """
        Give C{client} the name C{new_name} and announce it.

        The Deferred fails with L{wire.BAD_NICK} for an invalid name,
        L{wire.NICK_TAKEN} if another member has it in any case.
        """
        try:
            wire.check_nick(new_name)
            holder = self._members.get(new_name.lower())
            if holder is not None and holder is not client:
                raise wire.ProtocolError(
                    wire.NICK_TAKEN, "the name %s is taken" % (new_name,))
        except wire.ProtocolError:
            return defer.fail()
        d = self.store.rename(client, new_name)
        d.addCallback(self._renamed, client, new_name)
        return d

    def _renamed(self, _, client, new_name):
        if client not in self:
            # It left while the store answered.
            raise wire.ProtocolError(wire.UNAVAILABLE, "the connection has ended")
        del self._members[client.name.lower()]
        self._members[new_name.lower()] = client
        client.name = new_name

    def message(self, client, text):
        """
        Broadcast a chat message from C{client}; the text must be checked.
        """
        return self.store.publish(
            self.event("message", **{"from": client.name, "text": text,
                                     "time": self.clock.seconds()}))

    def names(self):
        """
        The names of the whole room, sorted (by code point; names are
        ASCII).
        """
        return self.store.names()

    def close(self):
        """
        The server is stopping: send what is pending; from now on, leaves
        are not announced.
        """
        self.flush()
        self.closing = True
