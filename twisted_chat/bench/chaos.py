# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
C{chaos}: start a server (C{twistd -n chat}), reproduce the classic TCP
failure cases one by one, and report how long each side took to notice.
"""

import json
import signal
import socket

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import Int32StringReceiver

from twisted_chat import wire
from twisted_chat.bench.servers import start_chat_server, with_timeout


class _Watcher(Int32StringReceiver):
    """
    A client for chaos runs: it beats and watches like the real client, and
    notes when it saw what.
    """

    MAX_LENGTH = wire.MAX_FRAME_LIMIT

    def __init__(self, reactor, read=True):
        self.reactor = reactor
        self.read = read
        self.events = []
        self.welcome = defer.Deferred()
        self.lost = defer.Deferred()
        self.lost_at = None
        self.timeout = None
        self.last_frame = None
        self.beat = None
        self.watchdog = None

    def connectionMade(self):
        self.sendString(b'{"type":"heartbeat"}')
        if not self.read:
            self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def stringReceived(self, payload):
        self.last_frame = self.reactor.seconds()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.reset(self.timeout)
        message = json.loads(payload)
        self.events.append((self.reactor.seconds(), message))
        if message["type"] == "welcome" and not self.welcome.called:
            self.timeout = message["timeout"]
            self.beat = task.LoopingCall(self.sendString, b'{"type":"heartbeat"}')
            self.beat.clock = self.reactor
            if self.read:
                self.beat.start(message["heartbeat_interval"], now=False)
                self.watchdog = self.reactor.callLater(
                    self.timeout, self.transport.abortConnection
                )
            else:
                # Alive, but from now on it reads nothing.
                self.transport.pauseProducing()
                self.beat.start(message["heartbeat_interval"] / 2.0)
            self.welcome.callback(message)

    def silence(self):
        if self.beat is not None and self.beat.running:
            self.beat.stop()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.cancel()

    def connectionLost(self, reason):
        self.lost_at = self.reactor.seconds()
        self.silence()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.cancel()
        self.lost.callback(None)

    def wait_for(self, predicate, seconds):
        d = defer.Deferred()

        def check():
            for at, message in self.events:
                if predicate(message):
                    if not d.called:
                        d.callback(at)
                    return
            if self.reactor.seconds() < deadline:
                self.reactor.callLater(0.02, check)
            elif not d.called:
                d.callback(None)

        deadline = self.reactor.seconds() + seconds
        check()
        return d


@defer.inlineCallbacks
def run_chaos(reactor, options, out):
    interval, timeout = options["heartbeat-interval"], options["timeout"]
    server_args = ["--heartbeat-interval", str(interval), "--timeout", str(timeout), "--rate", "0"]
    results = []

    def start_server(port=0):
        return start_chat_server(reactor, server_args, port)

    @defer.inlineCallbacks
    def connect(port, read=True):
        watcher = _Watcher(reactor, read)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), watcher)
        yield with_timeout(reactor, watcher.welcome, 10, "waiting for welcome")
        return watcher

    def kill(process, server):
        try:
            process.signalProcess(signal.SIGKILL)
        except Exception:
            pass
        return server.ended

    def result(case, noticed_by, began, at, bound):
        took = None if at is None else at - began
        ok = took is not None and (bound is None or took <= bound)
        results.append((case, noticed_by, took, bound, ok))

    bound = timeout + 1.0

    # 1. Server process killed.
    process, server, port = yield start_server()
    watcher = yield connect(port)
    began = reactor.seconds()
    process.signalProcess(signal.SIGKILL)
    yield watcher.lost
    yield server.ended
    result("server process killed (SIGKILL)", "client: EOF", began, watcher.lost_at, 1.0)

    # 2. Server host silent (SIGSTOP: no FIN, no RST).
    process, server, port = yield start_server()
    watcher = yield connect(port)
    began = reactor.seconds()
    process.signalProcess(signal.SIGSTOP)
    yield watcher.lost
    result("server host silent (SIGSTOP)", "client: timeout", began, watcher.lost_at, bound)
    process.signalProcess(signal.SIGCONT)

    # 3. Client host silent: a client stops sending; the server expires it.
    observer = yield connect(port)
    silent = yield connect(port)
    yield task.deferLater(reactor, 0.2, lambda: None)
    began = reactor.seconds()
    silent.silence()
    at = yield observer.wait_for(
        lambda m: m["type"] == "leave" and m.get("reason") == "timeout", bound + 2
    )
    result("client host silent (stops sending)", "server: timeout, others told", began, at, bound)

    # 4. A reader that stops reading while others talk.
    reader = yield connect(port, read=False)
    talker = yield connect(port)
    yield task.deferLater(reactor, 0.2, lambda: None)
    began = reactor.seconds()
    flood = task.LoopingCall(
        talker.sendString,
        json.dumps({"type": "message", "text": "x" * 4000}).encode(),
    )
    flood.clock = reactor
    flood.start(0.001)
    at = yield observer.wait_for(
        lambda m: m["type"] == "leave" and m.get("reason") == "sendq", bound + 5
    )
    flood.stop()
    result("a reader that stops reading", "server: lagged, then sendq", began, at, bound + 1)
    for client in (observer, silent, reader, talker):
        client.transport.abortConnection()

    # 5. Crash and restart on the same port.
    watcher = yield connect(port)
    began = reactor.seconds()
    yield kill(process, server)
    process, server, _ = yield start_server(port)
    restarted = reactor.seconds()
    again = _Watcher(reactor)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), again)
    yield again.welcome
    result("crash and restart on the same port", "client: EOF; server back", began,
           watcher.lost_at, 1.0)
    results.append(("  (restart took)", "", restarted - began, None, True))
    again.transport.abortConnection()
    yield kill(process, server)

    width = max(len(r[0]) for r in results)
    out.write("failure case%s  noticed by%s  after     bound   ok\n" % (" " * (width - 12), " " * 21))
    for case, by, took, limit, ok in results:
        out.write("%s  %-31s  %-8s  %-6s  %s\n" % (
            case.ljust(width), by,
            "-" if took is None else "%.2f s" % took,
            "" if limit is None else "%.1f s" % limit,
            "yes" if ok else "NO"))
    out.write("(server timeout %g s, heartbeat interval %g s)\n" % (timeout, interval))
    return all(r[4] for r in results)
