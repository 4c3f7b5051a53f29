# -*- test-case-name: tests.unit.test_room -*-
"""
The frames a room keeps for replay: the last C{size} events, and older ones
still owed to connections that were welcomed but have not joined yet.
"""

from collections import OrderedDict, deque
from itertools import chain, islice

from twisted_chat import settings, wire


class Backlog:
    """
    The frames of the last events, for resume and for a connection's catch
    up between its welcome and its join.

    @ivar seq: the seq of the last event kept (0 before the first).
    @ivar size: how many events are kept for replay.
    @ivar frames: the frames of the last C{size} events, oldest first.
    @ivar hold_limit: bytes of frames older than those that may be held for
        connections that have not joined yet (L{expect}).
    """

    def __init__(self, size=settings.DEFAULT_BACKLOG, hold_limit=settings.DEFAULT_SENDQ):
        self.seq = 0
        self.size = size
        self.hold_limit = hold_limit
        self.frames = deque()
        # Frames that aged out of the backlog but are still owed to a
        # connection that has not joined (oldest first), and their bytes.
        self._held = deque()
        self._held_bytes = 0
        # Connections welcomed but not yet joined, each with the seq its
        # welcome announced, in the order they came (so the first one is
        # owed the oldest event).
        self._expected = OrderedDict()

    def __len__(self):
        return len(self.frames)

    @property
    def oldest_seq(self):
        """
        The seq of the oldest event still kept (C{seq + 1} when none is).
        """
        return self.seq - len(self.frames) - len(self._held) + 1

    def append(self, seq, data):
        """
        Keep C{data}, the frame of event C{seq} (the one after the last).
        """
        self.seq = seq
        frames = self.frames
        frames.append(data)
        if len(frames) > self.size:
            self._age_out()

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
        kept = chain(self._held, self.frames) if self._held else self.frames
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
        Keep every event from now on for C{client} until L{forget}, within
        L{hold_limit} bytes beyond the backlog.

        @return: the seq of the last event before it.
        """
        self._expected[client] = self.seq
        return self.seq

    def expects(self, client):
        """
        Whether events are kept for C{client} (L{expect}, not yet
        L{forget}).
        """
        return client in self._expected

    def forget(self, client):
        """
        C{client} joined, resumed or left: stop holding events for it.
        """
        if self._expected.pop(client, None) is not None:
            self._release_held()

    def _age_out(self):
        """
        The oldest frame of the backlog leaves it: hold it if a connection
        that has not joined yet is owed it, else let it go.
        """
        data = self.frames.popleft()
        seq = self.seq - len(self.frames)
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

    def reset(self, seq, frames=()):
        """
        Forget every kept event, and keep C{frames} instead: the frames of
        the events up to C{seq}, oldest first (a cluster node loading the
        room, or finding a hole in it).
        """
        self.seq = seq
        self.frames.clear()
        self._held.clear()
        self._held_bytes = 0
        self.frames.extend(frames)
        while len(self.frames) > self.size:
            self.frames.popleft()
