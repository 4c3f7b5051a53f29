# -*- test-case-name: tests.unit.test_hub -*-
"""
The chat room: who is in it, what they are called, and the event sequence.

L{ChatHub} knows nothing of sockets.  It talks to its members through
L{IChatClient}, so the server's protocol is one implementation and the tests
use small fakes.  Every broadcast event gets the next C{seq}, is encoded into
frame bytes once, is kept in a bounded backlog for replay, and every member
is sent the same bytes.
"""

from collections import OrderedDict, deque
from itertools import chain, islice

from twisted.logger import Logger
from zope.interface import Attribute, Interface

from twisted_chat import settings, wire
from twisted_chat.metrics import Stats


#: With coalesce, how long join and leave events may wait to go out together
#: with later ones: a surge of arrivals then costs each member one write per
#: few milliseconds instead of one per arrival.  Anything else sends them
#: at once.
PRESENCE_DELAY = 0.01


def _deliver_after(client, seen, first, frames, joined=None):
    """
    Send C{client} those of C{frames} (the frames of events C{first},
    C{first + 1}, ...) that come after C{seen}, the last event it has.

    @param joined: all of C{frames} already joined, if to hand.
    @return: how many frames it was sent.
    """
    if seen < first:
        client.deliver(first, joined if joined is not None else b"".join(frames))
        return len(frames)
    if seen < first + len(frames) - 1:
        client.deliver(seen + 1, b"".join(frames[seen + 1 - first :]))
        return first + len(frames) - 1 - seen
    return 0


def _send_replay(client, frames):
    """
    Send C{client} (seq, frame) pairs from L{ChatHub.replay}, as one write.

    @return: how many frames it was sent.
    """
    if frames:
        client.deliver(frames[0][0], b"".join(data for _, data in frames))
    return len(frames)


class IChatClient(Interface):
    """
    A member of the room, as the hub sees it.
    """

    name = Attribute("The member's current name; the hub assigns it.")
    session = Attribute("The member's session token.")

    def deliver(seq, data):
        """
        Queue frame bytes (length prefixes included): the frames of events
        C{seq}, C{seq + 1}, ..., one or more, back to back.
        """

    def abort(reason):
        """
        Drop the member's connection at once; C{reason} is a leave reason.
        """

    def fell_behind(seq):
        """
        The room could not keep events from C{seq} on for this member (a
        cluster node fell too far behind the stream): tell it, as if it had
        lagged, and send it nothing until it resumes.
        """


class _Session:
    """
    What a session token stands for: a name, and the connection using it
    (L{None} once that connection has ended).
    """

    __slots__ = ("name", "client")

    def __init__(self, name, client):
        self.name = name
        self.client = client


class _Batch:
    """
    The context manager of L{ChatHub.batch}, made once per hub: the server
    opens a batch around every read, and a generator-based one is a tenth
    of the cost of answering a heartbeat.
    """

    __slots__ = ("hub",)

    def __init__(self, hub):
        self.hub = hub

    def __enter__(self):
        self.hub._depth += 1

    def __exit__(self, *exc_info):
        hub = self.hub
        hub._depth -= 1
        if hub._depth == 0 and hub._pending:
            hub._request_flush()
        return False


