# -*- test-case-name: tests.unit.test_admission -*-
"""
Who may come in: the cap on connections, the cap per address, and the
login attempts each address has left.  No sockets: the server's factory
asks it about each new connection.

An IPv6 address counts as its /64, as IRC servers count them (UnrealIRCd's
C{ipv6-clone-mask}, charybdis' C{cidr_ipv6_bitlen}, both 64 by default):
one host, or one customer's network, usually has a whole /64, and could
otherwise open each connection from an address of its own.
"""

import ipaddress
from collections import Counter, OrderedDict

from twisted_chat import wire
from twisted_chat.ratelimit import TokenBucket
from twisted_chat.settings import LOGIN_ADDRESSES, LOGIN_BURST, LOGIN_INTERVAL


#: The bits of an IPv6 address that name its host for the limits per
#: address.
IPV6_PREFIX = 64


def address_key(host):
    """
    What C{host} counts as for the limits per address: an IPv4 address as
    itself (also one mapped into IPv6), an IPv6 address as its /64
    (C{"2001:db8:1:2::/64"}); anything else, such as a name, as itself.
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))


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
        key = address_key(host)
        if settings.max_per_ip and self._per_host[key] >= settings.max_per_ip:
            return wire.ProtocolError(
                wire.TOO_MANY_CONNECTIONS,
                "too many connections from %s (%d)" % (key, settings.max_per_ip),
            )
        self._per_host[key] += 1
        return None

    def connections_from(self, host):
        """
        How many admitted connections C{host} (with the rest of its IPv6
        /64) has now.
        """
        return self._per_host[address_key(host)]

    def release(self, host):
        """
        A connection from C{host} that L{refusal} let in has ended.
        """
        if host is None:
            return
        key = address_key(host)
        self._per_host[key] -= 1
        if not self._per_host[key]:
            del self._per_host[key]

    def login_bucket(self, host):
        """
        The login attempts left to C{host} (L{LOGIN_BURST}, then one every
        L{LOGIN_INTERVAL} seconds), an IPv6 address sharing them with its
        /64.  The most recent L{LOGIN_ADDRESSES} addresses are remembered.
        """
        host = address_key(host)
        buckets = self._login_buckets
        bucket = buckets.pop(host, None)
        if bucket is None:
            bucket = TokenBucket(1.0 / LOGIN_INTERVAL, LOGIN_BURST, self.clock)
            while len(buckets) >= LOGIN_ADDRESSES:
                buckets.popitem(last=False)
        buckets[host] = bucket
        return bucket
