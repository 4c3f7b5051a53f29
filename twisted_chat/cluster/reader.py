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


def unbroken(last, entries):
    """
    The frames of C{entries} (stream entries, newest first, as C{XREVRANGE}
    gives them) that run unbroken down from event C{last}, oldest first:
    what a node may keep as a room's replay backlog.
    """
    kept = []
    for entry_id, fields in entries or []:
        payload = entry_payload(fields)
        if entry_seq(entry_id) != last - len(kept) or payload is None:
            break
        kept.append(wire.frame(payload))
    kept.reverse()
    return kept


class StreamReader:
    """
    Reads several streams with one C{XREAD BLOCK} and hands what it reads to
    each stream's sink: for each read, within one C{batch()}, for every
    entry in order, C{sink.deliver_entry(entry_id, fields)}, then
    C{sink.events_read()} for every sink that had entries.

    A stream added while a read waits is read from the next one on; the
    C{wake} given is called then, to end the waiting read (the node adds an
    entry to a stream the read waits on: its inbox).

    @ivar link: its L{RedisLink}.
    @ivar streams: the streams read, by key (bytes): [the id of the last
        entry read (the next read starts after it), the sink].
    """

    log = Logger()

    def __init__(self, reactor, address, batch, wake=lambda: None):
        """
        @param address: a L{RedisAddress}.
        @param batch: what to call for the context manager around each
            read's deliveries (the rooms' shared L{Batching}).
        @param wake: called when a stream is added while a read waits.
        """
        self.batch = batch
        self.wake = wake
        self.streams = {}
        self.link = RedisLink(
            reactor, address, "reader", self._read,
            reply_timeout=BLOCK_MS / 1000.0 + REPLY_TIMEOUT,
        )
        self._reading = None
        self._started = False

    def add(self, key, after_id, sink):
        """
        Read the stream at C{key} from after the entry C{after_id} on (a
        stream read already is left as it is).
        """
        key = key.encode() if isinstance(key, str) else key
        if key in self.streams:
            return
        self.streams[key] = [after_id, sink]
        if self._reading is not None:
            self.wake()

    def remove(self, key):
        """
        Read the stream at C{key} no more (from the next read on).
        """
        self.streams.pop(key.encode() if isinstance(key, str) else key, None)

    def start(self):
        """
        Read, now and on every connection made from now on.
        """
        self._started = True
        self.link.service.startService()

    def stop(self):
        """
        Stop reading: a Deferred that fires once the connection is closed.
        """
        if self._reading is not None:
            self._reading.cancel()
        return self.link.service.stopService()

    def _read(self, protocol):
        if self.link.protocol is not protocol or not self.streams:
            return
        asked = dict(self.streams)
        keys = list(asked)
        d = self.link.call(
            "XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS,
            "STREAMS", *(keys + [asked[key][0] for key in keys]),
        )
        self._reading = d
        d.addCallback(self._got_entries, asked)
        d.addCallback(lambda _: self._read(protocol))
        d.addErrback(self._read_failed, protocol)

    def _read_failed(self, failure, protocol):
        self._reading = None
        if failure.check(defer.CancelledError):
            return
        if failure.check(wire.ProtocolError) or self.link.protocol is not protocol:
            return  # the connection is gone; a new one reads on
        self.log.warn("reading the event streams failed: {error}",
                      error=failure.getErrorMessage())
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    def _got_entries(self, reply, asked):
        self._reading = None
        if not reply:
            return
        read = []
        with self.batch():
            for key, entries in reply:
                stream = self.streams.get(key)
                if stream is None or stream is not asked.get(key) or not entries:
                    continue  # removed (and maybe added again) meanwhile
                sink = stream[1]
                for entry_id, fields in entries:
                    stream[0] = entry_id
                    sink.deliver_entry(entry_id, fields)
                read.append((key, stream))
        for key, stream in read:
            if self.streams.get(key) is stream:  # (not dropped meanwhile)
                stream[1].events_read()
