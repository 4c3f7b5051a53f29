"""
Tests for L{twisted_chat.net}.
"""

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.net import format_host_port, format_peer, no_delay


class NoDelayTests(SynchronousTestCase):
    """
    L{no_delay}.
    """

    def test_tcp(self):
        """
        On a TCP transport, Nagle's algorithm is turned off.
        """
        calls = []
        transport = StringTransport()
        transport.setTcpNoDelay = calls.append
        no_delay(transport)
        self.assertEqual(calls, [True])

    def test_not_tcp(self):
        """
        Other transports are left alone.
        """
        no_delay(StringTransport())

    def test_socket_gone(self):
        """
        A socket that cannot take the option any more is left alone too.
        """
        transport = StringTransport()

        def refuse(value):
            raise OSError("bad file descriptor")

        transport.setTcpNoDelay = refuse
        no_delay(transport)


class FormatTests(SynchronousTestCase):
    """
    L{format_host_port} and L{format_peer}: one way to write an address.
    """

    def test_host_port(self):
        """
        host:port, with IPv6 addresses in brackets.
        """
        self.assertEqual(format_host_port("127.0.0.1", 56562), "127.0.0.1:56562")
        self.assertEqual(format_host_port("localhost", 1), "localhost:1")
        self.assertEqual(format_host_port("::1", 56562), "[::1]:56562")

    def test_peer(self):
        """
        A transport address is written the same way; one without a host and
        port as it says itself.
        """
        self.assertEqual(format_peer(IPv4Address("TCP", "10.0.0.1", 4000)), "10.0.0.1:4000")
        self.assertEqual(format_peer(IPv6Address("TCP", "::1", 4000)), "[::1]:4000")
        unix = UNIXAddress("/run/chat.sock")
        self.assertEqual(format_peer(unix), str(unix))
