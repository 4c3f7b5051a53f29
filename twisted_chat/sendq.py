# -*- test-case-name: tests.unit.test_sendq -*-
"""
The frames the server holds for one client because it cannot take them yet.

Twisted buffers C{transport.write} without limit. L{SendQueue} is a
streaming producer registered on the transport: once the transport pauses it
(its own buffer is full, about 64 KiB), frames wait here instead, counted, so
that the server can refuse to hold more than a set amount for any client.
"""

from collections import deque

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


#: What a transport needs for L{SendQueue} to send on it directly: those of
#: Twisted's socket transports (L{FileDescriptor}).  Other transports (TLS,
#: test transports) just get C{write}.  These are private to Twisted:
#: tests/system/test_canary.py checks them on a real tcp.Server.
_EAGER_ATTRIBUTES = ("dataBuffer", "_tempDataLen", "socket", "connected", "disconnecting")


def _is_socket_transport(transport):
    """
    Whether C{transport} is itself a socket transport.  It must be one, not
    merely have the attributes: a TLS transport forwards unknown attributes
    to the TCP transport beneath it, and sending there would bypass TLS.
    """
    return isinstance(transport, FileDescriptor) and all(
        hasattr(transport, name) for name in _EAGER_ATTRIBUTES
    )


def _can_send_now(transport):
    """
    Whether C{transport} has nothing buffered, so that bytes sent straight to
    its socket cannot overtake bytes it still holds.

    Twisted's C{write} buffers everything and sends it from the reactor's
    next write event, registering and unregistering the socket with epoll on
    the way: three system calls and a reactor iteration per burst.  For a
    server that writes each event to many sockets that is most of its work;
    one C{send} is a third of it (docs/performance.rst).
    """
    return (
        transport.connected
        and not transport.disconnecting
        and not transport.dataBuffer
        and not transport._tempDataLen
    )


@implementer(IPushProducer)
class SendQueue:
    """
    An ordered queue of frames for one transport, written as it drains.

    @ivar size: bytes waiting in the queue.
    @ivar paused: whether the transport has asked us to stop writing.
    @ivar on_drained: called with no arguments whenever the queue empties.
    """

    # Slots: a server keeps one per connection, tens of thousands.
    __slots__ = (
        "transport", "on_drained", "paused", "closing", "closed", "size", "_queue", "_eager")

    def __init__(self, transport, on_drained=lambda: None):
        self.transport = transport
        self.on_drained = on_drained
        self.paused = False
        self.closing = False
        self.closed = False
        self.size = 0
        # Made when first needed, and dropped when drained: an empty deque
        # is most of the memory a quiet connection costs here (about 0.7
        # KiB of 3), and most connections never queue anything.
        self._queue = None
        self._eager = _is_socket_transport(transport)
        transport.registerProducer(self, True)

    def __len__(self):
        return len(self._queue) if self._queue else 0

    def write(self, data):
        """
        Write C{data} now if the transport takes it, else queue it behind
        what is waiting.
        """
        if self.paused or self._queue:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(data)
            self.size += len(data)
        else:
            self._write(data)

    def _write(self, data):
        """
        Hand C{data} to the transport, sending it at once if the transport
        has nothing buffered (see L{_can_send_now}).
        """
        transport = self.transport
        if self._eager and _can_send_now(transport):
            try:
                sent = transport.socket.send(data)
            except OSError:
                # Would block, or a failure Twisted reports on its own path.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def pauseProducing(self):
        """
        The transport's buffer is full: queue from now on.  (Twisted API.)
        """
        self.paused = True

    def resumeProducing(self):
        """
        The transport has drained: write what waits, until it is full again.
        (Twisted API.)
        """
        self.paused = False
        queue = self._queue
        while queue and not self.paused:
            data = queue.popleft()
            self.size -= len(data)
            self._write(data)
        if not queue:
            self._queue = None
            self.on_drained()
            if self.closing:
                self._close_now()

    def close(self):
        """
        Close the connection once everything queued has been written.

        A transport with a registered producer does not close until the
        producer is unregistered, so this unregisters first.
        """
        if self.closing or self.closed:
            return
        self.closing = True
        if not self._queue:
            self._close_now()

    def _close_now(self):
        self.closing = False
        self.closed = True
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def stopProducing(self):
        """
        The connection is closing: drop what waits.  (Twisted API.)
        """
        self.paused = True
        self._queue = None
        self.size = 0
