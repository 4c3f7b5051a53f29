"""
Fault tests: each classic failure of a TCP client/server, and each kind of
bad peer, reproduced with real processes on loopback (127.0.0.1 only).

Every test is bounded in time and traffic, and stops by itself.
"""

import hashlib
import random
import signal
import socket
import struct

from twisted.internet import defer, reactor, task
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial.unittest import TestCase

from twisted_chat import wire
from twisted_chat.bench.servers import resident_mib
from tests.helpers.loopback import LoopbackMixin, RawClient
from tests.helpers.waiting import Waiter, sleep


class NonReader(RawClient):
    """
    A client that is alive (it sends a heartbeat every half second) but
    never reads, with a receive buffer as small as the kernel allows, so
    what the server sends it backs up.
    """

    def connectionMade(self):
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.transport.pauseProducing()
        self.beat = task.LoopingCall(self.sendString, wire.encode({"type": "heartbeat"}))
        self.beat.start(0.5)

    def connectionLost(self, reason):
        self.beat.stop()
        super().connectionLost(reason)


def message_frame(text):
    return wire.encode_frame({"type": "message", "text": text})


class FaultTests(LoopbackMixin, TestCase):
    """
    The server and clients under faults.
    """

    timeout = 40

    @defer.inlineCallbacks
    def test_killed_and_restarted_server(self):
        """
        Server killed (SIGKILL), then restarted on the same port (crash and
        reboot): a --reconnect client notices at once, reconnects once the
        server is back, is told its session is gone (resume_failed), says
        so, and carries on under its name.
        """
        server, port = yield self.spawn_twistd("--heartbeat-interval", "1", "--timeout", "3")
        client = self.spawn_client(port, "--reconnect", "--name", "rita")
        yield client.wait_for(rb"\* guest-1 is now rita")
        server.signal(signal.SIGKILL)
        yield client.wait_for(rb"\* server terminated prematurely; reconnecting")
        yield server.ended
        reborn = self.spawn(
            ["-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "chat", "--port", "tcp:%d:interface=127.0.0.1" % (port,)]
        )
        yield reborn.wait_for(rb"starting on %d" % (port,))
        yield client.wait_for(rb"\* reconnected as a new session")
        client.transport.write(b"after the reboot\n")
        yield client.wait_for(rb"> rita: after the reboot")
        self.assertTrue(client.running)
        self.assertEqual(client.err.count(b"Traceback"), 0)

    @defer.inlineCallbacks
    def test_reconnect_resumes_without_loss(self):
        """
        A --reconnect client whose connection is reset resumes on a new one
        and sees every event it missed, with no gap.
        """
        server = yield self.start_server(heartbeat_interval=1.0, timeout=3.0, rate=0)
        talker = yield self.connect_client(server.port, nick="talker")
        client = self.spawn_client(server.port, "--reconnect", "--name", "rita")
        yield talker.transcript.wait_for("* guest-2 is now rita")
        # Cut rita's connection from the server side, as a reset would.
        (rita,) = [p for p in server.connections if p.name == "rita"]
        rita.transport.abortConnection()
        for i in range(5):
            talker.line_received("while away %d" % (i,))
        yield client.wait_for(rb"\* reconnected, \d+ missed events replayed")
        for i in range(5):
            self.assertIn(b"> talker: while away %d" % (i,), client.out)
        self.assertNotIn(b"missed events", client.out.replace(b"missed events replayed", b""))

    @defer.inlineCallbacks
    def test_never_reading_client(self):
        """
        A client that never reads, while another floods 40 MB of messages:
        the server's memory stays flat, the others get every message, and
        the non-reader is dropped (leave reason sendq) once it has lagged
        for the timeout.
        """
        server, port = yield self.spawn_twistd(
            "--heartbeat-interval", "1", "--timeout", "3", "--rate", "0",
            "--sendq-soft", "256KiB", "--sendq", "1MiB",
        )
        count = 10000
        waiter = Waiter()
        observer = yield self.connect_raw(port, Counter(count, waiter))
        yield observer.welcomed
        yield self.connect_raw(port, NonReader())
        flooder = yield self.connect_raw(port, Counter(count, Waiter()))
        yield flooder.welcomed
        yield server.wait_for(rb"guest-3 \(127.0.0.1:\d+\) connected")
        yield sleep(0.2)
        before = resident_mib(server.transport.pid)
        text = "x" * 4000
        sent = 0
        while sent < count:
            # As fast as a reader that keeps up can take it: at most 200
            # messages ahead of the observer.
            while sent < count and sent - observer.count < 200:
                flooder.transport.write(message_frame("%d %s" % (sent, text)))
                sent += 1
            yield sleep(0.001)
        yield waiter.wait_until(lambda: observer.count >= count)
        after = resident_mib(server.transport.pid)
        # 10000 messages of 4 KB is 40 MB that a buffering server would hold
        # for the non-reader; this one holds at most its send queue.
        self.assertLess(after - before, 20, (before, after))
        self.assertEqual(observer.count, count)
        yield server.wait_for(rb"guest-2 \(127.0.0.1:\d+\) is lagging")
        yield server.wait_for(rb"guest-2 \(127.0.0.1:\d+\) left: sendq")

    @defer.inlineCallbacks
    def test_flooding_client(self):
        """
        A client that floods is refused past its burst, then dropped with
        reason flood; the others only ever see its burst.
        """
        server = yield self.start_server()
        observer = yield self.connect_client(server.port)
        flooder = yield self.connect_raw(server.port)
        yield flooder.wait_for_type("welcome")
        flooder.transport.write(b"".join(message_frame("spam %d" % i) for i in range(500)))
        yield observer.transcript.wait_for("* guest-2 left (flood)")
        spam = [l for l in observer.transcript.lines if l.startswith("> guest-2: spam")]
        self.assertEqual(len(spam), 20)
        # Refusals before the drop are rate_limited errors; the last frame
        # says why it was dropped.
        yield flooder.lost
        errors = [m["code"] for m in flooder.messages if m["type"] == "error"]
        self.assertEqual(set(errors[:-1]), {"rate_limited"})
        self.assertEqual(errors[-1], "flooding")
        self.assertEqual(flooder.messages[-1]["code"], "flooding")
        observer.line_received("still fine")
        yield observer.transcript.wait_for("> guest-1: still fine")

    @defer.inlineCallbacks
    def test_random_bytes(self):
        """
        200 connections of random bytes (and of frames that are nearly
        right) at once: the server answers or drops each, keeps serving the
        others, and never logs a traceback.
        """
        # (200 connections from 127.0.0.1: no --max-per-ip.)
        server, port = yield self.spawn_twistd(
            "--heartbeat-interval", "1", "--timeout", "2", "--max-per-ip", "0")
        observer = yield self.connect_client(port)
        rng = random.Random(20261121)
        samples = [
            lambda: rng.randbytes(rng.randrange(1, 3000)),
            lambda: struct.pack("!I", rng.randrange(2**32)) + rng.randbytes(50),
            lambda: wire.frame(rng.randbytes(rng.randrange(0, 100))),
            lambda: wire.frame(b'{"type":"' + rng.randbytes(8) + b'"}'),
            lambda: wire.frame(b'{"type":"message","text":' + rng.randbytes(20) + b"}"),
            lambda: wire.frame(b'{"type":"nick","name":[1,{}]}'),
            lambda: wire.frame(b'{"type":"resume","session":"x","last_seq":1e999}'),
        ]
        garbage = []
        for i in range(200):
            raw = yield self.connect_raw(port)
            raw.transport.write(b"".join(rng.choice(samples)() for _ in range(rng.randrange(1, 6))))
            garbage.append(raw)
        observer.line_received("through the noise")
        yield observer.transcript.wait_for("> guest-1: through the noise")
        for raw in garbage:
            raw.transport.loseConnection()
        yield defer.DeferredList([raw.lost for raw in garbage])
        again = yield self.connect_client(port)
        again.line_received("and after")
        yield observer.transcript.wait_for(": and after")
        self.assertNotIn(b"Traceback", server.out + server.err)
        self.assertNotIn(b"Unhandled", server.out + server.err)
        codes = {m.get("code") for raw in garbage for m in raw.messages if m["type"] == "error"}
        self.assertTrue(codes <= wire.ERROR_CODES, codes)

    @defer.inlineCallbacks
    def test_second_sigterm_stops_at_once(self):
        """
        A graceful stop waits (here up to 60 s) for a client that cannot
        take its shutdown frame; a second SIGTERM ends it at once.
        """
        server, port = yield self.spawn_twistd(
            "--heartbeat-interval", "5", "--timeout", "30", "--rate", "0",
            "--shutdown-grace", "60",
        )
        yield self.connect_raw(port, NonReader())
        flooder = yield self.connect_raw(port)
        yield flooder.wait_for_type("welcome")
        flooder.transport.write(b"".join(message_frame("y" * 4000) for _ in range(2000)))
        yield server.wait_for(rb"is lagging")
        server.signal(signal.SIGTERM)
        yield server.wait_for(rb"shutting down: closing")
        yield sleep(0.5)
        self.assertTrue(server.running)
        stopping = reactor.seconds()
        server.signal(signal.SIGTERM)
        yield server.ended
        self.assertLess(reactor.seconds() - stopping, 3)
        self.assertIn(b"during shutdown: closing all connections now", server.out)


class Counter(Int32StringReceiver):
    """
    A lean client for load: it counts message events and hashes their bytes
    in order, so that identical order and content are cheap to compare, and
    it catches up with resume when the server says it lagged.

    It reads seq from the end of each event's bytes, where the server puts
    it, instead of decoding every event.
    """

    MAX_LENGTH = wire.DEFAULT_MAX_FRAME

    def __init__(self, expected, waiter):
        self.expected = expected
        self.waiter = waiter
        self.count = 0
        self.digest = hashlib.sha256()
        self.welcomed = defer.Deferred()
        self.lost = defer.Deferred()
        self.last_seq = None
        self.session = None
        self.lags = 0

    def connectionMade(self):
        self.sendString(b'{"type":"heartbeat"}')

    def stringReceived(self, payload):
        if payload.startswith(b'{"type":"welcome"'):
            welcome = wire.decode(payload)
            self.session, self.last_seq = welcome["session"], welcome["seq"]
            self.welcomed.callback(self)
            return
        if payload.startswith(b'{"type":"lagged"'):
            self.lags += 1
            self.sendString(
                wire.encode({"type": "resume", "session": self.session, "last_seq": self.last_seq})
            )
            return
        if not payload.endswith(b"}") or b'"seq":' not in payload[-24:]:
            return
        seq = int(payload[payload.rindex(b'"seq":') + 6 : -1])
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        self.on_event(payload)

    def on_event(self, payload):
        if payload.startswith(b'{"type":"message"'):
            self.count += 1
            self.digest.update(payload)
            if self.count == self.expected:
                self.waiter.check()

    def connectionLost(self, reason):
        self.lost.callback(None)


class DecodingCounter(Counter):
    """
    A L{Counter} that also decodes every event, to check seq and the order
    of each sender's messages.
    """

    def __init__(self, expected, waiter):
        super().__init__(expected, waiter)
        self.seqs = []
        self.by_sender = {}

    def on_event(self, payload):
        message = wire.decode(payload)
        self.seqs.append(message["seq"])
        if message["type"] == "message":
            self.by_sender.setdefault(message["from"], []).append(message["text"])
        super().on_event(payload)


class StressTests(LoopbackMixin, TestCase):
    """
    Many clients, many senders: everyone sees everything, in one order.
    """

    timeout = 300

    @defer.inlineCallbacks
    def test_500_clients_100_senders(self):
        """
        500 clients, 100 of which send 20 messages each: every client
        receives all 2000 messages, byte for byte the same and in the same
        order, with seq gap-free.
        """
        clients_count, senders, per_sender = 500, 100, 20
        expected = senders * per_sender
        # (500 connections from 127.0.0.1: no --max-per-ip.)
        server, port = yield self.spawn_twistd(
            "--heartbeat-interval", "30", "--timeout", "120", "--backlog", "4096",
            "--max-per-ip", "0",
        )
        waiter = Waiter()
        clients = []
        for i in range(clients_count):
            kind = DecodingCounter if i == clients_count - 1 else Counter
            client = kind(expected, waiter)
            yield self.connect_raw(port, client)
            clients.append(client)
            if i % 50 == 0:
                yield sleep(0)
        yield defer.gatherResults([c.welcomed for c in clients])
        for n, client in enumerate(clients[:senders]):
            client.transport.write(
                b"".join(message_frame("sender %d message %d" % (n, k)) for k in range(per_sender))
            )
        yield waiter.wait_until(lambda: all(c.count >= expected for c in clients))
        self.assertEqual({c.count for c in clients}, {expected})
        self.assertEqual(len({c.digest.hexdigest() for c in clients}), 1)
        # The last client decoded everything: seq is gap-free, and each
        # sender's messages arrived in the order sent.
        seqs = clients[-1].seqs
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        by_sender = clients[-1].by_sender
        self.assertEqual(len(by_sender), senders)
        for texts in by_sender.values():
            numbers = [int(text.rsplit(" ", 1)[1]) for text in texts]
            self.assertEqual(numbers, list(range(per_sender)))
        for client in clients:
            client.transport.loseConnection()
        yield defer.gatherResults([c.lost for c in clients])
        self.assertNotIn(b"Traceback", server.out + server.err)
