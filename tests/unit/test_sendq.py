"""
Tests for L{twisted_chat.sendq}.
"""

from twisted.internet.abstract import FileDescriptor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.sendq import SendQueue


class SendQueueTests(SynchronousTestCase):
    """
    L{SendQueue}.
    """

    def setUp(self):
        self.transport = StringTransport()
        self.drained = []
        self.queue = SendQueue(self.transport, lambda: self.drained.append(True))

    def test_registered(self):
        """
        The queue is the transport's streaming producer.
        """
        self.assertIs(self.transport.producer, self.queue)
        self.assertTrue(self.transport.streaming)

    def test_writes_through(self):
        """
        While the transport takes data, writes go straight to it.
        """
        self.queue.write(b"abc")
        self.assertEqual(self.transport.value(), b"abc")
        self.assertEqual(self.queue.size, 0)

    def test_queues_while_paused(self):
        """
        While paused, writes wait and are counted; resuming writes them in
        order and reports the queue drained.
        """
        self.queue.pauseProducing()
        self.queue.write(b"ab")
        self.queue.write(b"cde")
        self.assertEqual((self.transport.value(), self.queue.size, len(self.queue)), (b"", 5, 2))
        self.queue.resumeProducing()
        self.assertEqual(self.transport.value(), b"abcde")
        self.assertEqual(self.queue.size, 0)
        self.assertEqual(self.drained, [True])

    def test_no_deque_unless_queueing(self):
        """
        A queue that never had to hold anything, or has drained, keeps no
        deque: quiet connections are most of a large room's memory.
        """
        self.queue.write(b"abc")
        # Private: the deque itself is what this test is about, and no
        # public call can tell an empty deque from none.
        self.assertIsNone(self.queue._queue)
        self.queue.pauseProducing()
        self.queue.write(b"de")
        self.assertIsNotNone(self.queue._queue)
        self.queue.resumeProducing()
        self.assertIsNone(self.queue._queue)
        self.assertEqual((self.transport.value(), len(self.queue)), (b"abcde", 0))

    def test_order_kept_after_resume(self):
        """
        A write made while older data still waits goes behind it.
        """
        self.queue.pauseProducing()
        self.queue.write(b"1")
        self.queue.paused = False
        self.queue.write(b"2")
        self.assertEqual(self.transport.value(), b"")
        self.queue.resumeProducing()
        self.assertEqual(self.transport.value(), b"12")

    def test_resume_stops_when_paused_again(self):
        """
        If the transport fills up again while draining, the rest waits.
        """
        self.queue.pauseProducing()
        for chunk in [b"a", b"b", b"c"]:
            self.queue.write(chunk)
        original = self.transport.write

        def write(data):
            original(data)
            self.queue.pauseProducing()

        self.transport.write = write
        self.queue.resumeProducing()
        self.assertEqual(self.transport.value(), b"a")
        self.assertEqual(self.queue.size, 2)
        self.assertEqual(self.drained, [])

    def test_close_after_drain(self):
        """
        close waits for the queue, unregisters, then closes.
        """
        self.queue.pauseProducing()
        self.queue.write(b"last")
        self.queue.close()
        self.assertFalse(self.transport.disconnecting)
        self.queue.resumeProducing()
        self.assertEqual(self.transport.value(), b"last")
        self.assertIsNone(self.transport.producer)
        self.assertTrue(self.transport.disconnecting)

    def test_close_empty(self):
        """
        With nothing waiting, close closes at once.
        """
        self.queue.close()
        self.assertTrue(self.transport.disconnecting)

    def test_close_twice(self):
        """
        Closing twice is harmless (the producer is unregistered once).
        """
        self.queue.close()
        self.queue.close()
        self.assertTrue(self.transport.disconnecting)

    def test_stop(self):
        """
        stopProducing drops what waits.
        """
        self.queue.pauseProducing()
        self.queue.write(b"lost")
        self.queue.stopProducing()
        self.assertEqual(self.queue.size, 0)
        self.assertEqual(len(self.queue), 0)


class FakeSocket:
    """
    A socket whose send takes at most C{room} bytes, or raises.
    """

    def __init__(self, room, error=None):
        self.room = room
        self.error = error
        self.sent = b""

    def send(self, data):
        if self.error is not None:
            raise self.error
        taken = data[: self.room]
        self.room -= len(taken)
        self.sent += taken
        return len(taken)


class SocketTransport(StringTransport, FileDescriptor):
    """
    A StringTransport that is a Twisted socket transport, with its
    attributes, so that SendQueue sends on its socket directly.
    """

    def __init__(self, socket):
        StringTransport.__init__(self)
        self.socket = socket
        self.dataBuffer = b""
        self._tempDataLen = 0


class EagerSendTests(SynchronousTestCase):
    """
    Sending straight to the socket when the transport holds nothing.
    """

    def test_sent_directly(self):
        """
        With nothing buffered, data goes to the socket, not the transport.
        """
        transport = SocketTransport(FakeSocket(room=100))
        SendQueue(transport).write(b"hello")
        self.assertEqual(transport.socket.sent, b"hello")
        self.assertEqual(transport.value(), b"")

    def test_partial_send(self):
        """
        What the socket does not take goes to the transport, in order.
        """
        transport = SocketTransport(FakeSocket(room=3))
        SendQueue(transport).write(b"hello")
        self.assertEqual(transport.socket.sent, b"hel")
        self.assertEqual(transport.value(), b"lo")

    def test_would_block(self):
        """
        A socket that would block leaves everything to the transport.
        """
        transport = SocketTransport(FakeSocket(room=0, error=BlockingIOError()))
        SendQueue(transport).write(b"hello")
        self.assertEqual(transport.value(), b"hello")

    def test_buffered_data_not_overtaken(self):
        """
        If the transport still holds data, new data queues behind it.
        """
        transport = SocketTransport(FakeSocket(room=100))
        transport.dataBuffer = b"older"
        SendQueue(transport).write(b"newer")
        self.assertEqual(transport.socket.sent, b"")
        self.assertEqual(transport.value(), b"newer")

    def test_closing_transport(self):
        """
        A transport that is closing is not written to directly.
        """
        transport = SocketTransport(FakeSocket(room=100))
        transport.disconnecting = True
        SendQueue(transport).write(b"late")
        self.assertEqual(transport.socket.sent, b"")

    def test_other_transports(self):
        """
        Transports without a socket (TLS, tests) just get write.
        """
        transport = StringTransport()
        SendQueue(transport).write(b"plain")
        self.assertEqual(transport.value(), b"plain")

    def test_wrapping_transport(self):
        """
        A transport that wraps a socket transport (as TLS does) and forwards
        its attributes gets write: sending on the socket beneath would
        bypass it.
        """
        below = SocketTransport(FakeSocket(room=100))
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.makeConnection(below)
        self.assertIs(wrapper.socket, below.socket)
        SendQueue(wrapper).write(b"secret")
        self.assertEqual(below.socket.sent, b"")
        self.assertEqual(below.value(), b"secret")
