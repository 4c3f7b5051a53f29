"""
The metrics site on loopback, scraped over HTTP (the counters themselves:
tests/unit/test_metrics.py).
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseDone

from tests.helpers.loopback import LoopbackMixin

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
