"""
The server's counters (L{twisted_chat.metrics.Stats}) and the C{--metrics}
option (their Prometheus exposition on loopback:
tests/system/test_metrics.py).
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers.memory import ServerMixin
from twisted_chat import wire
from twisted_chat.metrics import Histogram


class HistogramTests(SynchronousTestCase):
    def test_buckets(self):
        """
        A histogram counts each value in its bucket and those above, and sums them.
        """
        histogram = Histogram((1.0, 2.0))
        for value in (0.5, 1.0, 1.5, 3.0):
            histogram.observe(value)
        self.assertEqual(histogram.cumulative(), [("1.0", 2), ("2.0", 3), ("+Inf", 4)])
        self.assertEqual(histogram.sum, 6.0)


class StatsTests(ServerMixin, SynchronousTestCase):
    """
    What the server counts, on a Clock and StringTransports.
    """

    def test_counts(self):
        """
        Connections, frames, errors, heartbeat round trips and deliveries are counted.
        """
        stats = self.factory.stats
        (a, ta), (b, tb) = self.connect(40001), self.connect(40002)
        self.assertEqual((stats.connections, stats.connections_max), (2, 2))
        self.send(a, type="message", text="hello")
        self.send(a, type="nick", name="bad name")
        self.send(b, type="heartbeat", ts=1.0, rtt=0.02)
        self.assertEqual(stats.frames_in, 5)  # two first heartbeats, then three
        self.assertEqual(stats.errors[wire.BAD_NICK], 1)
        self.assertEqual(stats.heartbeat_rtt.counts[4], 1)  # in (0.01, 0.025]
        # Two joins (the first seen by one member, the second by two) and a
        # message seen by two: five event frames out.
        self.assertEqual(stats.events, 3)
        self.assertEqual(stats.deliveries, 5)
        # Two welcomes, three heartbeat acks and an error.
        self.assertEqual(stats.replies, 6)
        self.assertEqual(stats.bytes_out, len(ta.value()) + len(tb.value()))
        self.assertGreater(stats.writes_out, 0)
        self.lose(b)
        self.assertEqual((stats.connections, stats.connections_max), (1, 2))
        self.assertEqual(stats.leaves, {wire.REASON_EOF: 1})

    def test_rate_limited(self):
        """
        Each refusal by flood control is counted, as an error too.
        """
        factory = self.make_factory(rate=1.0, burst=1)
        self.factory = factory
        protocol, _ = self.connect()
        for _ in range(3):
            self.send(protocol, type="message", text="x")
        self.assertEqual(factory.stats.rate_limited, 2)
        self.assertEqual(factory.stats.errors[wire.RATE_LIMITED], 2)

    def test_expiry_delay(self):
        """
        A timeout is counted as a leave, with the silence it waited for.
        """
        protocol, _ = self.connect()
        self.clock.advance(5)
        self.send(protocol, type="heartbeat")
        self.clock.advance(self.server_timeout)
        self.lose(protocol)
        self.assertEqual(self.factory.stats.leaves, {wire.REASON_TIMEOUT: 1})
        self.assertEqual(self.factory.stats.expiry_delay.sum, self.server_timeout)

    def test_nonsense_rtt_ignored(self):
        """
        A round trip that is negative, not a number or absurd is not counted.
        """
        protocol, _ = self.connect()
        for rtt in (-1, "1", True, 1e9):
            self.send(protocol, type="heartbeat", rtt=rtt)
        self.assertEqual(sum(self.factory.stats.heartbeat_rtt.counts), 0)
