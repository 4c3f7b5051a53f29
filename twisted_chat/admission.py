# -*- test-case-name: tests.unit.test_admission -*-
"""
Who may come in: the cap on connections, the cap per address, and the
login attempts each address has left.  No sockets: the server's factory
asks it about each new connection.
"""

from collections import Counter, OrderedDict

from twisted_chat import wire
from twisted_chat.ratelimit import TokenBucket
from twisted_chat.settings import LOGIN_ADDRESSES, LOGIN_BURST, LOGIN_INTERVAL


class Admission:
    """
    The server's door.

    @ivar settings: the L{ServerSettings} whose C{max_clients} and
        C{max_per_ip} it applies.
    """

    def __init__(self, settings, clock):
        """
        @param clock: an L{IReactorTime}, for the login buckets.
        """
        self.settings = settings
        self.clock = clock
        self._per_host = Counter()
        self._login_buckets = OrderedDict()

    def refusal(self, host, connected):
        """
        Whether a new connection from C{host} may come in, with C{connected}
        connections in already.

        @return: L{None} if it may, and it is then counted against C{host}
            until L{release}; else a L{wire.ProtocolError} to send it
            before closing.
        """
        settings = self.settings
        if connected >= settings.max_clients:
            return wire.ProtocolError(
                wire.SERVER_FULL,
                "the server is full (%d connections)" % (settings.max_clients,),
            )
        if host is None:
            return None
        if settings.max_per_ip and self._per_host[host] >= settings.max_per_ip:
            return wire.ProtocolError(
                wire.TOO_MANY_CONNECTIONS,
                "too many connections from %s (%d)" % (host, settings.max_per_ip),
            )
        self._per_host[host] += 1
        return None

    def connections_from(self, host):
        """
        How many admitted connections C{host} has now.
        """
        return self._per_host[host]

    def release(self, host):
        """
        A connection from C{host} that L{refusal} let in has ended.
        """
        if host is None:
            return
        self._per_host[host] -= 1
        if not self._per_host[host]:
            del self._per_host[host]

    def login_bucket(self, host):
        """
        The login attempts left to C{host} (L{LOGIN_BURST}, then one every
        L{LOGIN_INTERVAL} seconds).  The most recent L{LOGIN_ADDRESSES}
        addresses are remembered.
        """
        buckets = self._login_buckets
        bucket = buckets.pop(host, None)
        if bucket is None:
            bucket = TokenBucket(1.0 / LOGIN_INTERVAL, LOGIN_BURST, self.clock)
            while len(buckets) >= LOGIN_ADDRESSES:
                buckets.popitem(last=False)
        buckets[host] = bucket
        return bucket
