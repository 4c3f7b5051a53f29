"""
Canaries for the private parts of Twisted that twisted_chat relies on.

The code reads a few attributes Twisted does not promise to keep, for
measured speed-ups and for the order of the console's output, and falls
back silently when one is missing.  These tests make such a change loud:
each failure names the attribute, the Twisted version and what is lost.

- L{twisted_chat.sendq.SendQueue} sends straight to the socket of a
  C{tcp.Server} whose own buffer is empty (C{dataBuffer}, C{_tempDataLen},
  C{socket}, C{connected}, C{disconnecting} of C{FileDescriptor}).
- C{ChatServerProtocol._gather_large_frame} reads and empties
  C{IntNStringReceiver._unprocessed}.
- C{ConsoleProtocol.write_error} flushes C{StandardIO._writer} (its
  C{doWrite}) so that stdout's pending line comes out before the stderr
  line.
"""

import os
import socket

import twisted
from twisted.internet import defer, tcp
from twisted.python.runtime import platform
from twisted.trial.unittest import TestCase

from twisted_chat import wire
from twisted_chat.client import ConsoleProtocol
from twisted_chat.server import _GATHER_FROM
from tests.helpers.loopback import LoopbackMixin
from tests.helpers.waiting import Waiter

#: What SendQueue reads of a socket transport (see twisted_chat.sendq).
EAGER_ATTRIBUTES = ("dataBuffer", "_tempDataLen", "socket", "connected", "disconnecting")

SENDQ_LOST = (
    "SendQueue (twisted_chat/sendq.py) no longer sends straight to the "
    "socket, and the speed-up measured in docs/performance.rst is lost"
)
GATHER_LOST = (
    "ChatServerProtocol._gather_large_frame (twisted_chat/server.py) no "
    "longer gathers large frames in a list, and a frame trickled in small "
    "pieces costs the server quadratic copying again"
)
STDIO_LOST = (
    "ConsoleProtocol.write_error (twisted_chat/client/console.py) can no "
    "longer flush stdout first, so its stderr lines may overtake stdout lines"
)


def broken(what, consequence):
    """
    The message of a canary that died: what changed, in which Twisted, and
    what twisted_chat loses.
    """
    return "Twisted %s: %s; %s." % (twisted.__version__, what, consequence)


class ServerCanaryTests(LoopbackMixin, TestCase):
    """
    The private attributes of C{tcp.Server} and C{IntNStringReceiver} that
    the server uses, on a real loopback connection.
    """

    timeout = 10

    @defer.inlineCallbacks
    def connect(self):
        """
        Start a server, connect a raw client and wait for its welcome.

        @return: a Deferred firing with (server protocol, client protocol).
        """
        factory = yield self.start_server()
        client = yield self.connect_raw(factory.port)
        yield client.wait_for_type("welcome")
        (server,) = factory.connections
        self.assertIsInstance(server.transport, tcp.Server)
        return server, client

    @defer.inlineCallbacks
    def test_eager_attributes(self):
        """
        A C{tcp.Server} has what SendQueue reads, and its SendQueue is eager.
        """
        server, _ = yield self.connect()
        for name in EAGER_ATTRIBUTES:
            self.assertTrue(
                hasattr(server.transport, name),
                broken("twisted.internet.tcp.Server has no attribute %r" % (name,),
                       SENDQ_LOST))
        self.assertIsInstance(
            server.transport.socket, socket.socket,
            broken("tcp.Server.socket is not a socket.socket", SENDQ_LOST))
        # Private on purpose, as is _gathering below: canaries check the
        # internals themselves, and no public call says which path is taken.
        self.assertTrue(server.outbox.queue._eager, broken(
            "twisted_chat.sendq._is_socket_transport refuses a tcp.Server", SENDQ_LOST))

    @defer.inlineCallbacks
    def test_direct_send(self):
        """
        With Twisted's buffer empty, a SendQueue write skips transport.write.
        """
        server, client = yield self.connect()
        transport = server.transport
        self.assertEqual(
            (getattr(transport, "dataBuffer", None), getattr(transport, "_tempDataLen", None)),
            (b"", 0),
            broken("tcp.Server.dataBuffer and _tempDataLen are not b'' and 0 "
                   "with nothing buffered", SENDQ_LOST))
        written = []
        transport.write = written.append
        self.addCleanup(delattr, transport, "write")
        server.outbox.queue.write(wire.encode_frame({"type": "canary"}))
        self.assertEqual(
            written, [],
            broken("a SendQueue write on an idle tcp.Server went through "
                   "transport.write", SENDQ_LOST))
        yield client.wait_for_type("canary")

    @defer.inlineCallbacks
    def test_buffered_bytes_counted(self):
        """
        Bytes Twisted holds show in its buffer, and a SendQueue write waits.
        """
        server, client = yield self.connect()
        transport = server.transport
        transport.write(wire.encode_frame({"type": "first"}))
        self.assertTrue(
            getattr(transport, "dataBuffer", None) or getattr(transport, "_tempDataLen", None),
            broken("tcp.Server.write holds bytes that neither dataBuffer nor "
                   "_tempDataLen counts",
                   "SendQueue (twisted_chat/sendq.py) can send a frame ahead "
                   "of frames Twisted still holds"))
        server.outbox.queue.write(wire.encode_frame({"type": "second"}))
        yield client.wait_for_type("second")
        self.assertEqual(
            [m["type"] for m in client.messages if m["type"] in ("first", "second")],
            ["first", "second"])

    @defer.inlineCallbacks
    def test_unprocessed_buffer(self):
        """
        C{IntNStringReceiver._unprocessed} exists and is bytes.
        """
        server, _ = yield self.connect()
        self.assertIsInstance(
            getattr(server, "_unprocessed", None), bytes,
            broken("IntNStringReceiver._unprocessed is gone or not bytes", GATHER_LOST))

    @defer.inlineCallbacks
    def test_large_frame_gathered(self):
        """
        A large frame sent in pieces is gathered in a list, then delivered.
        """
        server, client = yield self.connect()
        text = "".join(chr(0x3B1 + i % 24) for i in range(3000))
        data = wire.encode_frame({"type": "message", "text": text})
        self.assertGreaterEqual(len(data) - wire.PREFIX.size, _GATHER_FROM)
        arrived = ByteCount(server)
        cuts = [0, 1000, 2500, 4000, len(data)]
        for start, end in zip(cuts, cuts[1:]):
            client.transport.write(data[start:end])
            yield arrived.reach(end)
            if end < len(data):
                self.assertIsInstance(
                    server._gathering, list,
                    broken("after %d of %d bytes the frame was not being gathered "
                           "(IntNStringReceiver._unprocessed changed?)" % (end, len(data)),
                           GATHER_LOST))
        self.assertIsNone(server._gathering)
        (echo,) = yield client.wait_for_type("message")
        self.assertEqual(echo["text"], text)


