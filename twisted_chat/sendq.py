# -*- test-case-name: tests.test_sendq -*-
"""
The frames the server holds for one client because it cannot take them yet.

Twisted buffers C{transport.write} without limit. L{SendQueue} is a
streaming producer registered on the transport: once the transport pauses it
(its own buffer is full, about 64 KiB), frames wait here instead, counted, so
that the server can refuse to hold more than a set amount for any client.
"""

from collections import deque

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class SendQueue:
    """
    An ordered queue of frames for one transport, written as it drains.

    @ivar size: bytes waiting in the queue.
    @ivar paused: whether the transport has asked us to stop writing.
    @ivar on_drained: called with no arguments whenever the queue empties.
    """

    def __init__(self, transport, on_drained=lambda: None):
        self.transport = transport
        self.on_drained = on_drained
        self.paused = False
        self.closing = False
        self.closed = False
        self.size = 0
        self._queue = deque()
        transport.registerProducer(self, True)

    def __len__(self):
        return len(self._queue)

    def write(self, data):
        """
        Write C{data} now if the transport takes it, else queue it behind
        what is waiting.
        """
        if self.paused or self._queue:
            self._queue.append(data)
            self.size += len(data)
        else:
            self.transport.write(data)

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
            self.transport.write(data)
        if not queue:
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
        self._queue.clear()
        self.size = 0
