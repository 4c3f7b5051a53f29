"""
Tests for what one bad host can make the server hold: the read budget
(L{twisted_chat.readbudget}), the frame deadline (C{--frame-timeout}) and
the heap trim after a burst (L{twisted_chat.heap}), on a L{Clock} with
connections on L{StringTransport}s.  The same attacks on real sockets:
tests/system/test_abuse.py.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionAborted
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import heap, wire
from twisted_chat.readbudget import ReadBudget
from twisted_chat.room.memory import MemoryStore
from twisted_chat.settings import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_READ_BUDGET,
    TRIM_AFTER,
    TRIM_DELAY,
    ServerSettings,
)
from tests.helpers.memory import ServerMixin, frame

MiB = 1024 * 1024


def half_frame(size, sent):
    """
    The first C{sent} bytes (length prefix included) of a frame whose
    payload is C{size} bytes.
    """
    return (wire.PREFIX.pack(size) + b"x" * size)[:sent]


class ReadBudgetTests(SynchronousTestCase):
    """
    L{ReadBudget} on its own: totals, which holders it sheds, and when a
    burst is over.
    """

    def setUp(self):
        self.ended = []
        self.budget = ReadBudget(1000, self.ended.append)

    def test_counts_deltas(self):
        """
        Each report replaces its holder's last one in the total.
        """
        budget = self.budget
        self.assertEqual(budget.hold("a", 300), ())
        self.assertEqual(budget.hold("b", 200), ())
        self.assertEqual(budget.hold("a", 100), ())
        self.assertEqual((budget.total, len(budget), budget.held_by("a")), (300, 2, 100))
        budget.release("a")
        budget.hold("b", 0)
        self.assertEqual((budget.total, len(budget), budget.held_by("a")), (0, 0, 0))

    def test_within_limit(self):
        """
        A total of exactly the limit sheds nothing.
        """
        self.budget.hold("a", 600)
        self.assertEqual(self.budget.hold("b", 400), ())
        self.assertEqual(self.budget.total, 1000)

    def test_sheds_largest_first(self):
        """
        Past the limit the largest are shed, largest first, down to 7/8 of it.
        """
        budget = self.budget
        for holder, held in [("a", 300), ("b", 350), ("c", 10), ("d", 250)]:
            self.assertEqual(budget.hold(holder, held), ())
        self.assertEqual(budget.hold("e", 100), [("b", 350)])
        self.assertEqual((budget.total, budget.held_by("b")), (660, 0))
        self.assertEqual(budget.hold("f", 400), [("f", 400)])
        self.assertEqual(budget.hold("g", 300), ())
        self.assertEqual(budget.hold("h", 300), [("a", 300), ("g", 300)])
        self.assertEqual(budget.total, 660)
        budget.release("b")
        self.assertEqual(budget.total, 660)

    def test_burst_ended(self):
        """
        A total of TRIM_AFTER that falls under a quarter of it ends a burst, once.
        """
        budget = ReadBudget(DEFAULT_READ_BUDGET, self.ended.append)
        budget.hold("a", TRIM_AFTER - MiB)
        budget.hold("b", MiB)
        budget.hold("c", MiB // 2)
        budget.release("a")
        self.assertEqual(self.ended, [])
        budget.release("b")
        self.assertEqual(self.ended, [TRIM_AFTER + MiB // 2])
        budget.hold("d", MiB)
        budget.release("d")
        self.assertEqual(self.ended, [TRIM_AFTER + MiB // 2])

    def test_small_peak_is_no_burst(self):
        """
        A total that never reached TRIM_AFTER ends no burst.
        """
        budget = ReadBudget(DEFAULT_READ_BUDGET, self.ended.append)
        budget.hold("a", TRIM_AFTER - 1)
        budget.release("a")
        self.assertEqual(self.ended, [])


class BudgetMixin(ServerMixin):
    """
    A server with a small read budget, an observer (bob) and a talker
    (alice).
    """

    budget = 200000

    def setUp(self):
        super().setUp()
        self.factory = self.make_factory(read_budget=self.budget, max_per_ip=0)
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)

    def attacker(self, sent, size=65536):
        """
        A new connection that has sent the first C{sent} bytes of a frame of
        C{size} bytes.
        """
        protocol, transport = self.connect(port=50000 + len(self.factory.connections))
        transport.clear()
        protocol.dataReceived(half_frame(size, sent))
        return protocol, transport

    def assertDropped(self, protocol, transport, held):
        """
        C{protocol} was sent frame_timeout for the C{held} bytes it held,
        as its last frame, is closing, and holds nothing any more.
        """
        messages = self.received(transport)
        (error,) = [m for m in messages if m["type"] == "error"]
        self.assertIs(error, messages[-1])
        self.assertEqual(error["code"], "frame_timeout")
        self.assertIn("(%d bytes so far)" % (held,), error["message"])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.factory.read_budget.held_by(protocol), 0)
        self.assertEqual(protocol._unprocessed, b"")
        self.assertIsNone(protocol._gathering)


class BudgetTests(BudgetMixin, SynchronousTestCase):
    """
    The server-wide budget of bytes held in unfinished frames.
    """

    def test_counted(self):
        """
        Every held byte counts, buffered or gathered, and none once whole.
        """
        small, _ = self.attacker(100, size=1000)
        large, _ = self.attacker(30000)
        large.dataReceived(b"x" * 10000)
        budget = self.factory.read_budget
        self.assertEqual((budget.held_by(small), budget.held_by(large)), (100, 40000))
        self.assertEqual(budget.total, 40100)
        self.assertIsInstance(large._gathering, list)
        small.dataReceived(b"y" * 904)
        self.assertEqual((budget.held_by(small), budget.total), (0, 40000))

    def test_largest_dropped(self):
        """
        Past the budget the largest holders are dropped until it is 7/8 full.
        """
        first, first_t = self.attacker(65539)
        second, second_t = self.attacker(20000)
        third, third_t = self.attacker(50000)
        small, small_t = self.attacker(100, size=1000)
        self.assertEqual(self.factory.read_budget.total, 135639)
        fourth, fourth_t = self.attacker(65000)
        self.assertDropped(first, first_t, 65539)
        for transport in [second_t, third_t, small_t, fourth_t]:
            self.assertFalse(transport.disconnecting)
        self.assertEqual(self.factory.read_budget.total, 135100)
        small.dataReceived(b"y" * 904)
        self.assertEqual(self.received(small_t)[-1]["code"], "bad_frame")

    def test_whole_frames_flow(self):
        """
        While the budget is full, other frames flow, every event once, in order.
        """
        for _ in range(10):
            self.attacker(65539)
        self.received(self.bob_t)
        data = b"".join(frame(type="message", text="m%d" % (i,)) for i in range(20))
        self.alice.dataReceived(data[:37])
        self.alice.dataReceived(data[37:])
        events = self.received(self.bob_t)
        messages = [e for e in events if e["type"] == "message"]
        self.assertEqual([m["text"] for m in messages], ["m%d" % (i,) for i in range(20)])
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertFalse(self.alice_t.disconnecting)

    def test_leave_reason_error(self):
        """
        A connection dropped by the budget leaves with reason error.
        """
        protocol, _ = self.attacker(65539)
        for _ in range(3):
            self.attacker(65539)
        self.assertTrue(protocol.transport.disconnecting)
        self.received(self.bob_t)
        self.lose(protocol, ConnectionAborted)
        (leave,) = self.received(self.bob_t)
        self.assertEqual((leave["type"], leave["name"], leave["reason"]),
                         ("leave", protocol.name, "error"))

    def test_logged(self):
        """
        Each pass over the budget is logged once: limit, count, bytes.
        """
        for _ in range(3):
            self.attacker(65539)
        with capturedLogs() as events:
            self.attacker(65539)
        (event,) = [e for e in events if "read budget" in e["log_format"]]
        self.assertEqual((event["limit"], event["count"], event["total"]),
                         (self.budget, 2, 131078))

    def test_released_when_lost(self):
        """
        A connection lost mid-frame holds nothing and leaves no timer.
        """
        protocol, _ = self.attacker(30000)
        self.lose(protocol, ConnectionAborted)
        self.assertEqual((self.factory.read_budget.total, len(self.factory.read_budget)), (0, 0))
        self.assertEqual(protocol._gathering, None)
        self.lose(self.alice)
        self.lose(self.bob)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_released_when_aborted(self):
        """
        An aborted connection frees its unfinished frame before it is lost.
        """
        self.alice.dataReceived(half_frame(30000, 20000))
        self.assertEqual(self.factory.read_budget.total, 20000)
        self.alice.abort(wire.REASON_SENDQ)
        self.assertEqual(self.factory.read_budget.total, 0)
        self.assertIsNone(self.alice._gathering)
        self.assertEqual(self.alice._unprocessed, b"")

    def test_released_when_closed(self):
        """
        An unfinished frame behind a quit is freed at once.
        """
        self.alice.dataReceived(frame(type="quit") + half_frame(30000, 20000))
        self.assertTrue(self.alice_t.disconnecting)
        self.assertEqual(self.factory.read_budget.total, 0)
        self.assertEqual(self.alice._unprocessed, b"")


class ReaderDroppedTests(BudgetMixin, SynchronousTestCase):
    """
    The connection whose own read takes the budget over.
    """

    budget = 150000

    def test_reader_dropped(self):
        """
        It is dropped with the others when it holds the most.
        """
        first, first_t = self.attacker(60000)
        reader, reader_t = self.attacker(4)
        self.attacker(60000)
        reader.dataReceived(b"x" * 65535)
        self.assertDropped(reader, reader_t, 65539)
        self.assertFalse(first_t.disconnecting)


class FrameTimeoutTests(ServerMixin, SynchronousTestCase):
    """
    --frame-timeout: a frame must be complete within it of its first byte.
    """

    epsilon = 2**-10

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)
        self.bob.setTimeout(None)

    def assertDropped(self):
        (error,) = [m for m in self.received(self.alice_t) if m["type"] == "error"]
        self.assertEqual(error, {
            "type": "error", "code": "frame_timeout",
            "message": "a frame must be complete within 10 s of its first byte"})
        self.assertTrue(self.alice_t.disconnecting)
        self.lose(self.alice, ConnectionAborted)
        leaves = [m for m in self.received(self.bob_t) if m["type"] == "leave"]
        self.assertEqual([m["reason"] for m in leaves], ["error"])
        self.assertEqual(self.factory.read_budget.total, 0)

    def test_default(self):
        """
        The deadline is 10 s, or the timeout if that is shorter.
        """
        self.assertEqual(self.factory.frame_timeout, DEFAULT_FRAME_TIMEOUT)
        self.assertEqual(ServerSettings().frame_timeout, 10.0)
        short = self.make_factory(heartbeat_interval=1.0, timeout=4.0)
        self.assertEqual(short.frame_timeout, 4.0)
        self.assertEqual(self.make_factory(frame_timeout=2.5).frame_timeout, 2.5)

    def test_unfinished_frame_dropped(self):
        """
        A frame unfinished frame_timeout after its first byte drops the client.
        """
        self.clock.advance(3)
        self.alice.dataReceived(frame(type="heartbeat")[:5])
        self.clock.advance(DEFAULT_FRAME_TIMEOUT - self.epsilon)
        self.assertFalse(self.alice_t.disconnecting)
        self.clock.advance(self.epsilon)
        self.assertDropped()

    def test_trickle_keeps_no_frame_alive(self):
        """
        A byte a second does not extend the deadline.
        """
        data = frame(type="message", text="x" * 100)
        for i in range(int(DEFAULT_FRAME_TIMEOUT)):
            self.alice.dataReceived(data[i:i + 1])
            self.clock.advance(1)
        self.assertDropped()

    def test_large_frame_trickled(self):
        """
        A large frame being gathered has the same deadline.
        """
        data = frame(type="message", text="x" * 5000)
        self.alice.dataReceived(data[:5000])
        self.assertIsInstance(self.alice._gathering, list)
        self.clock.advance(DEFAULT_FRAME_TIMEOUT - 1)
        self.alice.dataReceived(data[5000:5001])
        self.clock.advance(1)
        self.assertDropped()

    def test_each_frame_its_own_deadline(self):
        """
        Reads ending mid-frame are fine while each frame completes in time.
        """
        data = b"".join(frame(type="message", text="m%d" % (i,)) for i in range(6))
        cut = len(frame(type="message", text="m0")) // 2
        self.alice.dataReceived(data[:cut])
        step = len(data) // 6
        for i in range(5):
            self.clock.advance(DEFAULT_FRAME_TIMEOUT - 1)
            self.alice.dataReceived(data[cut + i * step:cut + (i + 1) * step])
        self.assertFalse(self.alice_t.disconnecting)
        texts = [m["text"] for m in self.received(self.bob_t) if m["type"] == "message"]
        self.assertEqual(texts, ["m%d" % (i,) for i in range(5)])

    def test_whole_frames_start_no_timer(self):
        """
        Frames that arrive whole hold nothing and start no timer.
        """
        calls = len(self.clock.getDelayedCalls())
        for _ in range(3):
            self.send(self.alice, type="heartbeat")
        self.assertEqual(len(self.clock.getDelayedCalls()), calls)
        self.assertEqual(self.factory.read_budget.total, 0)

    def test_completed_frame_stops_it(self):
        """
        A frame completed in time cancels its deadline.
        """
        data = frame(type="heartbeat")
        self.alice.dataReceived(data[:3])
        self.clock.advance(DEFAULT_FRAME_TIMEOUT - 1)
        self.alice.dataReceived(data[3:])
        self.clock.advance(DEFAULT_FRAME_TIMEOUT)
        self.assertFalse(self.alice_t.disconnecting)

    def test_logged(self):
        """
        Each pass over the budget is logged once: limit, count, bytes.
        """
        self.alice.dataReceived(frame(type="heartbeat")[:7])
        with capturedLogs() as events:
            self.clock.advance(DEFAULT_FRAME_TIMEOUT)
        (event,) = [e for e in events if "is not complete" in e["log_format"]]
        self.assertEqual((event["name"], event["timeout"], event["held"]),
                         ("guest-1", 10.0, 7))

    def test_non_reader_aborted(self):
        """
        A client that does not read is aborted, not closed after its queue.
        """
        self.alice.outbox.queue.pauseProducing()
        self.send(self.bob, type="message", text="waits for alice")
        self.alice.dataReceived(frame(type="heartbeat")[:5])
        self.clock.advance(DEFAULT_FRAME_TIMEOUT)
        self.assertTrue(self.alice_t.disconnected)

    def test_no_timer_left(self):
        """
        A connection lost in the middle of a frame leaves no timer.
        """
        self.alice.dataReceived(frame(type="heartbeat")[:5])
        self.lose(self.alice)
        self.lose(self.bob)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _LaterStore(MemoryStore):
    """
    A store that, like Redis, answers a rename later.
    """

    def rename(self, client, new_name):
        self.renamed = (client, new_name)
        self.asked = defer.Deferred()
        return self.asked

    def answer(self):
        MemoryStore.rename(self, *self.renamed).chainDeferred(self.asked)


class PausedTests(ServerMixin, SynchronousTestCase):
    """
    A connection that reads nothing while the room answers it.
    """

    def test_frames_waiting_are_not_timed(self):
        """
        Frames waiting for the room's answer count but are timed only later.
        """
        self.factory = self.make_factory(store=_LaterStore())
        ((alice, alice_t), (bob, _)) = self.connect_many(2)
        bob.setTimeout(None)
        waiting = frame(type="message", text="after") + frame(type="heartbeat")[:5]
        alice.dataReceived(frame(type="nick", name="alice") + waiting)
        self.assertEqual(self.factory.read_budget.total, len(waiting))
        self.clock.advance(2 * DEFAULT_FRAME_TIMEOUT)
        self.assertFalse(alice_t.disconnecting)
        self.factory.room.store.answer()
        self.assertEqual(self.factory.read_budget.total, 5)
        self.clock.advance(DEFAULT_FRAME_TIMEOUT)
        self.assertEqual(self.received(alice_t)[-1]["code"], "frame_timeout")


class TrimTests(ServerMixin, SynchronousTestCase):
    """
    The heap is trimmed once a burst of unfinished frames is over.
    """

    def setUp(self):
        super().setUp()
        self.trims = []
        self.patch(heap, "can_trim", lambda: True)
        self.patch(heap, "trim", lambda: self.trims.append(self.clock.seconds()) or True)
        self.factory = self.make_factory(max_frame=8 * MiB, max_text=4096)

    def test_trimmed_after_burst(self):
        """
        The heap is trimmed once, TRIM_DELAY after a burst of TRIM_AFTER ends.
        """
        protocols = []
        for port in range(2):
            protocol, _ = self.connect(port=port + 1000)
            protocol.dataReceived(half_frame(4 * MiB, TRIM_AFTER // 2 + 1))
            protocols.append(protocol)
        self.assertEqual(self.factory.read_budget.total, TRIM_AFTER + 2)
        for protocol in protocols:
            self.lose(protocol, ConnectionAborted)
        with capturedLogs() as events:
            self.clock.advance(TRIM_DELAY - 2**-10)
            self.assertEqual(self.trims, [])
            self.clock.advance(2**-10)
        self.assertEqual(self.trims, [TRIM_DELAY])
        (event,) = [e for e in events if "burst" in e["log_format"]]
        self.assertEqual(event["peak"], TRIM_AFTER + 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_trim_without_burst(self):
        """
        Below TRIM_AFTER, nothing is trimmed.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(half_frame(4 * MiB, TRIM_AFTER - 1))
        self.lose(protocol, ConnectionAborted)
        self.clock.advance(TRIM_DELAY)
        self.assertEqual(self.trims, [])

    def test_stop_cancels(self):
        """
        A trim still to come is cancelled when the factory stops.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(half_frame(8 * MiB, TRIM_AFTER + 1))
        self.lose(protocol, ConnectionAborted)
        self.factory.stopFactory()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class HeapTests(SynchronousTestCase):
    """
    L{twisted_chat.heap} on this machine.
    """

    def test_trim(self):
        """
        trim calls malloc_trim(0) where there is one, else gives nothing back.
        """
        calls = []
        self.patch(heap, "_malloc_trim", lambda pad: calls.append(pad) or 1)
        self.assertEqual((heap.can_trim(), heap.trim(), calls), (True, True, [0]))
        self.patch(heap, "_malloc_trim", None)
        self.assertEqual((heap.can_trim(), heap.trim()), (False, False))

    def test_found_on_glibc(self):
        """
        On Linux with glibc, malloc_trim is found.
        """
        import platform

        if platform.libc_ver()[0] != "glibc":
            raise self.skipTest("not glibc")
        self.assertIsNotNone(heap._find_malloc_trim())