class ByteCount(Waiter):
    """
    Counts the bytes a protocol receives, with a Deferred for a total.
    """

    def __init__(self, protocol):
        super().__init__()
        self.count = 0
        self._received = protocol.dataReceived
        protocol.dataReceived = self._data_received

    def _data_received(self, data):
        self.count += len(data)
        self._received(data)
        self.check()

    def reach(self, total):
        """
        @return: a Deferred that fires once C{total} bytes have arrived.
        """
        return self.wait_until(lambda: self.count >= total)


class QuietClient:
    """
    The least of a L{ChatClient} a L{ConsoleProtocol} calls.
    """

    finished = True

    def line_received(self, text):
        """
        A typed line: ignored.
        """

    def line_too_long(self, limit):
        """
        An over-long line: ignored.
        """

    def end_of_input(self):
        """
        stdin ended: ignored.
        """

    def output_lost(self):
        """
        stdout closed: ignored.
        """


class FdStream:
    """
    A text stream that writes to a file descriptor at once (stderr sharing
    stdout's pipe, as with C{2>&1}).
    """

    def __init__(self, fd):
        self.fd = fd

    def write(self, text):
        os.write(self.fd, text.encode("utf-8"))

    def flush(self):
        """
        Nothing is buffered.
        """


class StandardIOCanaryTests(TestCase):
    """
    The private C{_writer} of a real C{StandardIO} on pipes, which
    C{ConsoleProtocol.write_error} flushes.
    """

    timeout = 10

    if platform.isWindows():
        skip = "StandardIO on Windows has no fd arguments and no _writer"

    def console(self):
        """
        A L{ConsoleProtocol} on a real C{StandardIO} whose stdin and stdout
        are pipes, stderr writing into the stdout pipe; all closed in
        cleanup.

        @return: the protocol and the read end of the stdout pipe.
        """
        from twisted.internet import reactor
        from twisted.internet.stdio import StandardIO

        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        for fd in [stdin_read, stdin_write, stdout_read, stdout_write]:
            self.addCleanup(os.close, fd)
        console = ConsoleProtocol(QuietClient(), stderr=FdStream(stdout_write))
        StandardIO(console, stdin=stdin_read, stdout=stdout_write, reactor=reactor)
        # Runs before the fds are closed: waits until stdio is closed.
        self.addCleanup(console.close)
        return console, stdout_read

    def test_writer_attributes(self):
        """
        C{StandardIO._writer} has C{doWrite}, C{connected}, C{disconnecting}.
        """
        console, _ = self.console()
        writer = getattr(console.transport, "_writer", None)
        self.assertIsNotNone(
            writer, broken("twisted.internet.stdio.StandardIO has no attribute '_writer'",
                           STDIO_LOST))
        for name in ["doWrite", "connected", "disconnecting"]:
            self.assertTrue(
                hasattr(writer, name),
                broken("StandardIO._writer has no attribute %r" % (name,), STDIO_LOST))
        self.assertTrue(callable(writer.doWrite))
        self.assertTrue(writer.connected and not writer.disconnecting, broken(
            "an open StandardIO._writer is not connected, or is disconnecting",
            STDIO_LOST))

    def test_error_after_pending_output(self):
        """
        A pending C{write_line} line comes out before a C{write_error} line.
        """
        console, stdout_read = self.console()
        console.write_line("out")
        console.write_error("err")
        self.assertEqual(
            os.read(stdout_read, 1024), b"out\nerr\n",
            broken("StandardIO._writer.doWrite did not write stdout's pending line",
                   STDIO_LOST))
