# -*- test-case-name: tests.unit.test_reliability -*-
"""
What the server sends one client, and what it does when the client reads
too slowly: L{Outbox}.

Frames go through a L{SendQueue}, which counts what waits.  A room event
that would take the queue past C{sendq_soft} is not queued: the client is
sent C{lagged} instead, gets no events until it resumes, and is dropped if
it has not drained the queue within C{timeout}.  Nothing at all may take
the queue past C{sendq}: the client is then dropped at once.  Either way
one slow reader costs the server a bounded amount and the others nothing.
"""

from twisted.logger import Logger

from twisted_chat import wire
from twisted_chat._timers import cancelled
from twisted_chat.sendq import SendQueue


class Outbox:
    """
    One connection's outgoing frames and its lag policy.

    @ivar queue: the L{SendQueue} of frames the client has not taken yet.
    @ivar lagged: while the client lags, the first event of each room it was
        not sent, by room (a room it has been sent everything of is not
        there); L{None} while it keeps up.
    @ivar closing: set once the connection is closing: events are no longer
        sent, so that what it was sent last stays its last frame.
    """

    # Slots: a server keeps one per connection, tens of thousands.
    __slots__ = (
        "connection", "settings", "stats", "clock", "queue", "lagged", "closing",
        "_lag_call")

    log = Logger()

    def __init__(self, connection, transport, settings, stats, clock):
        """
        @param connection: the protocol it sends for; it is told to
            C{abort(reason)} a client that must be dropped, names the
            client in the log (C{name}, C{peer}), and says what a
            C{lagged} frame holds (C{lag_report}).
        @param settings: the server's L{ServerSettings} (C{sendq},
            C{sendq_soft}, C{timeout}).
        @param stats: the server's L{Stats}.
        @param clock: the L{IReactorTime} of the lag timer.
        """
        self.connection = connection
        self.settings = settings
        self.stats = stats
        self.clock = clock
        self.queue = SendQueue(transport, self._drained)
        self.lagged = None
        self.closing = False
        self._lag_call = None

    def write(self, data):
        """
        Queue frame bytes for the client, and drop it if more than C{sendq}
        bytes then wait.
        """
        queue = self.queue
        queue.write(data)
        stats = self.stats
        stats.writes_out += 1
        stats.bytes_out += len(data)
        if queue.size > stats.sendq_high_water:
            stats.sendq_high_water = queue.size
        if queue.size > self.settings.sendq:
            self._log(
                "dropped: more than {limit} bytes waiting for it", limit=self.settings.sendq)
            self.connection.abort(wire.REASON_SENDQ)

    def deliver(self, seq, data, room):
        """
        Queue the frames of events of C{room} from C{seq} on, unless the
        client lags too far behind to take them, or its connection is
        closing.
        """
        lagged = self.lagged
        if lagged is not None:
            if room not in lagged:
                lagged[room] = seq
            return
        if self.closing:
            return
        queue = self.queue
        if (queue.paused or len(queue)) and (
            queue.size + len(data) > self.settings.sendq_soft
        ):
            self._lag(seq, room)
            return
        self.write(data)

    def _lag(self, seq, room):
        """
        The client reads too slowly: stop sending it events, tell it so, and
        drop it if it has not drained what waits within C{timeout}.
        """
        self.lagged = {room: seq}
        self._tell_lagged()
        self._log("is lagging; events from {seq} not sent", seq=seq)
        if self._lag_call is None:
            self._lag_call = self.clock.callLater(self.settings.timeout, self._lag_expired)

    def fell_behind(self, seq, room):
        """
        Events of C{room} from C{seq} on are lost to this node: tell the
        client it lagged, so that it resumes.
        """
        if self.lagged is None:
            self.lagged = {room: seq}
            self._tell_lagged()
        elif room not in self.lagged:
            self.lagged[room] = seq

    def _tell_lagged(self):
        self.stats.replies += 1
        fields = self.connection.lag_report(self.lagged)
        self.write(wire.encode_frame(dict({"type": "lagged"}, **fields)))

    def sent_through(self, room):
        """
        The last event of C{room} the client was sent: the room's last,
        unless it lagged.
        """
        lagged = self.lagged
        if lagged is None or room not in lagged:
            return room.seq
        return lagged[room] - 1

    def caught_up(self):
        """
        The client resumes: send it events again.
        """
        self.lagged = None

    def _drained(self):
        self._lag_call = cancelled(self._lag_call)

    def _lag_expired(self):
        self._lag_call = None
        self._log(
            "dropped: it read nothing for {timeout} s while lagging",
            timeout=self.settings.timeout,
        )
        self.connection.abort(wire.REASON_SENDQ)

    def close(self):
        """
        Send what waits, then close the connection.
        """
        self.closing = True
        self.queue.close()

    def stop(self):
        """
        The connection is gone: send nothing more, and cancel the lag timer.
        """
        self.closing = True
        self._lag_call = cancelled(self._lag_call)

    def _log(self, event_format, **fields):
        connection = self.connection
        self.log.info(
            "{name} ({peer}) " + event_format, name=connection.name,
            peer=connection.peer, **fields)
