"""
The in-memory server harness: frame parsing, and a server on a L{Clock}
with connections on L{StringTransport}s.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from twisted_chat import wire
from twisted_chat.server import ChatServerFactory


def parse_frames(data):
    """
    Split bytes into complete frames and decode each; fail on leftovers.
    """
    messages = []
    while data:
        if len(data) < 4:
            raise AssertionError("truncated length prefix: %r" % (data,))
        (length,) = wire.PREFIX.unpack_from(data)
        payload, data = data[4 : 4 + length], data[4 + length :]
        if len(payload) != length:
            raise AssertionError("truncated frame")
        messages.append(wire.decode(payload))
    return messages


def frame(**message):
    """
    Frame bytes for a message given as keyword arguments.
    """
    return wire.encode_frame(message)


class ServerMixin:
    """
    A L{ChatServerFactory} on a L{Clock}, with connections on
    L{StringTransport}s.  Mix into a trial TestCase.
    """

    #: The server's heartbeat interval and timeout.  Not C{timeout}: that
    #: is trial's per-test time limit on L{TestCase}.
    interval = 10.0
    server_timeout = 30.0

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.factory = self.make_factory()

    def make_factory(self, **kwargs):
        """
        A L{ChatServerFactory} on this test's clock; C{kwargs} are its
        settings, over this mixin's interval and timeout.
        """
        kwargs.setdefault("heartbeat_interval", self.interval)
        kwargs.setdefault("timeout", self.server_timeout)
        return ChatServerFactory(clock=self.clock, **kwargs)

    def connect(self, port=40000, join=True, host="127.0.0.1"):
        """
        Connect a new client.

        @param join: send a first frame (a heartbeat), as clients do, so the
            connection joins the room at once; otherwise it stays pending.
        @return: the server protocol and its transport.
        """
        address = IPv4Address("TCP", host, port)
        protocol = self.factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        if join:
            protocol.dataReceived(frame(type="heartbeat"))
        return protocol, transport

    def connect_many(self, count):
        """
        Connect C{count} clients and discard what they were sent so far.
        """
        pairs = [self.connect(40000 + i) for i in range(count)]
        for _, transport in pairs:
            transport.clear()
        return pairs

    def received(self, transport):
        """
        The messages written to C{transport} since last asked; clears it.
        """
        messages = parse_frames(transport.value())
        transport.clear()
        return messages

    def send(self, protocol, **message):
        """
        Deliver one frame to the server protocol.
        """
        protocol.dataReceived(frame(**message))

    def lose(self, protocol, exception=ConnectionDone):
        """
        End a connection the way the reactor does, with C{exception}.
        """
        protocol.connectionLost(Failure(exception()))