class ChatHub:
    """
    The room: members by name, the C{seq} counter, the backlog, sessions.

    Events broadcast inside L{batch} (the server opens one around each read)
    are sent to every member together, as one write of their concatenated
    frames; with C{coalesce}, events are gathered for the whole reactor
    iteration.  Either way each event is encoded once, and every member gets
    the same bytes in the same order.

    @ivar seq: the C{seq} of the last broadcast event, 0 before the first.
    @ivar closing: set by L{close}; leaves are then no longer broadcast.
    @ivar backlog: the frames of the last C{backlog_size} events, oldest
        first.
    @ivar backlog_size: how many events the backlog keeps for replay.
    @ivar hold_limit: bytes of frames older than the backlog that the hub
        may hold for connections that have not joined yet (L{expect}).
    @ivar presence_limit: join and leave are broadcast only while the room
        has at most this many members.
    """

    log = Logger()
    #: Whether the hub can take clients (a cluster's must reach Redis first).
    ready = True

    def __init__(
        self,
        clock,
        backlog=settings.DEFAULT_BACKLOG,
        presence_limit=settings.DEFAULT_PRESENCE_LIMIT,
        coalesce=False,
        hold_limit=settings.DEFAULT_SENDQ,
    ):
        """
        @param clock: an L{IReactorTime}; message events carry its time.
        @param backlog: how many events to keep for replay.
        @param presence_limit: see L{presence_limit}.
        @param coalesce: gather events until the end of the reactor
            iteration (C{clock.callLater(0)}) before sending them.
        @param hold_limit: see L{hold_limit}; the server passes its
            C{sendq}, the most it holds for any one client.
        """
        self.clock = clock
        self.stats = Stats()
        self.seq = 0
        self.closing = False
        self.presence_limit = presence_limit
        self.coalesce = coalesce
        self.backlog_size = backlog
        self.hold_limit = hold_limit
        self.backlog = deque()
        # Frames that aged out of the backlog but are still owed to a
        # connection that has not joined (oldest first), and their bytes.
        self._held = deque()
        self._held_bytes = 0
        # Connections welcomed but not yet joined, each with the seq its
        # welcome announced, in the order they came (so the first one is
        # owed the oldest event).
        self._expected = OrderedDict()
        # Frames broadcast but not yet sent to the members.
        self._pending = []
        # Whether a pending event must not wait (anything but presence).
        self._urgent = False
        # Members that were sent pending events early (they joined, or were
        # about to get a reply), with the seq they have.
        self._caught_up = {}
        self._depth = 0
        self._batch = _Batch(self)
        self._flush_call = None
        self._members = {}
        self._guests = 0
        self._sessions = {}
        # Sessions whose connection ended, with the seq they ended at,
        # oldest first: they stay resumable while the backlog reaches back.
        self._ended = OrderedDict()

    def __len__(self):
        return len(self._members)

    @property
    def room_size(self):
        """
        How many members the room has (on every node of a cluster).
        """
        return len(self._members)

    def __contains__(self, client):
        return self._members.get(client.name.lower()) is client

    @property
    def presence(self):
        """
        Whether join and leave are broadcast (the room is small enough).
        """
        return self.room_size <= self.presence_limit

    def batch(self):
        """
        Gather the events broadcast inside the block and send them to every
        member together at its end::

            with hub.batch():
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
            self._flush_call.reset(0)

    def flush_to(self, client):
        """
        Send C{client} now the pending events it has not had, so that a
        reply to it cannot overtake them; the others keep waiting.
        """
        pending = self._pending
        if not pending or client not in self:
            return
        first = self.seq - len(pending) + 1
        self.stats.deliveries += _deliver_after(
            client, self._caught_up.get(client, 0), first, pending)
        self._caught_up[client] = self.seq

    def flush(self):
        """
        Send every member the events broadcast since the last flush, as one
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
        first = self.seq - len(frames) + 1
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        failed = []
        delivered = 0
        for client in list(self._members.values()):
            try:
                delivered += _deliver_after(client, caught_up.get(client, 0), first, frames, data)
            except Exception:
                self.log.failure("sending to {name} failed", name=client.name)
                failed.append(client)
        self.stats.deliveries += delivered
        for client in failed:
            client.abort(wire.REASON_ERROR)

    @property
    def oldest_seq(self):
        """
        The seq of the oldest event still kept (C{seq + 1} when none is).
        """
        return self.seq - len(self.backlog) - len(self._held) + 1

    def new_guest_name(self):
        """
        Return the next unused C{guest-N} name.
        """
        while True:
            self._guests += 1
            name = "%s%d" % (wire.GUEST_PREFIX, self._guests)
            if name.lower() not in self._members:
                return name

    def holds(self, name):
        """
        Whether a member has C{name}, in any case (on this node).
        """
        return name.lower() in self._members

    def names(self):
        """
        The members' names, sorted (by code point; names are ASCII).
        """
        return sorted(member.name for member in self._members.values())

    def replay(self, after_seq):
        """
        The events after C{after_seq}, as (seq, frame) pairs.

        @return: a list, or L{None} if the backlog no longer reaches back to
            C{after_seq + 1} (or C{after_seq} is not a seq we have reached).
        """
        if not 0 <= after_seq <= self.seq:
            return None
        oldest = self.oldest_seq
        if after_seq + 1 < oldest:
            return None
        start = after_seq + 1 - oldest
        kept = chain(self._held, self.backlog) if self._held else self.backlog
        return [
            (oldest + start + i, data)
            for i, data in enumerate(islice(kept, start, None))
        ]

    def replay_for_resume(self, last_seq):
        """
        The events after C{last_seq}, for a resume.

        @return: a list of (seq, frame) pairs.
        @raise wire.ProtocolError: L{wire.RESUME_FAILED}, with
            C{oldest_seq}, saying why they cannot be had: C{last_seq} is
            ahead of the room, or the events after it are no longer kept.
        """
        frames = self.replay(last_seq)
        if frames is not None:
            return frames
        if last_seq > self.seq:
            message = "last_seq %d is ahead of the room, whose last event is %d" % (
                last_seq, self.seq)
        else:
            message = "event %d is no longer kept" % (last_seq + 1,)
        raise wire.ProtocolError(wire.RESUME_FAILED, message, oldest_seq=self.oldest_seq)

    def expect(self, client):
        """
        C{client} has just been welcomed and will join or resume soon: keep
        every event from now on for it until it does (L{join}, L{resume})
        or leaves, however many there are, within L{hold_limit} bytes
        beyond the backlog.

        @return: the seq its welcome announces, the last event before it.
        """
        self._expected[client] = self.seq
        return self.seq

    def _forget_expected(self, client):
        """
        C{client} joined, resumed or left: stop holding events for it.
        """
        if self._expected.pop(client, None) is not None:
            self._release_held()

    def _catch_up(self, client, after_seq):
        """
        Send C{client} the events after C{after_seq}; if they are no longer
        kept, tell it explicitly (as if it had lagged) instead of leaving a
        silent gap.

        @return: how many were sent.
        """
        frames = self.replay(after_seq)
        if frames is None:
            self.log.warn(
                "{name} joins after event {seq}, which is no longer kept: it "
                "is told it lagged", name=client.name, seq=after_seq + 1)
            client.fell_behind(after_seq + 1)
            return 0
        self.stats.deliveries += _send_replay(client, frames)
        # The replay reached the newest event, pending ones included.
        self._caught_up[client] = self.seq
        return len(frames)

    def join(self, client, after_seq):
        """
        Add C{client}, under the name it carries, and broadcast C{join}.

        @param after_seq: the seq of the last event the client has seen (the
            one its welcome announced); every event since was kept for it
            (L{expect}) and is sent first, so it misses nothing between
            welcome and join.
        """
        self._catch_up(client, after_seq)
        self._forget_expected(client)
        self._add(client)
        self._announce_join(client)

    def _announce_join(self, client):
        """
        Tell the room C{client} joined, while it is small enough for
        presence.
        """
        if self.presence:
            self._broadcast({"type": "join", "name": client.name})

    def resume(self, client, token, last_seq):
        """
        Continue session C{token} on C{client}, replaying what it missed.

        If the session's old connection still holds its name (a stale,
        half-open connection the server has not yet expired), that connection
        is aborted and C{client} takes its place without a leave or a join.
        If the old connection has already left, C{client} joins under the
        session's name when it is free (its own guest name otherwise).

        @param last_seq: the seq of the last event the client saw.
        @return: how many events were replayed.
        @raise wire.ProtocolError: L{wire.RESUME_FAILED}, with C{oldest_seq},
            if the session is unknown or the backlog no longer reaches
            C{last_seq + 1}.
        """
        self.flush()
        session = self._sessions.get(token)
        if session is None:
            raise wire.ProtocolError(
                wire.RESUME_FAILED, "unknown session", oldest_seq=self.oldest_seq)
        frames = self.replay_for_resume(last_seq)
        old = session.client
        self.stats.deliveries += _send_replay(client, frames)
        self._forget_expected(client)
        if old is client:
            return len(frames)
        client.session = token
        if old is not None and old in self:
            del self._members[old.name.lower()]
            client.name = old.name
            self._add(client, session)
            old.abort(wire.REASON_QUIT)
            return len(frames)
        if session.name.lower() not in self._members:
            client.name = session.name
        self._ended.pop(token, None)
        self._add(client, session)
        self._announce_join(client)
        return len(frames)

    def _add(self, client, session=None):
        if session is None:
            session = _Session(client.name, client)
        else:
            session.name = client.name
            session.client = client
        self._members[client.name.lower()] = client
        self._sessions[client.session] = session

    def leave(self, client, reason, message=None):
        """
        Remove C{client} and broadcast C{leave}, unless the room is closing.

        Does nothing if C{client} is not a member, so it is safe to call
        from every way a connection can end.
        """
        self._forget_expected(client)
        if client not in self:
            return
        # Its connection is ending: what is pending is not sent to it.
        self._caught_up.pop(client, None)
        was_small = self.presence
        del self._members[client.name.lower()]
        session = self._sessions.get(client.session)
        if session is not None and session.client is client:
            session.client = None
            session.name = client.name
            self._ended[client.session] = self.seq
            self._forget_ended()
        if not self.closing:
            self._announce_leave(client, reason, message, was_small)

    def _announce_leave(self, client, reason, message, was_small):
        """
        Tell the room C{client} left, if the room was small enough for
        presence (C{was_small}) before it did.
        """
        if not was_small:
            return
        event = {"type": "leave", "name": client.name, "reason": reason}
        if message is not None:
            event["message"] = message
        self._broadcast(event)

    def _forget_ended(self):
        """
        Forget ended sessions that can no longer be resumed.
        """
        oldest = self.oldest_seq
        while self._ended:
            token, ended_seq = next(iter(self._ended.items()))
            if ended_seq + 1 >= oldest and len(self._ended) <= self.backlog_size + 1:
                break
            del self._ended[token]
            del self._sessions[token]

    def rename(self, client, new_name):
        """
        Give C{client} the name C{new_name} and broadcast C{nick}.

        @raise wire.ProtocolError: L{wire.BAD_NICK} for an invalid name,
            L{wire.NICK_TAKEN} if another member has it in any case.
        """
        self._check_free(client, new_name)
        old_name = client.name
        self._set_name(client, new_name)
        self._broadcast({"type": "nick", "old": old_name, "new": new_name})

    def _check_free(self, client, new_name):
        """
        @raise wire.ProtocolError: unless C{client} may take C{new_name}
            here: L{wire.BAD_NICK}, or L{wire.NICK_TAKEN} if another member
            has it in any case.
        """
        wire.check_nick(new_name)
        holder = self._members.get(new_name.lower())
        if holder is not None and holder is not client:
            raise wire.ProtocolError(
                wire.NICK_TAKEN, "the name %s is taken" % (new_name,)
            )

    def _set_name(self, client, new_name):
        """
        Call member C{client} C{new_name} from now on, here and in its
        session.
        """
        del self._members[client.name.lower()]
        self._members[new_name.lower()] = client
        client.name = new_name
        self._sessions[client.session].name = new_name

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

    def close(self):
        """
        The server is stopping: send what is pending; from now on, leaves
        are not broadcast.
        """
        self.flush()
        self.closing = True

    def _age_out(self):
        """
        The oldest frame of the backlog leaves it: hold it if a connection
        that has not joined yet is owed it, else let it go.
        """
        data = self.backlog.popleft()
        seq = self.seq - len(self.backlog)
        if self._expected and next(iter(self._expected.values())) < seq:
            self._held.append(data)
            self._held_bytes += len(data)
            self._release_held()

    def _release_held(self):
        """
        Let go of held frames that no expected connection is owed any
        more, and of the oldest ones while they take more than
        L{hold_limit} bytes (their connections will be told they lagged).
        """
        held = self._held
        owed_from = (
            next(iter(self._expected.values())) + 1 if self._expected else self.seq + 1
        )
        while held and (self.oldest_seq < owed_from or self._held_bytes > self.hold_limit):
            self._held_bytes -= len(held.popleft())

    def clear_backlog(self, frames=()):
        """
        Forget every kept event, and keep C{frames} instead: the frames of
        the events up to C{seq}, oldest first (a cluster node loading the
        room, or finding a hole in it).
        """
        self.backlog.clear()
        self._held.clear()
        self._held_bytes = 0
        self.backlog.extend(frames)
        while len(self.backlog) > self.backlog_size:
            self.backlog.popleft()

    def _broadcast(self, event):
        """
        Give C{event} the next C{seq}, keep it, and send it to every member
        (at the end of the current batch).

        This is the only place C{seq} changes, so it rises by exactly one per
        event and every member sees the same order.
        """
        self.seq += 1
        event["seq"] = self.seq
        self._append(wire.encode_frame(event), event["type"] not in ("join", "leave"))

    def _append(self, data, urgent):
        """
        Keep the frame of event C{self.seq} and send it to every member (at
        the end of the current batch).

        @param urgent: whether it must go out at once; presence events may
            wait for others (see L{PRESENCE_DELAY}).
        """
        self.stats.events += 1
        backlog = self.backlog
        backlog.append(data)
        if len(backlog) > self.backlog_size:
            self._age_out()
        self._pending.append(data)
        if urgent:
            self._urgent = True
        if self._depth == 0:
            self._request_flush()
