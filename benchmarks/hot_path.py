"""
The server's Python cost on its two hot paths, without the kernel: answering
a heartbeat, and delivering a broadcast message to each member of a room;
and the memory of the Python objects a quiet connection keeps.
Connections are in-memory transports that count what they are given, so
the numbers are the server's own work per frame and per recipient; the
socket calls, and the kernel's and Twisted's transport memory, come on top
(docs/performance.rst).

Usage: python benchmarks/hot_path.py [--members 1000] [--repeat 5]
"""

import argparse
import gc
import time
import tracemalloc

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from twisted_chat import wire
from twisted_chat.server import ChatServerFactory


class CountingTransport:
    """
    The least a server protocol needs of a transport; keeps only a count.
    """

    disconnecting = False

    def __init__(self, port):
        self.address = IPv4Address("TCP", "127.0.0.1", port)
        self.bytes = 0

    def write(self, data):
        self.bytes += len(data)

    def writeSequence(self, data):
        self.bytes += sum(map(len, data))

    def getPeer(self):
        return self.address

    getHost = getPeer

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass

    def loseConnection(self):
        self.disconnecting = True

    abortConnection = loseConnection


def connect(factory, count):
    protocols = []
    for i in range(count):
        transport = CountingTransport(20000 + i)
        protocol = factory.buildProtocol(transport.address)
        protocol.makeConnection(transport)
        protocol.dataReceived(wire.encode_frame({"type": "heartbeat"}))
        protocols.append(protocol)
    return protocols


def memory_per_connection(count=2000):
    """
    Bytes of Python objects the server keeps for each of C{count} quiet
    connections (joined, in a room too large for presence), the in-memory
    transports left out.
    """
    factory = ChatServerFactory(
        clock=Clock(), rate=0, max_clients=count + 10, max_per_ip=count + 10,
        presence_limit=0)
    connect(factory, 10)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        protocols = connect(factory, count)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = [tracemalloc.Filter(False, __file__)]
    grown = after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
    del protocols
    return sum(stat.size_diff for stat in grown) / count


def best_of(repeat, run):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        elapsed = (time.perf_counter() - start) / count
        best = elapsed if best is None else min(best, elapsed)
    return best * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    factory = ChatServerFactory(
        clock=Clock(), rate=0, max_clients=args.members, max_per_ip=args.members)
    protocols = connect(factory, args.members)
    sender = protocols[0]

    heartbeat = wire.encode_frame({"type": "heartbeat", "ts": 1700000000.123456})

    def heartbeats():
        for _ in range(20000):
            sender.dataReceived(heartbeat)
        return 20000

    message = wire.encode_frame({"type": "message", "text": "x" * 64})

    def messages():
        for _ in range(50):
            sender.dataReceived(message)
        return 50 * args.members

    print("heartbeat answered:           %.2f us per frame" % best_of(args.repeat, heartbeats))
    print("message to %d members:      %.2f us per recipient" % (
        args.members, best_of(args.repeat, messages)))
    print("quiet connection:             %.2f KiB of Python objects"
          % (memory_per_connection() / 1024.0))


if __name__ == "__main__":
    main()
