# -*- test-case-name: tests.test_cluster -*-
"""
The stream reader: every node reads the room's event stream (C{XREAD
BLOCK} from the last id it read) on a Redis connection of its own, and
hands each event to the node's store.
"""

from twisted.internet import defer
from twisted.logger import Logger

from twisted_chat import wire
from twisted_chat.cluster.link import REPLY_TIMEOUT, RedisLink

#: How long one XREAD waits for new entries, in milliseconds.
BLOCK_MS = 2000
#: Most stream entries read at once.
READ_COUNT = 1000


def entry_seq(entry_id):
    """
    The seq of a stream entry, from its id C{<seq>-0}; L{None} for an id of
    any other form.
    """
    seq, _, sub = entry_id.partition(b"-")
    if sub != b"0" or not seq.isdigit():
        return None
    return int(seq)


def entry_payload(fields):
    """
    The frame payload in a stream entry's field list.
    """
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"f":
            return fields[i + 1]
    return None


class StreamReader:
    """
    Reads the stream at C{key} and hands what it reads to C{store}: for each
    read, within one C{store.batch()}, C{store.deliver_event(seq, payload)}
    for every well-formed entry in order, then C{store.events_read()}.

    @ivar link: its L{RedisLink}.
    @ivar last_id: the id of the last entry read; the next read starts
        after it.
    """

    log = Logger()

    def __init__(self, reactor, address, key, store):
        """
        @param address: a L{RedisAddress}.
        """
        self.key = key
        self.store = store
        self.last_id = b"0-0"
        self.link = RedisLink(
            reactor, address, "reader", self._read,
            reply_timeout=BLOCK_MS / 1000.0 + REPLY_TIMEOUT,
        )
        self._reading = None

    def start(self, after_seq):
        """
        Read from the event after C{after_seq} on, now and on every
        connection made from now on.
        """
        self.last_id = b"%d-0" % (after_seq,)
        self.link.service.startService()

    def stop(self):
        """
        Stop reading: a Deferred that fires once the connection is closed.
        """
        if self._reading is not None:
            self._reading.cancel()
        return self.link.service.stopService()

    def _read(self, protocol):
        if self.link.protocol is not protocol:
            return
        d = self.link.call(
            "XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS,
            "STREAMS", self.key, self.last_id,
        )
        self._reading = d
        d.addCallback(self._got_entries)
        d.addCallback(lambda _: self._read(protocol))
        d.addErrback(self._read_failed, protocol)

    def _read_failed(self, failure, protocol):
        self._reading = None
        if failure.check(defer.CancelledError):
            return
        if failure.check(wire.ProtocolError) or self.link.protocol is not protocol:
            return  # the connection is gone; a new one reads on
        self.log.warn("reading the event stream failed: {error}",
                      error=failure.getErrorMessage())
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    def _got_entries(self, reply):
        self._reading = None
        if not reply:
            return
        with self.store.batch():
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    self.deliver_entry(entry_id, fields)
        self.store.events_read()

    def deliver_entry(self, entry_id, fields):
        """
        Read past one stream entry, and hand its event to the store if it is
        one.
        """
        self.last_id = entry_id
        seq = entry_seq(entry_id)
        payload = entry_payload(fields)
        if seq is None or payload is None:
            return
        self.store.deliver_event(seq, payload)
