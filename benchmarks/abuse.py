"""
One bad host against a twisted-chat server, measured: half-sent frames,
name churn and join/part churn (docs/reliability.rst).

Usage: python benchmarks/abuse.py [--only frames,nick,join]
       [--connections 1000] [--addresses 20] [--size 65536] [--hold 5]
       [--renames 60] [--cycles 60] [--server-options "--max-per-ip 0"]
       [--no-trim] [--max-seconds 300]

It starts its own server (twistd -n chat, the checkout this file is in,
on a free port of 127.0.0.1), connects an observer and a chatter, and runs
each attack in turn:

- frames: --connections connections, spread over --addresses loopback
  addresses (127.0.0.2, 127.0.0.3, ...), each send a frame header for
  --size bytes and all of the body but its last byte, then nothing for
  --hold seconds; then they close.
- nick: one client sends --renames nick frames at once.
- join: one client, in a room with the observer, sends --cycles part/join
  pairs of that room at once.

For each it prints the server's resident memory before, at its peak
during, and after (once the attackers have gone and the server settled),
the frames the observer received per second, the events the attack caused,
and the round trip of the chatter's messages (one every 0.25 s) meanwhile.
Everything is bounded in time (--max-seconds); the server and every
connection are stopped at the end, whatever happens.
"""

