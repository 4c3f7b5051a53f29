"""
Server memory with a client that never reads while another floods.

Runs a twisted-chat server (twistd, on 127.0.0.1) twice, side by side:

 - bounded: the default send-queue limits (--sendq-soft 256KiB --sendq 1MiB);
 - unbounded: limits so high they never apply, which is what a server that
   just calls transport.write() does.

Each run connects a reader that keeps up, a client that is alive (it sends
heartbeats) but never reads, and a flooder that sends MESSAGES messages of
SIZE bytes, never more than 200 ahead of the reader. It samples the
server's resident memory (VmRSS) as it goes and prints a table.

Usage: python benchmarks/slow_reader_memory.py [--messages 10000] [--size 4000]

Traffic goes only to 127.0.0.1; each run stops by itself.
"""

import argparse
import json
import socket
import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import Int32StringReceiver

from twisted_chat.bench.servers import resident_mib, start_chat_server

HEARTBEAT = b'{"type":"heartbeat"}'


def frame(message):
    payload = json.dumps(message).encode("utf-8")
    return len(payload).to_bytes(4, "big") + payload


class Reader(Int32StringReceiver):
    """Reads everything and counts the chat messages."""

    MAX_LENGTH = 1 << 20

    def __init__(self):
        self.messages = 0
        self.lost = defer.Deferred()

    def connectionMade(self):
        self.sendString(HEARTBEAT)
        self.beat = task.LoopingCall(self.sendString, HEARTBEAT)
        self.beat.start(1.0, now=False)

    def stringReceived(self, payload):
        if payload.startswith(b'{"type":"message"'):
            self.messages += 1

    def connectionLost(self, reason):
        if self.beat.running:
            self.beat.stop()
        self.lost.callback(None)


class NonReader(Reader):
    """Alive, but never reads: what the server sends it backs up."""

    def connectionMade(self):
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.transport.pauseProducing()
        super().connectionMade()


@defer.inlineCallbacks
def run(reactor, label, server_options, messages, size):
    process, server, port = yield start_chat_server(
        reactor, ["--rate", "0", "--timeout", "60", "--heartbeat-interval", "5"] + server_options
    )
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    reader = yield connectProtocol(endpoint, Reader())
    non_reader = yield connectProtocol(endpoint, NonReader())
    flooder = yield connectProtocol(endpoint, Reader())
    yield task.deferLater(reactor, 0.5, lambda: None)
    start = resident_mib(process.pid)
    samples = [(0, start)]
    text = "x" * size
    sent = 0
    step = max(1, messages // 10)
    while sent < messages:
        while sent < messages and sent - reader.messages < 200:
            flooder.transport.write(frame({"type": "message", "text": "%d %s" % (sent, text)}))
            sent += 1
            if sent % step == 0:
                samples.append((sent, resident_mib(process.pid)))
        yield task.deferLater(reactor, 0.001, lambda: None)
    while reader.messages < messages:
        yield task.deferLater(reactor, 0.05, lambda: None)
    samples.append((messages, resident_mib(process.pid)))
    for client in (reader, non_reader, flooder):
        client.transport.abortConnection()
    process.signalProcess("KILL")
    yield server.ended
    peak = max(rss for _, rss in samples)
    print("\n%s: server options %s" % (label, " ".join(server_options) or "(defaults)"))
    print("  %10s  %12s  %10s" % ("messages", "MiB flooded", "RSS MiB"))
    for count, rss in samples:
        print("  %10d  %12.1f  %10.1f" % (count, count * size / 2**20, rss))
    print("  peak growth: %.1f MiB for %.1f MiB flooded" % (peak - start, messages * size / 2**20))
    return peak - start


@defer.inlineCallbacks
def main(reactor, *argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--size", type=int, default=4000)
    args = parser.parse_args(argv)
    bounded = yield run(reactor, "bounded", [], args.messages, args.size)
    unbounded = yield run(
        reactor, "unbounded", ["--sendq-soft", "8192MiB", "--sendq", "16384MiB"],
        args.messages, args.size,
    )
    print("\nresult: bounded server grew %.1f MiB, unbounded %.1f MiB" % (bounded, unbounded))


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
