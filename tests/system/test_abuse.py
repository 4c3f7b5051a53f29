"""
One bad host on real loopback sockets (127.0.0.x): half-sent frames, name
churn and join/part churn.  The same limits on a L{Clock}:
tests/unit/test_abuse.py; the numbers: benchmarks/abuse.py.

Every test is bounded in time and traffic, and stops by itself.
"""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from twisted_chat import heap, wire
from twisted_chat.bench.servers import resident_mib
from tests.helpers.loopback import LoopbackMixin, RawClient
from tests.helpers.waiting import poll, sleep


class HalfSender(RawClient):
    """
    Sends a frame header for 65536 bytes and all of the body but its last
    byte, then nothing; collects what the server says.
    """

    def connectionMade(self):
        self.transport.write(wire.PREFIX.pack(65536) + b"x" * 65535)

    def stringReceived(self, payload):
        """
        Collect the welcome and errors only.  L{Int32StringReceiver} API.
        """
        if payload.startswith((b'{"type":"error"', b'{"type":"welcome"')):
            super().stringReceived(payload)


def send(client, **message):
    client.sendString(wire.encode(message))


def answered(client, request_id):
    """
    A Deferred that fires once C{client} has the reply to its frame
    C{request_id}: everything sent to it before that reply is in.
    """
    return client.waiter.wait_until(
        lambda: any(m.get("id") == request_id for m in client.messages))


class AbuseMixin(LoopbackMixin):
    """
    Raw clients from any loopback address, cleaned up.
    """

    def connect_from(self, port, protocol, source="127.0.0.1"):
        """
        Connect C{protocol} to 127.0.0.1:C{port} from C{source}
        (L{LoopbackMixin.connect_raw}).
        """
        return self.connect_raw(port, protocol, source)

    @defer.inlineCallbacks
    def member(self, port, *rooms):
        """
        A joined L{RawClient}, also in C{rooms}; its name is C{name}.
        """
        client = yield self.connect_from(port, RawClient())
        (welcome,) = yield client.wait_for_type("welcome")
        client.name = welcome["name"]
        send(client, type="heartbeat")
        for room in rooms:
            send(client, type="join", room=room, id="join " + room)
            yield answered(client, "join " + room)
        return client


class HalfSentFrameTests(AbuseMixin, TestCase):
    """
    Hundreds of connections each holding all of a 64 KiB frame but its
    last byte.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_half_sent_frames(self):
        """
        300 half-sent 64 KiB frames cost about --read-budget, and only for a while.
        """
        # (Presence off past 10 members, so that the attackers' joins do not
        # keep this process busy; frames time out after the test.)
        server, port = yield self.spawn_twistd(
            "--max-per-ip", "0", "--read-budget", "6MiB", "--heartbeat-interval", "5",
            "--timeout", "60", "--frame-timeout", "60", "--presence-limit", "10")
        observer = yield self.member(port)
        talker = yield self.member(port)
        yield sleep(0.5)
        before = resident_mib(server.transport.pid)
        attackers = [HalfSender() for _ in range(300)]
        yield defer.gatherResults([
            self.connect_from(port, attacker, "127.0.0.%d" % (2 + i % 10,))
            for i, attacker in enumerate(attackers)])
        for i in range(20):
            send(talker, type="message", text="through %d" % (i,))
            yield sleep(0.02)
        yield poll(lambda: len([m for m in observer.messages
                                if m.get("text", "").startswith("through")]) == 20)

        def dropped():
            return [a for a in attackers if a.lost.called]

        # Those past the budget are dropped: it holds 96 frames at most,
        # and about 84 after dropping (7/8 of it).
        yield poll(lambda: len(dropped()) >= 200)
        during = resident_mib(server.transport.pid)
        texts = [m["text"] for m in observer.messages if m["type"] == "message"]
        self.assertEqual(texts, ["through %d" % (i,) for i in range(20)])
        # All 19 MiB held would grow it by 20 MiB and more.
        self.assertLess(during - before, 12, (before, during))
        yield sleep(0.5)
        self.assertLessEqual(len(dropped()), 300 - 80)
        # Each is told why, unless the rest of its frame was still on the
        # way: closing with bytes unread resets the connection.
        codes = [m["code"] for a in attackers for m in a.messages if m["type"] == "error"]
        self.assertEqual(set(codes), {"frame_timeout"})
        for attacker in attackers:
            attacker.transport.abortConnection()
        yield defer.gatherResults([a.lost for a in attackers])
        if heap.can_trim():
            yield server.wait_for(rb"a burst of unfinished frames is over")
            yield sleep(0.2)
            after = resident_mib(server.transport.pid)
            self.assertLess(after - before, 4, (before, during, after))
        self.assertNotIn(b"Traceback", server.out + server.err)


class ChurnTests(AbuseMixin, TestCase):
    """
    A client that renames itself, or parts and joins a room, in a loop.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_name_churn(self):
        """
        60 renames in a burst: the room sees 5, the rest are rate_limited.
        """
        server = yield self.start_server()
        observer = yield self.member(server.port)
        churner = yield self.member(server.port)
        for i in range(60):
            send(churner, type="nick", name="churn%d" % (i,))
        send(churner, type="who", id="done")
        yield answered(churner, "done")
        send(observer, type="heartbeat", id="done")
        yield answered(observer, "done")
        renames = [m["new"] for m in observer.messages if m["type"] == "nick"]
        self.assertEqual(renames, ["churn%d" % (i,) for i in range(5)])
        codes = [m["code"] for m in churner.messages if m["type"] == "error"]
        self.assertEqual(codes, ["rate_limited"] * 55)

    @defer.inlineCallbacks
    def test_join_part_churn(self):
        """
        60 part/join cycles: the room sees about two dozen events.
        """
        server = yield self.start_server()
        observer = yield self.member(server.port, "churn")
        churner = yield self.member(server.port, "churn")
        yield observer.waiter.wait_until(lambda: any(
            m["type"] == "join" and m["name"] == churner.name and m.get("room") == "churn"
            for m in observer.messages))
        observer.messages.clear()
        for _ in range(60):
            send(churner, type="part", room="churn")
            send(churner, type="join", room="churn")
        send(churner, type="who", id="done")
        yield answered(churner, "done")
        send(observer, type="heartbeat", id="done")
        yield answered(observer, "done")
        events = [(m["type"], m["name"]) for m in observer.messages
                  if m["type"] in ("join", "leave") and m.get("room") == "churn"]
        self.assertLessEqual(len(events), 26, events)
        self.assertGreaterEqual(len(events), 20, events)
        # Its own, alternating, starting with its leave.
        self.assertEqual(events, [("leave", churner.name), ("join", churner.name)] * (
            len(events) // 2) + [("leave", churner.name)] * (len(events) % 2))
        codes = {m["code"] for m in churner.messages if m["type"] == "error"}
        self.assertIn("rate_limited", codes)
        self.assertLessEqual(codes, {"rate_limited", "not_in_room"})
