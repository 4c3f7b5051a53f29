"""
The server's counters (L{twisted_chat.metrics.Stats}) and their Prometheus
exposition (C{--metrics}).
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ResponseDone

from tests.helpers.memory import ServerMixin
from tests.helpers.loopback import LoopbackMixin
from twisted_chat import wire
from twisted_chat.metrics import Histogram

try:
    import prometheus_client  # noqa: F401
except ImportError:  # pragma: no cover
    prometheus_client = None


class BodyReader(Protocol):
    """
    Collects a response's whole body: give it to C{IResponse.deliverBody}.

    Not twisted.web.client.readBody: an Agent's response delivers its body
    through a transport without abortConnection (a TransportProxyProducer),
    so readBody warns on every call (twisted/twisted#8227).

    @ivar done: fires with the body once it is complete, and fails as
        readBody would if it is not (also when the server closes the
        connection without saying how long the body is).
    """

    def __init__(self):
        self.chunks = []
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


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


class ScrapeTests(LoopbackMixin, TestCase):
    """
    Scraping a real server's metrics over HTTP.
    """

    if prometheus_client is None:  # pragma: no cover
        skip = "prometheus_client is not installed (pip install '.[test]')"

    @defer.inlineCallbacks
    def scrape(self, port):
        from twisted.web.client import Agent

        response = yield Agent(reactor).request(
            b"GET", b"http://127.0.0.1:%d/metrics" % (port,))
        self.assertEqual(response.code, 200)
        reader = BodyReader()
        response.deliverBody(reader)
        body = yield reader.done
        samples = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    @defer.inlineCallbacks
    def test_counters_move(self):
        """
        The scraped counters start at zero and move as clients chat.
        """
        from twisted_chat.metrics import metrics_site

        server = yield self.start_server()
        metrics = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            metrics_site(server.stats))
        self.addCleanup(metrics.stopListening)
        port = metrics.getHost().port
        before = yield self.scrape(port)
        self.assertEqual(before["twisted_chat_connections"], 0)
        alice = yield self.connect_client(server.port, nick="alice")
        alice.line_received("hello")
        yield alice.transcript.wait_for("> alice: hello")
        after = yield self.scrape(port)
        self.assertEqual(after["twisted_chat_connections"], 1)
        for name in ["frames_in", "bytes_in", "frames_out", "writes_out", "bytes_out", "events",
                     "deliveries"]:
            self.assertGreater(after["twisted_chat_%s_total" % name],
                               before["twisted_chat_%s_total" % name], name)
        self.assertIn('twisted_chat_heartbeat_rtt_seconds_bucket{le="+Inf"}', after)

    def test_option(self):
        """
        --metrics adds a second service, the metrics site.
        """
        from twisted_chat import tap

        options = tap.Options()
        options.parseOptions(["--metrics", "tcp:0:interface=127.0.0.1"])
        service = tap.makeService(options, reactor=reactor)
        self.assertEqual(len(list(service)), 2)