import argparse
import json
import os
import selectors
import shlex
import signal
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The server and this script use the checkout this file is in (so that a
# git worktree of an older commit measures that commit).
sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.internet.protocol import ProcessProtocol  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402

from twisted_chat import wire  # noqa: E402
from twisted_chat.bench.servers import (  # noqa: E402
    ServerProcess,
    chat_server_args,
    resident_mib,
)

#: Seconds between the chatter's messages (under the default --rate of 5/s).
CHAT_INTERVAL = 0.25
#: Seconds between samples of the server's resident memory.
SAMPLE_INTERVAL = 0.1
#: Seconds the server is given to settle after an attack ends.
SETTLE = 3.0
#: The room the join/part churn happens in.
ROOM = "churn"




def sleep(reactor, seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class Peer(Int32StringReceiver):
    """
    A client that decodes what it is sent and hands each frame to
    C{on_frame}; C{welcomed} fires with the welcome.
    """

    MAX_LENGTH = wire.MAX_FRAME_LIMIT

    def __init__(self, reactor):
        self.reactor = reactor
        self.welcomed = defer.Deferred()
        self.lost = defer.Deferred()
        self.gone = False
        self.name = None
        self.errors = []

    def send(self, **message):
        self.sendString(wire.encode(message))

    def stringReceived(self, payload):
        message = wire.decode(payload)
        kind = message["type"]
        if kind == "welcome" and not self.welcomed.called:
            self.name = message["name"]
            self.welcomed.callback(message)
        elif kind == "error":
            self.errors.append(message["code"])
        elif kind == "nick" and message.get("old") == self.name:
            self.name = message["new"]
        self.on_frame(message)

    def on_frame(self, message):
        pass

    def connectionLost(self, reason):
        self.gone = True
        self.lost.callback(None)


class Observer(Peer):
    """
    A member of the lobby and of L{ROOM}: it notes when each frame came,
    and of what kind.
    """

    def __init__(self, reactor):
        super().__init__(reactor)
        self.frames = []

    def on_frame(self, message):
        self.frames.append((self.reactor.seconds(), message))

    def between(self, start, end):
        return [m for t, m in self.frames if start <= t < end]

    def per_second(self, start, end):
        """
        The mean and the peak (over whole seconds) of frames a second.
        """
        times = [t for t, _ in self.frames if start <= t < end]
        seconds = max(end - start, 1e-9)
        buckets = {}
        for t in times:
            buckets[int(t - start)] = buckets.get(int(t - start), 0) + 1
        return len(times) / seconds, max(buckets.values(), default=0)


class Chatter(Peer):
    """
    A member that says something every L{CHAT_INTERVAL} seconds and times
    how long each takes to come back.
    """

    def __init__(self, reactor):
        super().__init__(reactor)
        self.sent = {}
        self.rtts = []
        self.number = 0
        self.loop = None

    def start(self):
        self.loop = task.LoopingCall(self.say)
        self.loop.clock = self.reactor
        self.loop.start(CHAT_INTERVAL).addErrback(lambda f: None)

    def stop(self):
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    def say(self):
        if self.gone:
            return
        self.number += 1
        text = "rtt %d" % (self.number,)
        self.sent[text] = self.reactor.seconds()
        self.send(type="message", text=text)

    def on_frame(self, message):
        if message["type"] == "message" and message.get("from") == self.name:
            start = self.sent.pop(message.get("text"), None)
            if start is not None:
                now = self.reactor.seconds()
                self.rtts.append((start, now - start))

    def between(self, start, end):
        """
        Round trips of messages sent in [start, end), and the messages
        sent then that never came back.
        """
        rtts = [rtt for t, rtt in self.rtts if start <= t < end]
        lost = [t for t in self.sent.values() if start <= t < end]
        return rtts, lost


def half_senders(port, connections, addresses, size, hold):
    """
    The half-sent-frame attack, run in a child process of its own (so that
    the round trips measured here are the server's, not this process's):
    C{connections} blocking connects spread over C{addresses} loopback
    addresses, each followed by a frame header for C{size} bytes and all
    of the body but its last byte; then the connections are held open for
    C{hold} seconds, reading whatever the server says, and closed.

    @return: a summary: how many connected, how long connecting took, how
        many the server closed during the hold, and the error codes it sent.
    """
    selector = selectors.DefaultSelector()
    data = wire.PREFIX.pack(size) + b"x" * (size - 1)
    start = time.monotonic()
    open_, failed = [], 0
    for i in range(connections):
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.bind(("127.0.0.%d" % (2 + i % addresses,), 0))
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            sent = sock.send(data)
        except OSError:
            failed += 1
            sock.close()
            continue
        peer = {"sock": sock, "out": memoryview(data)[sent:], "in": bytearray(),
                "closed": False}
        open_.append(peer)
        selector.register(sock, selectors.EVENT_READ | (
            selectors.EVENT_WRITE if peer["out"] else 0), peer)
    connected = time.monotonic() - start
    codes = {}
    deadline = start + hold
    while time.monotonic() < deadline:
        for key, events in selector.select(max(0.0, deadline - time.monotonic())):
            peer = key.data
            try:
                if events & selectors.EVENT_READ:
                    chunk = peer["sock"].recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    peer["in"] += chunk
                    error_codes(peer["in"], codes)
                if events & selectors.EVENT_WRITE and peer["out"]:
                    peer["out"] = peer["out"][peer["sock"].send(peer["out"]):]
                    if not peer["out"]:
                        selector.modify(peer["sock"], selectors.EVENT_READ, peer)
            except OSError:
                peer["closed"] = True
                selector.unregister(peer["sock"])
    for peer in open_:
        peer["sock"].close()
    return {"connected": len(open_), "failed": failed, "connect_seconds": connected,
            "closed_by_server": sum(peer["closed"] for peer in open_), "errors": codes}


def error_codes(buffer, codes):
    """
    Count the error frames among the whole frames at the start of
    C{buffer} (a bytearray), and remove the whole frames from it.
    """
    offset = 0
    while len(buffer) - offset >= 4:
        (length,) = wire.PREFIX.unpack_from(buffer, offset)
        end = offset + 4 + length
        if len(buffer) < end:
            break
        if buffer.startswith(b'{"type":"error"', offset + 4):
            code = json.loads(bytes(buffer[offset + 4:end]))["code"]
            codes[code] = codes.get(code, 0) + 1
        offset = end
    del buffer[:offset]


class AttackProcess(ProcessProtocol):
    """
    The child running L{half_senders}; C{done} fires with its summary.
    """

    def __init__(self):
        self.out = bytearray()
        self.done = defer.Deferred()

    def outReceived(self, data):
        self.out += data

    errReceived = outReceived

    def processEnded(self, reason):
        try:
            self.done.callback(json.loads(bytes(self.out).splitlines()[-1]))
        except (ValueError, IndexError):
            self.done.errback(RuntimeError(
                "the attack failed:\n" + self.out.decode(errors="replace")))


class Sampler:
    """
    The server's resident memory every L{SAMPLE_INTERVAL} seconds.
    """

    def __init__(self, reactor, pid):
        self.reactor = reactor
        self.pid = pid
        self.samples = []
        self.loop = task.LoopingCall(self.sample)
        self.loop.clock = reactor
        self.loop.start(SAMPLE_INTERVAL).addErrback(lambda f: None)

    def sample(self):
        try:
            self.samples.append((self.reactor.seconds(), resident_mib(self.pid)))
        except OSError:
            pass

    def peak(self, start, end):
        return max((rss for t, rss in self.samples if start <= t <= end), default=float("nan"))

    def stop(self):
        if self.loop.running:
            self.loop.stop()


def connect(reactor, port, protocol, source="127.0.0.1"):
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10,
                                  bindAddress=(source, 0))
    return connectProtocol(endpoint, protocol)


def count_codes(codes):
    counts = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return ", ".join("%s %d" % item for item in sorted(counts.items())) or "none"


def describe_rtts(rtts, lost):
    if not rtts:
        return "no round trip came back (%d sent)" % (len(lost),)
    ms = sorted(rtt * 1000 for rtt in rtts)
    return "chatter round trip p50 %.1f ms, max %.1f ms (%d messages%s)" % (
        statistics.median(ms), ms[-1], len(ms),
        ", %d never came back" % (len(lost),) if lost else "")


class Run:
    """
    One server, an observer and a chatter, and the attacks in turn.
    """

    def __init__(self, reactor, args, server, pid, port, observer, chatter):
        self.reactor = reactor
        self.args = args
        self.server = server
        self.pid = pid
        self.port = port
        self.observer = observer
        self.chatter = chatter
        self.sampler = Sampler(reactor, pid)
        self.cleanups = []

    def rss(self):
        return resident_mib(self.pid)

    def report(self, name, start, end, rss_before, rss_after, lines):
        mean, peak = self.observer.per_second(start, end)
        rtts, lost = self.chatter.between(start, end)
        during = self.sampler.peak(start, end)
        print("\n%s (%.1f s)" % (name, end - start))
        for line in lines:
            print("  " + line)
        print("  server RSS: before %.1f MiB, peak during %.1f MiB (%+.1f), after %.1f MiB "
              "(%+.1f)" % (rss_before, during, during - rss_before, rss_after,
                           rss_after - rss_before))
        print("  the room (observer) received %.1f frames/s on average, %d in the busiest "
              "second" % (mean, peak))
        print("  " + describe_rtts(rtts, lost))
        sys.stdout.flush()

    @defer.inlineCallbacks
    def frames(self):
        args, reactor = self.args, self.reactor
        yield sleep(reactor, 1.0)
        rss_before = self.rss()
        start = reactor.seconds()
        attack = AttackProcess()
        reactor.spawnProcess(attack, sys.executable, [
            sys.executable, __file__, "--half-senders", str(self.port),
            str(args.connections), str(args.addresses), str(args.size), str(args.hold)],
            env=dict(os.environ))
        summary = yield attack.done
        end = reactor.seconds()
        yield sleep(reactor, SETTLE)
        rss_after = self.rss()
        self.report(
            "half-sent frames: %d connections from %d addresses, each %d of a %d-byte frame's "
            "%d bytes, held %g s" % (args.connections, args.addresses, args.size + 3,
                                      args.size, args.size + 4, args.hold),
            start, end, rss_before, rss_after,
            ["%d connected in %.2f s (%d failed to connect); the server closed %d of them "
             "within the hold%s" % (
                 summary["connected"], summary["connect_seconds"], summary["failed"],
                 summary["closed_by_server"],
                 "" if not summary["errors"] else ", with errors: " + ", ".join(
                     "%s %d" % item for item in sorted(summary["errors"].items())))])

    @defer.inlineCallbacks
    def nick(self):
        args, reactor = self.args, self.reactor
        churner = Peer(reactor)
        yield connect(reactor, self.port, churner)
        self.cleanups.append(churner)
        yield churner.welcomed
        churner.send(type="heartbeat")
        yield sleep(reactor, 1.5)
        rss_before = self.rss()
        start = reactor.seconds()
        old = churner.name
        for i in range(args.renames):
            churner.send(type="nick", name="churn%d" % (i,))
        yield sleep(reactor, SETTLE)
        end = reactor.seconds()
        renames = [m for m in self.observer.between(start, end) if m["type"] == "nick"]
        rss_after = self.rss()
        self.report(
            "name churn: %d nick frames at once (from %s)" % (args.renames, old),
            start, end, rss_before, rss_after,
            ["renames broadcast to the room: %d; errors to the churner: %s" % (
                len(renames), count_codes(churner.errors))])
        churner.transport.loseConnection()

    @defer.inlineCallbacks
    def join(self):
        args, reactor = self.args, self.reactor
        churner = Peer(reactor)
        yield connect(reactor, self.port, churner)
        self.cleanups.append(churner)
        yield churner.welcomed
        churner.send(type="join", room=ROOM)
        yield sleep(reactor, 1.5)
        rss_before = self.rss()
        start = reactor.seconds()
        for _ in range(args.cycles):
            churner.send(type="part", room=ROOM)
            churner.send(type="join", room=ROOM)
        yield sleep(reactor, SETTLE)
        end = reactor.seconds()
        events = [m for m in self.observer.between(start, end)
                  if m["type"] in ("join", "leave") and m.get("room") == ROOM]
        rss_after = self.rss()
        self.report(
            "join/part churn: %d part/join pairs of one room at once" % (args.cycles,),
            start, end, rss_before, rss_after,
            ["join and leave events in the room: %d; errors to the churner: %s" % (
                len(events), count_codes(churner.errors))])
        churner.transport.loseConnection()


#: What C{--no-trim} runs the server with: the heap trim after a burst off.
NO_TRIM = "import twisted_chat.heap as heap; heap._malloc_trim = None; "


@defer.inlineCallbacks
def start_server(reactor, options, prelude=""):
    server = ServerProcess()
    args = chat_server_args(0, options, prelude)
    process = reactor.spawnProcess(server, sys.executable, args, env=dict(os.environ),
                                   path=ROOT)
    timeout = reactor.callLater(30, lambda: process.signalProcess("KILL"))
    try:
        port = yield server.port
    finally:
        if timeout.active():
            timeout.cancel()
    return process, server, port


@defer.inlineCallbacks
def stop_server(reactor, process, server):
    if not server.running:
        return
    process.signalProcess("TERM")
    kill = reactor.callLater(5, lambda: server.running and process.signalProcess("KILL"))
    yield server.ended
    if kill.active():
        kill.cancel()


@defer.inlineCallbacks
def main(reactor, *argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="frames,nick,join",
                        help="comma-separated attacks, of frames, nick, join")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--addresses", type=int, default=20)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--renames", type=int, default=60)
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--server-options", default="--max-per-ip 0",
                        help="the server's options (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop everything after this long")
    parser.add_argument("--no-trim", action="store_true",
                        help="run the server without its heap trim after a burst, to "
                             "measure what the trim gives back")
    args = parser.parse_args(argv)
    attacks = args.only.split(",")
    unknown = set(attacks) - {"frames", "nick", "join"}
    if unknown:
        parser.error("no attack %s" % (", ".join(sorted(unknown)),))
    if not 1 <= args.addresses <= 250:
        parser.error("--addresses must be between 1 and 250")
    options = shlex.split(args.server_options)
    process, server, port = yield start_server(
        reactor, options, NO_TRIM if args.no_trim else "")
    print("server: twistd chat %s (pid %d, port %d, code in %s%s)" % (
        " ".join(options), process.pid, port, ROOT, ", heap trim off" if args.no_trim else ""))
    peers = []
    run = None

    def out_of_time():
        print("abuse.py: out of time after %g s; stopping" % (args.max_seconds,))
        stop_server(reactor, process, server).addBoth(
            lambda _: os.kill(os.getpid(), signal.SIGTERM))

    limit = reactor.callLater(args.max_seconds, out_of_time)
    try:
        observer, chatter = Observer(reactor), Chatter(reactor)
        for peer in (observer, chatter):
            yield connect(reactor, port, peer)
            peers.append(peer)
            yield peer.welcomed
            peer.send(type="heartbeat")
        observer.send(type="join", room=ROOM)
        chatter.start()
        run = Run(reactor, args, server, process.pid, port, observer, chatter)
        for attack in attacks:
            yield getattr(run, attack)()
    finally:
        if limit.active():
            limit.cancel()
        if run is not None:
            run.sampler.stop()
            peers.extend(run.cleanups)
        for peer in peers:
            if isinstance(peer, Chatter):
                peer.stop()
            if peer.transport is not None and not peer.gone:
                peer.transport.abortConnection()
        yield stop_server(reactor, process, server)
    if b"Traceback" in server.output:
        print("\nthe server logged a traceback:\n" + server.output.decode(errors="replace"))
        raise SystemExit(1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--half-senders"]:
        port, connections, addresses, size = map(int, sys.argv[2:6])
        print(json.dumps(half_senders(port, connections, addresses, size, float(sys.argv[6]))))
    else:
        task.react(main, sys.argv[1:])
