# -*- test-case-name: tests.unit.test_metrics,tests.system.test_metrics -*-
"""
What the server counts, and its Prometheus exposition (C{--metrics}).

The server counts in plain integers on a L{Stats} (an addition per frame or
per write, nothing more on the hot path); L{StatsCollector} turns them into
Prometheus metrics only when scraped.  prometheus_client is needed only for
C{--metrics} (the C{metrics} extra).
"""

from bisect import bisect_left
from collections import Counter

#: Upper bounds, in seconds, of the heartbeat round-trip histogram.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Upper bounds, in seconds, of the histogram of how long after its last
#: frame a silent peer was expired (the timeout, plus timer lateness).
EXPIRY_BUCKETS = (1.0, 5.0, 10.0, 15.0, 20.0, 30.0, 31.0, 35.0, 45.0, 60.0, 120.0)


class Histogram:
    """
    Counts of observations per bucket, and their sum.
    """

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self):
        """
        (upper bound, observations at or below it) pairs, ending with +Inf,
        as Prometheus wants them.
        """
        total, pairs = 0, []
        for bound, count in zip(self.bounds, self.counts):
            total += count
            pairs.append((repr(bound), total))
        pairs.append(("+Inf", total + self.counts[-1]))
        return pairs


class Stats:
    """
    The server's counters.  The factory owns one; protocols and the room add
    to it.
    """

    def __init__(self):
        self.connections = 0
        self.connections_max = 0
        self.frames_in = 0
        self.bytes_in = 0
        self.writes_out = 0
        self.bytes_out = 0
        self.replies = 0
        self.events = 0
        self.deliveries = 0
        self.rate_limited = 0
        self.sendq_high_water = 0
        self.leaves = Counter()
        self.errors = Counter()
        self.heartbeat_rtt = Histogram(RTT_BUCKETS)
        self.expiry_delay = Histogram(EXPIRY_BUCKETS)

    def connected(self, count):
        self.connections = count
        if count > self.connections_max:
            self.connections_max = count


class StatsCollector:
    """
    A prometheus_client collector reading a L{Stats} at each scrape.
    """

    def __init__(self, stats):
        self.stats = stats

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        s = self.stats
        prefix = "twisted_chat_"

        def counter(name, doc, value):
            return CounterMetricFamily(prefix + name, doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(prefix + name, doc, value=value)

        yield gauge("connections", "Connections open now.", s.connections)
        yield gauge("connections_max", "Most connections open at once since start.",
                    s.connections_max)
        yield counter("frames_in", "Frames received from clients.", s.frames_in)
        yield counter("bytes_in", "Bytes of frames received, prefixes included.", s.bytes_in)
        yield counter("frames_out", "Frames sent to clients: event frames and replies.",
                      s.deliveries + s.replies)
        yield counter("writes_out", "Writes to clients (one or more frames each).",
                      s.writes_out)
        yield counter("bytes_out", "Bytes written to clients.", s.bytes_out)
        yield counter("events", "Events broadcast to the room.", s.events)
        yield counter("deliveries", "Event frames sent to clients.", s.deliveries)
        yield counter("rate_limited", "Frames refused by flood control.", s.rate_limited)
        yield gauge("sendq_high_water_bytes",
                    "Most bytes ever queued for one client.", s.sendq_high_water)
        leaves = CounterMetricFamily(prefix + "leaves", "Clients that left, by reason.",
                                     labels=["reason"])
        for reason, count in sorted(s.leaves.items()):
            leaves.add_metric([reason], count)
        yield leaves
        errors = CounterMetricFamily(prefix + "errors", "Error frames sent, by code.",
                                     labels=["code"])
        for code, count in sorted(s.errors.items()):
            errors.add_metric([code], count)
        yield errors
        for name, doc, histogram in [
            ("heartbeat_rtt_seconds",
             "Heartbeat round trips clients measured (the rtt of their heartbeats).",
             s.heartbeat_rtt),
            ("expiry_delay_seconds",
             "Seconds from a silent client's last frame to its expiry.",
             s.expiry_delay),
        ]:
            yield HistogramMetricFamily(
                prefix + name, doc, buckets=histogram.cumulative(), sum_value=histogram.sum)


def metrics_site(stats):
    """
    A twisted.web site serving C{stats} in Prometheus text format on every
    path.

    (prometheus_client's own MetricsResource runs its WSGI app in the
    reactor's thread pool; rendering the text is quick, so this does it on
    the reactor thread, where the counters live.)
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(stats))

    class Metrics(Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
            return generate_latest(registry)

    site = Site(Metrics())
    site.noisy = False
    return site
