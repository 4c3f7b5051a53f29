# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
One worker process of a load run (C{python -m twisted_chat.bench worker},
spawned by L{twisted_chat.bench.load.LoadRun}): its connections, its
senders, and what it measures.

It is steered by commands on stdin (C{start}, C{measure}, C{stop}) and
reports JSON lines on stdout.  Receivers read the seq and text fields
straight from the frames' bytes, so that the tool is cheap enough not to be
what limits a measurement.
"""

import gc
import json
import os
import random
import time

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import Int32StringReceiver, LineOnlyReceiver

from twisted_chat import wire
from twisted_chat.net import no_delay

#: Latency is recorded in microseconds, up to a minute.
_HIGHEST_US = 60 * 1000 * 1000
#: Most latency points kept per worker for the latency-over-time plot.
_TIMELINE_POINTS = 20000


def histogram():
    """
    An empty latency histogram: microseconds, 1 to L{_HIGHEST_US}, three
    significant digits (needs the bench extra's hdrhistogram).
    """
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, _HIGHEST_US, 3)


def _message_text(gid, counter, size):
    """
    A message's text: send time, sender, counter, padded to C{size}.
    """
    head = "%.6f %d %d " % (time.time(), gid, counter)
    return head + "x" * max(0, size - len(head))


def _text_fields(payload):
    """
    The (send time, sender, counter) at the start of a message's text, read
    straight from the frame's bytes (compact JSON or not).
    """
    start = payload.index(b'"text":') + 7
    if payload[start : start + 1] == b" ":
        start += 1
    start += 1
    end = payload.index(b" ", start)
    middle = payload.index(b" ", end + 1)
    last = payload.index(b" ", middle + 1)
    return (
        float(payload[start:end]),
        int(payload[end + 1 : middle]),
        int(payload[middle + 1 : last]),
    )


#: How a message event's bytes start: compact JSON, or json.dumps' default.
_MESSAGE_PREFIXES = (b'{"type":"message"', b'{"type": "message"')
#: How any event's bytes start: a message, or join, leave and nick.
_EVENT_PREFIXES = _MESSAGE_PREFIXES + tuple(
    prefix % (kind,)
    for kind in (b"join", b"leave", b"nick")
    for prefix in (b'{"type":"%s"', b'{"type": "%s"')
)


def _tail_seq(data, start=0, stop=None):
    """
    The seq of the event frame payload C{data[start:stop]}; the server
    writes it last.
    """
    if stop is None:
        stop = len(data)
    return int(data[data.rindex(b'"seq":', start, stop) + 6 : stop - 1])


class LoadClient(Int32StringReceiver):
    """
    One connection of a worker.
    """

    MAX_LENGTH = wire.MAX_FRAME_LIMIT

    def __init__(self, worker, gid, sender, recorder, verifier):
        self.worker = worker
        self.gid = gid
        self.sender = sender
        self.recorder = recorder
        self.verifier = verifier
        self.last_seq = None
        self.session = None
        self.inflight = 0
        self.counter = 0
        self.heartbeat = None
        self.pacer = None
        self.senders_seen = {}
        # A verifier's own count of what it found out of sender order, and
        # of messages it saw twice (the worker's order_errors has both).
        self.order_errors = self.sender_duplicates = 0
        self.closed = defer.Deferred()
        # A plain receiver only counts and checks seq: it reads frames in
        # place (see dataReceived), so that the tool is cheap enough not to
        # be what limits a measurement.
        self.plain = not (sender or recorder or verifier)
        self._buffer = b""

    def connectionMade(self):
        no_delay(self.transport)
        # A first frame joins at once.
        self.sendString(b'{"type":"heartbeat"}')

    def dataReceived(self, data):
        if not self.plain:
            return Int32StringReceiver.dataReceived(self, data)
        buffer = self._buffer + data if self._buffer else data
        offset, end = 0, len(buffer)
        worker = self.worker
        unpack = wire.PREFIX.unpack_from
        while end - offset >= 4:
            (length,) = unpack(buffer, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            # Only an event's seq matters here, a join's too: a connect
            # burst brings each of the first members up to a thousand.
            if buffer.startswith(_EVENT_PREFIXES, offset + 4):
                self._check_seq(_tail_seq(buffer, offset, stop))
                if worker.measuring and buffer.startswith(_MESSAGE_PREFIXES, offset + 4):
                    worker.deliveries += 1
            else:
                self.stringReceived(buffer[offset + 4 : stop])
            offset = stop
        self._buffer = buffer[offset:]

    def stringReceived(self, payload):
        if payload.startswith(_MESSAGE_PREFIXES):
            seq = _tail_seq(payload)
            self._check_seq(seq)
            self._message_received(payload, seq)
            return
        self._frame_received(json.loads(payload))

    def _message_received(self, payload, seq):
        """
        A message event, its seq already checked: count it, and record,
        verify or confirm it as this connection's part says.
        """
        worker = self.worker
        if worker.measuring:
            worker.deliveries += 1
        own = None
        if self.recorder or self.verifier or self.sender:
            sent_at, gid, counter = _text_fields(payload)
            own = gid == self.gid
            if self.recorder and worker.measuring and seq % worker.sample == 0:
                worker.record_latency(sent_at)
            if self.verifier:
                previous = self.senders_seen.get(gid)
                # Strictly rising: a message refused (rate_limited) is a
                # legitimate skip, and a lost one shows as a seq gap.
                if previous is not None and counter <= previous:
                    worker.order_errors += 1
                    if counter == previous:
                        self.sender_duplicates += 1
                    else:
                        self.order_errors += 1
                self.senders_seen[gid] = counter
        if own and self.sender:
            self.inflight -= 1
            if worker.sending and not worker.options["rate"]:
                self.send_message()

    def _frame_received(self, message):
        """
        Any frame but a message event, decoded.
        """
        worker = self.worker
        name = message.get("type")
        if "seq" in message and name != "welcome":
            self._check_seq(message["seq"])
        if name == "welcome":
            self.session = message.get("session")
            self.last_seq = message.get("seq")
            interval = message.get("heartbeat_interval") or wire.DEFAULT_HEARTBEAT_INTERVAL
            self.heartbeat = task.LoopingCall(self.send_heartbeat)
            self.heartbeat.clock = worker.reactor
            self.heartbeat.start(interval, now=False)
            worker.welcomed += 1
            self.on_welcome()
        elif name == "heartbeat_ack" and wire.is_number(message.get("ts")):
            worker.record_rtt(message["ts"])
        elif name == "lagged":
            worker.lags += 1
            self.sendString(json.dumps(self.resume_message()).encode())
        elif name == "error":
            code = message.get("code", "?")
            worker.errors[code] = worker.errors.get(code, 0) + 1
            if code == wire.RATE_LIMITED and self.sender:
                # That message was refused, so it will not come back: free
                # its slot and try again when the server says.
                self.inflight -= 1
                if worker.sending and not worker.options["rate"]:
                    delay = message.get("retry_after")
                    if not wire.is_number(delay) or delay <= 0:
                        delay = 0.1
                    worker.reactor.callLater(delay, self._send_if_sending)

    def on_welcome(self):
        """
        The welcome is in: nothing more to do here (a room's connection
        joins its room).
        """

    def resume_message(self):
        """
        The resume that catches up after C{lagged}: the lobby's last seq.
        """
        return {"type": "resume", "session": self.session, "last_seq": self.last_seq}

    def _check_seq(self, seq):
        self.worker.events += 1
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.worker.reorders += 1
                return
            if seq != last + 1:
                self.worker.gaps += seq - last - 1
        self.last_seq = seq

    def send_heartbeat(self):
        self.sendString(
            b'{"type":"heartbeat","ts":' + repr(time.time()).encode() + b"}"
        )

    def start_sending(self):
        options = self.worker.options
        if options["rate"]:
            # Senders start at random points of their period, as users do,
            # instead of all at once.
            period = 1.0 / options["rate"]
            self.pacer = task.LoopingCall(self.send_message)
            self.pacer.clock = self.worker.reactor
            self.worker.reactor.callLater(
                random.uniform(0, period), self._start_pacer, period
            )
        else:
            for _ in range(options["inflight"]):
                self.send_message()

    def _send_if_sending(self):
        if self.worker.sending:
            self.send_message()

    def _start_pacer(self, period):
        if self.pacer is not None and self.worker.sending:
            self.pacer.start(period)

    def send_message(self):
        if self.inflight >= self.worker.options["inflight"]:
            return
        self.inflight += 1
        self.counter += 1
        text = _message_text(self.gid, self.counter, self.worker.options["size"])
        self.sendString(json.dumps({"type": "message", "text": text}).encode())
        self.worker.sent += 1

    def stop_sending(self):
        """
        Send no more messages (at a fixed rate; as fast as possible, a
        sender sends only while its worker is sending).
        """
        if self.pacer is not None and self.pacer.running:
            self.pacer.stop()
        self.pacer = None

    def stop(self):
        for loop in (self.heartbeat, self.pacer):
            if loop is not None and loop.running:
                loop.stop()
        self.heartbeat = self.pacer = None

    def connectionLost(self, reason):
        self.stop()
        self.closed.callback(None)


def room_name(gid, rooms):
    """
    The room of connection C{gid} in a run over C{rooms} rooms: they are
    dealt out in turn, so every room gets its share of the connections and,
    as the senders are the first C{--senders} of them, of the senders.
    """
    return "bench-%0*d" % (len(str(rooms - 1)), gid % rooms)


#: Where a room-scoped event says its room; an event without it is the
#: lobby's.  (Inside a JSON string a quote is escaped, so a text cannot
#: hold this.)
_ROOM_KEY = b'"room":'
#: The lobby's name as a room-scoped frame may spell it (after _ROOM_KEY).
_LOBBY_VALUES = (b'"lobby"', b' "lobby"')
#: The numbered events of a room that no load run causes, decoded when
#: they come all the same.
_OTHER_EVENTS = frozenset(["topic", "op", "ban", "unban"])


class RoomLoadClient(LoadClient):
    """
    One connection of a C{--rooms} run: in the lobby, as every connection
    is, and in one room of its own, which it joins after its welcome, and
    whose seq it checks apart from the lobby's.

    @ivar room: the room's name.
    @ivar room_seq: the seq of the room's last event received (from its
        C{joined} on); L{None} until joined.
    @ivar room_first_seq: the room's seq in its C{joined}.
    @ivar join_state: L{None} (not asked yet), C{"asked"}, C{"joined"}, or
        C{"refused"} (an error came instead of C{joined}).
    """

    def __init__(self, worker, gid, sender, recorder, verifier, room):
        LoadClient.__init__(self, worker, gid, sender, recorder, verifier)
        self.room = room
        # The room's value after _ROOM_KEY, compact JSON or not; and how
        # its message events start when the room comes first after the
        # type, as from twisted-chat (the most common frame, found at once).
        quoted = json.dumps(room).encode()
        self._room_values = (quoted, b" " + quoted)
        self._room_messages = (b'{"type":"message","room":' + quoted,
                               b'{"type": "message", "room": ' + quoted)
        self.room_seq = self.room_first_seq = None
        self.join_state = None
        # What this connection found wrong in its room: seqs missing, seen
        # again, or going back; and events of rooms it is not in.
        self.room_gaps = self.room_duplicates = self.room_reorders = 0
        self.foreign = 0

    def dataReceived(self, data):
        """
        As L{LoadClient.dataReceived}, each event checked against the seq
        of its own room, the lobby's or this connection's.
        """
        if not self.plain:
            return Int32StringReceiver.dataReceived(self, data)
        buffer = self._buffer + data if self._buffer else data
        offset, end = 0, len(buffer)
        worker = self.worker
        unpack = wire.PREFIX.unpack_from
        room_values, room_messages = self._room_values, self._room_messages
        while end - offset >= 4:
            (length,) = unpack(buffer, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            start = offset + 4
            if buffer.startswith(room_messages, start):
                self._check_room_seq(_tail_seq(buffer, offset, stop))
                if worker.measuring:
                    worker.deliveries += 1
            elif buffer.startswith(_EVENT_PREFIXES, start):
                at = buffer.find(_ROOM_KEY, start, stop)
                if at < 0:
                    self._check_seq(_tail_seq(buffer, offset, stop))
                elif buffer.startswith(room_values, at + 7):
                    self._check_room_seq(_tail_seq(buffer, offset, stop))
                elif buffer.startswith(_LOBBY_VALUES, at + 7):
                    self._check_seq(_tail_seq(buffer, offset, stop))
                else:
                    self.foreign += 1
                if worker.measuring and buffer.startswith(_MESSAGE_PREFIXES, start):
                    worker.deliveries += 1
            else:
                self.stringReceived(buffer[start:stop])
            offset = stop
        self._buffer = buffer[offset:]

    def stringReceived(self, payload):
        """
        A frame: the lobby's go as L{LoadClient} takes them, the room's
        are checked against the room's seq.
        """
        if payload.startswith(self._room_messages):
            seq = _tail_seq(payload)
            self._check_room_seq(seq)
            self._message_received(payload, seq)
            return
        at = payload.find(_ROOM_KEY)
        if at < 0:
            return LoadClient.stringReceived(self, payload)
        if payload.startswith(_EVENT_PREFIXES):
            if payload.startswith(_LOBBY_VALUES, at + 7):
                return LoadClient.stringReceived(self, payload)
            if not payload.startswith(self._room_values, at + 7):
                self.foreign += 1
                return
            seq = _tail_seq(payload)
            self._check_room_seq(seq)
            if payload.startswith(_MESSAGE_PREFIXES):
                self._message_received(payload, seq)
            return
        message = json.loads(payload)
        kind, room = message.get("type"), message.get("room")
        if room == wire.LOBBY:
            self._lobby_frame(message)
        elif kind == "joined":
            self._joined(message)
        elif kind == "error":
            if self.join_state == "asked" and room == self.room:
                self.join_state = "refused"
                self.worker.joins_done += 1
                self.worker.join_failures += 1
            self._frame_received(message)
        elif kind in _OTHER_EVENTS:
            # Numbered like the rest.
            if room == self.room and self.room_seq is not None and "seq" in message:
                self._check_room_seq(message["seq"])
            else:
                self.foreign += 1
        # Anything else of a room (parted, who) has nothing to check.

    def _lobby_frame(self, message):
        """
        A frame that names the lobby, as any frame may: as without the
        name, but a C{joined} (after a resume that could not replay the
        lobby) says where the lobby's events go on from.
        """
        seq = message.get("seq")
        if message.get("type") != "joined":
            self._frame_received(message)
        elif wire.is_whole(seq) and self.last_seq is not None and seq > self.last_seq:
            self.worker.gaps += seq - self.last_seq
            self.last_seq = seq

    def _joined(self, message):
        """
        C{joined}: the room's seq to count from; again after a resume that
        could not replay the room, the jump is what was lost.
        """
        seq = message.get("seq")
        if message.get("room") != self.room or not wire.is_whole(seq):
            self.foreign += 1
            return
        if self.room_seq is None:
            self.room_seq = self.room_first_seq = seq
            if self.join_state == "asked":
                self.worker.joins_done += 1
            self.join_state = "joined"
        elif seq > self.room_seq:
            self.room_gaps += seq - self.room_seq
            self.worker.gaps += seq - self.room_seq
            self.room_seq = seq

    def _check_room_seq(self, seq):
        """
        The room's seq must rise by exactly one per event.
        """
        worker = self.worker
        worker.events += 1
        last = self.room_seq
        if last is None:
            # Before joined: not an event this connection should have.
            self.foreign += 1
            return
        if seq <= last:
            worker.reorders += 1
            if seq == last:
                self.room_duplicates += 1
            else:
                self.room_reorders += 1
            return
        if seq != last + 1:
            worker.gaps += seq - last - 1
            self.room_gaps += seq - last - 1
        self.room_seq = seq

    def on_welcome(self):
        """
        Join this connection's room.
        """
        self.join_state = "asked"
        self.sendString(json.dumps({"type": "join", "room": self.room}).encode())

    def resume_message(self):
        """
        The resume after C{lagged}: the lobby's last seq, and the room's.
        """
        message = LoadClient.resume_message(self)
        message["rooms"] = {} if self.room_seq is None else {self.room: self.room_seq}
        message["last_dseq"] = 0
        return message

    def send_message(self):
        """
        Send a message to this connection's room.
        """
        if self.inflight >= self.worker.options["inflight"]:
            return
        self.inflight += 1
        self.counter += 1
        text = _message_text(self.gid, self.counter, self.worker.options["size"])
        self.sendString(
            json.dumps({"type": "message", "room": self.room, "text": text}).encode())
        self.worker.sent += 1


def room_report(clients):
    """
    What the connections of a C{--rooms} worker found, per room.

    @param clients: L{RoomLoadClient}s.
    @return: a dict of room names to dicts: C{members} (connected),
        C{joined}, C{senders}, C{verifiers}, C{gaps}, C{duplicates} (a seq
        or a sender's message seen twice), C{reorders}, C{sender_order}
        (a sender's messages out of order), C{foreign} (events of rooms
        the connection was not in), C{checked} (events received in seq
        order, over all members), and C{ends} (how many members ended at
        each last seq, keyed by that seq as a string).
    """
    rooms = {}
    for client in clients:
        entry = rooms.get(client.room)
        if entry is None:
            entry = rooms[client.room] = dict.fromkeys(
                ("members", "joined", "senders", "verifiers", "gaps", "duplicates",
                 "reorders", "sender_order", "foreign", "checked"), 0)
            entry["ends"] = {}
        entry["members"] += 1
        entry["senders"] += bool(client.sender)
        entry["verifiers"] += bool(client.verifier)
        entry["gaps"] += client.room_gaps
        entry["duplicates"] += client.room_duplicates + client.sender_duplicates
        entry["reorders"] += client.room_reorders
        entry["sender_order"] += client.order_errors
        entry["foreign"] += client.foreign
        if client.room_seq is not None:
            entry["joined"] += 1
            entry["checked"] += client.room_seq - client.room_first_seq - client.room_gaps
            end = str(client.room_seq)
            entry["ends"][end] = entry["ends"].get(end, 0) + 1
    return rooms


class Worker:
    """
    One worker process's share of a load run, steered by commands on stdin
    (C{start}, C{measure}, C{stop}) and reporting JSON lines on stdout.
    """

    def __init__(self, reactor, options):
        self.reactor = reactor
        self.options = options
        self.clients = []
        self.welcomed = 0
        # Events (frames with a seq) received, whatever their kind.
        self.events = 0
        self.connect_failures = 0
        self.deliveries = 0
        self.sent = 0
        self.gaps = 0
        self.reorders = 0
        self.order_errors = 0
        self.lags = 0
        self.errors = {}
        # With --rooms: connections told joined or refused, and refused.
        self.joins_done = 0
        self.join_failures = 0
        self.measuring = False
        self.sending = False
        self.latency = histogram()
        self.rtt = histogram()
        self.timeline = []
        self.sample = options["sample"]
        self._measure_start = None
        self._cpu_start = None
        # (wall, CPU) seconds of the measurement, once it has ended.
        self._measured = None
        # With --rooms: what room_report said once every room was quiet.
        self._rooms = None
        self.done = defer.Deferred()

    def report(self, **fields):
        # Through the stdio transport: it made stdout non-blocking, so a
        # plain write of a large report could be cut short.
        self.stdio.write(json.dumps(fields).encode("utf-8") + b"\n")

    def record_latency(self, sent_at):
        now = time.time()
        micros = max(1, int((now - sent_at) * 1e6))
        self.latency.record_value(min(micros, _HIGHEST_US))
        if len(self.timeline) < _TIMELINE_POINTS:
            self.timeline.append((round(now - self._measure_start, 4), micros))

    def record_rtt(self, ts):
        micros = max(1, int((time.time() - ts) * 1e6))
        self.rtt.record_value(min(micros, _HIGHEST_US))

    @defer.inlineCallbacks
    def connect_all(self):
        options = self.options
        procs, index = options["procs"], options["index"]
        mine = list(range(index, options["connections"], procs))
        # Several ports: the nodes of a cluster, taken in turn.
        endpoints = [
            TCP4ClientEndpoint(self.reactor, options["host"], int(port), timeout=10)
            for port in (options["ports"] or str(options["port"])).split(",")
        ]
        delay = procs / float(options["ramp"])
        recorders = max(1, len(mine) // 10)
        rooms = options["rooms"]

        def failed(failure):
            self.connect_failures += 1
            self.report(event="error", message="connect: %s" % (failure.getErrorMessage(),))

        attempts = []
        started = time.time()
        for n, gid in enumerate(mine):
            sender = gid < options["senders"]
            recorder = n < recorders or sender
            if rooms:
                # Each room's first member checks its senders' order too.
                client = RoomLoadClient(self, gid, sender, recorder, n < 2 or gid < rooms,
                                        room_name(gid, rooms))
            else:
                client = LoadClient(self, gid, sender=sender, recorder=recorder,
                                    verifier=n < 2)
            if n == 0:
                # The first connection alone: if it fails, nothing will work.
                try:
                    yield connectProtocol(endpoints[gid % len(endpoints)], client)
                except Exception as e:
                    self.report(event="fatal", message="cannot connect to %s:%d: %s" % (
                        options["host"], options["port"], e))
                    self.stdio.loseConnection()
                    return
                self.clients.append(client)
                continue
            d = connectProtocol(endpoints[gid % len(endpoints)], client)
            d.addCallbacks(self.clients.append, failed)
            attempts.append(d)
            # Keep to the ramp rate: open connections in steps of 1 ms.
            due = started + (n + 1) * delay
            if due - time.time() > 0.001:
                yield task.deferLater(self.reactor, due - time.time(), lambda: None)
        yield defer.DeferredList(attempts)
        while self.welcomed < len(self.clients) or (
                rooms and self.joins_done < len(self.clients)):
            yield task.deferLater(self.reactor, 0.01, lambda: None)
        ramp = time.time() - started
        # Then wait for the room to settle: every join was broadcast to
        # everyone already there, and that must not spill into the
        # measurement.  (Heartbeat acks go on; they carry no seq.)
        seen = -1
        while seen != self.events:
            seen = self.events
            yield task.deferLater(self.reactor, 0.3, lambda: None)
        self.report(event="ready", connected=len(self.clients), ramp=ramp)

    def command(self, line):
        if line == "start":
            self.sending = True
            for client in self.clients:
                if client.sender:
                    client.start_sending()
        elif line == "measure":
            # The connections live for the whole run: keep the collector
            # from walking them again and again (its pauses would show up
            # as latency).
            gc.collect()
            gc.freeze()
            self.measuring = True
            self._measure_start = time.time()
            self._cpu_start = _cpu_seconds()
            self.deliveries = 0
        elif line == "halt":
            self.halt()
            self.report(event="halted")
        elif line == "settle":
            self.settle().addCallback(self._settled)
        elif line == "stop":
            self.finish()

    def progress(self):
        self.report(
            event="progress",
            connected=len(self.clients),
            welcomed=self.welcomed,
            deliveries=self.deliveries,
            sent=self.sent,
        )

    def halt(self):
        """
        End the measurement, and stop sending.
        """
        if self._measured is not None:
            return
        wall = time.time() - self._measure_start if self._measure_start else 0.0
        cpu = _cpu_seconds() - self._cpu_start if self._cpu_start is not None else 0.0
        self._measured = wall, cpu
        self.measuring = self.sending = False
        for client in self.clients:
            client.stop_sending()

    @defer.inlineCallbacks
    def settle(self, quiet=0.5, limit=10.0):
        """
        Wait until no event has come for C{quiet} seconds, or C{limit}
        seconds have passed.
        """
        deadline = self.reactor.seconds() + limit
        seen = -1
        while seen != self.events and self.reactor.seconds() < deadline:
            seen = self.events
            yield task.deferLater(self.reactor, quiet, lambda: None)

    def _settled(self, ignored):
        # Every sender of every worker had stopped before this settling
        # began (the parent says halt to all first), and no connection
        # closes before every worker has settled: every member of a room
        # must have ended at the same seq.
        self._rooms = room_report(self.clients)
        self.report(event="settled")

    @defer.inlineCallbacks
    def finish(self):
        self.halt()
        wall, cpu = self._measured
        rooms = {}
        if self.options["rooms"]:
            if self._rooms is None:
                self._rooms = room_report(self.clients)
            rooms = dict(rooms=self._rooms, join_failures=self.join_failures)
        self.report(
            event="final",
            connected=len(self.clients),
            connect_failures=self.connect_failures,
            deliveries=self.deliveries,
            sent=self.sent,
            gaps=self.gaps,
            reorders=self.reorders,
            order_errors=self.order_errors,
            verified=sum(1 for c in self.clients if c.verifier),
            lags=self.lags,
            errors=self.errors,
            wall=wall,
            cpu=cpu,
            latency=self.latency.encode().decode("ascii"),
            rtt=self.rtt.encode().decode("ascii"),
            timeline=self.timeline,
            **rooms
        )
        for client in self.clients:
            client.stop()
            client.transport.abortConnection()
        yield defer.DeferredList([c.closed for c in self.clients])
        self.stdio.loseConnection()


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


class _Commands(LineOnlyReceiver):
    delimiter = b"\n"

    def __init__(self, worker):
        self.worker = worker

    def lineReceived(self, line):
        self.worker.command(line.decode().strip())

    def connectionLost(self, reason):
        # stdout is flushed and closed (or the parent went away).
        if not self.worker.done.called:
            self.worker.done.callback(None)


def run_worker(reactor, options):
    from twisted.internet.stdio import StandardIO

    worker = Worker(reactor, options)
    worker.stdio = StandardIO(_Commands(worker), reactor=reactor)
    progress = task.LoopingCall(worker.progress)
    progress.clock = reactor
    progress.start(0.5, now=False)
    worker.connect_all().addErrback(
        lambda f: worker.report(event="error", message=f.getErrorMessage())
    )
    worker.done.addBoth(lambda r: progress.stop())
    return worker.done
