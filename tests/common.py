"""
Helpers shared by the tests: frame parsing and an in-memory server harness.
"""

import os
import shutil
import tempfile

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import twisted_chat
from twisted_chat import wire
from twisted_chat.server import ChatServerFactory

#: The checkout (or install) the tests import twisted_chat from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(twisted_chat.__file__)))


def child_env():
    """
    The environment for a child Python: this one, with the code under test
    first on its path (trial runs tests from _trial_temp, so a relative
    path would point elsewhere).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def temp_dir(case, prefix="twisted-chat-test-"):
    """
    A new directory for C{case}, removed with all in it when C{case} cleans
    up, whether it passed or failed.

    Not C{case.mktemp()}: that is relative to the current directory, which
    is _trial_temp under trial but the checkout under pytest, and nothing
    removes it after the test.

    @return: its absolute path.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    case.addCleanup(shutil.rmtree, path)
    return path


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

    interval = 10.0
    timeout = 30.0

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.factory = self.make_factory()

    def make_factory(self, **kwargs):
        kwargs.setdefault("heartbeat_interval", self.interval)
        kwargs.setdefault("timeout", self.timeout)
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
