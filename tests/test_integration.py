"""
Integration tests on real loopback sockets (127.0.0.1 only): the server and
clients in this process, the twistd plugin and the stdio client as child
processes, and the classic ways a TCP peer dies.

Every test is bounded by trial's C{timeout}, and every child process is
killed in cleanup if it is still running.
"""

import re
import shutil
import signal
import socket
import struct
import sys
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial.unittest import TestCase

from twisted_chat import wire
from twisted_chat.client import ChatClient, ChatClientProtocol
from twisted_chat.server import ChatServerFactory
from tests.common import child_env

TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]


class Waiter:
    """
    Deferreds that fire when a condition on collected output becomes true.
    """

    def __init__(self):
        self._waiting = []

    def wait_until(self, condition):
        """
        @return: a Deferred firing with C{condition()}'s first true value.
        """
        value = condition()
        if value:
            return defer.succeed(value)
        d = defer.Deferred()
        self._waiting.append((condition, d))
        return d

    def check(self):
        for entry in list(self._waiting):
            condition, d = entry
            value = condition()
            if value:
                self._waiting.remove(entry)
                d.callback(value)


class Transcript(Waiter):
    """
    The lines a L{ChatClient} shows, with waiting for a given line.
    """

    def __init__(self):
        super().__init__()
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)
        self.check()

    def wait_for(self, text):
        """
        @return: a Deferred that fires once a line contains C{text}.
        """
        return self.wait_until(lambda: any(text in line for line in self.lines))


class ChildProcess(ProcessProtocol, Waiter):
    """
    A child process whose output is collected.

    @ivar ended: fires with the process's end reason
        (L{ProcessDone} or L{ProcessTerminated}).
    """

    def __init__(self):
        Waiter.__init__(self)
        self.out = b""
        self.err = b""
        self.ended = defer.Deferred()
        self.running = True

    def outReceived(self, data):
        self.out += data
        self.check()

    def errReceived(self, data):
        self.err += data
        self.check()

    def wait_for(self, pattern, stream="out"):
        """
        @return: a Deferred that fires with the first match of the regular
            expression C{pattern} (bytes) in stdout or stderr.
        """
        return self.wait_until(lambda: re.search(pattern, getattr(self, stream)))

    def processEnded(self, reason):
        self.running = False
        self.ended.callback(reason.value)

    def signal(self, number):
        self.transport.signalProcess(number)


class LoopbackMixin:
    """
    Servers, clients and child processes on loopback, all cleaned up.
    """

    timeout = 15

    def start_server(self, **settings):
        """
        Listen on 127.0.0.1, on a free port, with a real L{ChatServerFactory}.

        @return: a Deferred firing with the factory; its C{port} attribute is
            the port number.
        """
        factory = ChatServerFactory(clock=reactor, **settings)
        self.addCleanup(factory.shutdown, "test over", 1.0)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

        def listening(port):
            self.addCleanup(port.stopListening)
            factory.port = port.getHost().port
            return factory

        return endpoint.listen(factory).addCallback(listening)

    def connect_client(self, port, nick=None):
        """
        Connect a L{ChatClient} to 127.0.0.1:C{port} and wait for its welcome.

        @return: a Deferred firing with the client; its C{transcript} and
            C{errors} attributes collect what it shows.
        """
        transcript, errors = Transcript(), Transcript()
        chat = ChatClient(reactor, "127.0.0.1:%d" % (port,), transcript, errors, nick=nick)
        chat.transcript, chat.errors = transcript, errors
        # Wait for the client's own side of the connection to close too.
        closed = defer.Deferred()
        chat.done.addBoth(lambda result: (closed.callback(None), result)[1])
        self.addCleanup(lambda: (chat.quit(), closed)[1])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        d = connectProtocol(endpoint, ChatClientProtocol(reactor, chat))
        d.addCallback(lambda _: transcript.wait_for("* you are "))
        return d.addCallback(lambda _: chat)

    def spawn(self, args, **kwargs):
        """
        Run this Python with C{args}, the checkout first on its path.

        @return: the L{ChildProcess}; it is killed in cleanup if still
            running.
        """
        env = child_env()
        # Not self.mktemp(): under pytest that lands in the checkout.
        workdir = tempfile.mkdtemp(prefix="twisted-chat-test-")
        self.addCleanup(shutil.rmtree, workdir, True)
        child = ChildProcess()
        reactor.spawnProcess(
            child, sys.executable, [sys.executable] + args, env=env, path=workdir, **kwargs
        )

        def cleanup():
            if not child.running:
                return None
            for number in [signal.SIGCONT, signal.SIGKILL]:
                try:
                    child.signal(number)
                except ProcessExitedAlready:
                    pass
            return child.ended

        self.addCleanup(cleanup)
        return child

    @defer.inlineCallbacks
    def spawn_twistd(self, *options):
        """
        Run C{twistd -n chat} on a free loopback port.

        @return: a Deferred firing with the child and its port.
        """
        child = self.spawn(
            TWISTD
            + ["-n", "--pidfile=", "chat", "--port", "tcp:0:interface=127.0.0.1"]
            + list(options)
        )
        match = yield child.wait_for(rb"starting on (\d+)")
        return child, int(match.group(1))

    def spawn_client(self, port, *options):
        """
        Run the stdio client against 127.0.0.1:C{port}.
        """
        return self.spawn(
            ["-m", "twisted_chat.client", "--port", str(port)] + list(options)
        )

    def free_port(self):
        """
        A loopback port nobody listens on (bound, then released).
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def exit_status(reason):
    """
    (exit code, signal) of a child's end reason.
    """
    return getattr(reason, "exitCode", None), getattr(reason, "signal", None)


class RawClient(Int32StringReceiver):
    """
    A bare protocol client: it collects frames and sends only when told.
    """

    def __init__(self):
        self.messages = []
        self.lost = defer.Deferred()
        self.waiter = Waiter()

    def stringReceived(self, payload):
        self.messages.append(wire.decode(payload))
        self.waiter.check()

    def connectionLost(self, reason):
        self.lost.callback(None)

    def wait_for_type(self, kind):
        return self.waiter.wait_until(
            lambda: [m for m in self.messages if m["type"] == kind]
        )


class RoomTests(LoopbackMixin, TestCase):
    """
    The server and several clients in this process, on loopback.
    """

    @defer.inlineCallbacks
    def test_several_clients_broadcast(self):
        """
        Every client sees every message from every client, all in the same
        order, with no gap in seq.
        """
        server = yield self.start_server()
        clients = []
        for i in range(4):
            chat = yield self.connect_client(server.port, nick="user%d" % (i,))
            clients.append(chat)
        for round in range(5):
            for i, chat in enumerate(clients):
                chat.line_received("message %d from %d" % (round, i))
        for chat in clients:
            yield chat.transcript.wait_until(
                lambda chat=chat: len([l for l in chat.transcript.lines if l.startswith("> ")]) == 20
            )
        transcripts = [
            [l for l in chat.transcript.lines if l.startswith("> ")] for chat in clients
        ]
        for transcript in transcripts[1:]:
            self.assertEqual(transcript, transcripts[0])
        for chat in clients:
            self.assertFalse([l for l in chat.transcript.lines if "missed" in l])
        self.assertEqual(server.hub.seq, clients[-1].last_seq)

    @defer.inlineCallbacks
    def test_peer_reset(self):
        """
        A client whose connection is reset (RST, as when its process dies
        with data unread) leaves with reason reset; the server keeps
        serving the others.
        """
        server = yield self.start_server()
        observer = yield self.connect_client(server.port)
        raw = RawClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), raw)
        yield raw.wait_for_type("welcome")
        raw.sendString(wire.encode({"type": "heartbeat"}))
        yield raw.wait_for_type("heartbeat_ack")
        handle = raw.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.transport.abortConnection()
        yield raw.lost
        yield observer.transcript.wait_for("* guest-2 left (reset)")
        observer.line_received("still here")
        yield observer.transcript.wait_for("> guest-1: still here")

    @defer.inlineCallbacks
    def test_silent_client_expires(self):
        """
        A client that connects and then sends nothing (its host died) is
        dropped after the timeout and the others are told.
        """
        server = yield self.start_server(heartbeat_interval=0.25, timeout=0.75)
        observer = yield self.connect_client(server.port)
        raw = RawClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), raw)
        # One frame, so it is in the room; then nothing ever again.
        raw.sendString(wire.encode({"type": "heartbeat"}))
        yield observer.transcript.wait_for("* guest-2 joined")
        yield observer.transcript.wait_for("* guest-2 left (timeout)")
        yield raw.lost
        self.assertEqual(len(server.connections), 1)

    @defer.inlineCallbacks
    def test_silent_server_detected(self):
        """
        A server that greets and then falls silent without closing (its host
        died) is declared dead after its announced timeout.
        """
        welcome = dict(
            type="welcome", protocol=1, name="guest-1", heartbeat_interval=0.25,
            timeout=0.75, max_frame=65536, max_text=4096, seq=0,
        )

        class Mute(Protocol):
            def connectionMade(self):
                self.transport.write(wire.encode_frame(welcome))

        factory = Factory.forProtocol(Mute)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        chat = yield self.connect_client(port.getHost().port)
        status = yield chat.done
        self.assertEqual(status, 1)
        self.assertEqual(chat.errors.lines, ["server not responding (no data for 0.75 s)"])


class ProcessTests(LoopbackMixin, TestCase):
    """
    The twistd plugin and the stdio client as real processes.
    """

    @defer.inlineCallbacks
    def test_twistd_plugin_chat_and_sigterm(self):
        """
        twistd -n chat serves clients; on SIGTERM it sends shutdown, closes
        the connections and is gone within a few seconds.
        """
        child, port = yield self.spawn_twistd("--heartbeat-interval", "1", "--timeout", "3")
        chat = yield self.connect_client(port, nick="alice")
        chat.line_received("hello from alice")
        chat.line_received("/who")
        yield chat.transcript.wait_for("* online: alice")
        self.assertIn("> alice: hello from alice", chat.transcript.lines)
        yield child.wait_for(rb"alice: hello from alice")
        stopping = reactor.seconds()
        child.signal(signal.SIGTERM)
        status = yield chat.done
        self.assertIn("* server shutting down: server is shutting down", chat.transcript.lines)
        self.assertEqual(status, 1)
        reason = yield child.ended
        self.assertLess(reactor.seconds() - stopping, 5)
        self.assertIn(exit_status(reason), [(0, None), (None, signal.SIGTERM)])
        self.assertIn(b"left: shutdown", child.out)
        self.assertNotIn(b"Traceback", child.out + child.err)

    @defer.inlineCallbacks
    def test_stdio_client_piped(self):
        """
        Lines piped into the stdio client are sent, echoed back, printed,
        and the client exits 0 after stdin ends.
        """
        server = yield self.start_server()
        child = self.spawn_client(server.port, "--name", "bob")
        child.transport.write(b"hello\nworld\n/who\n")
        child.transport.closeStdin()
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None), child.err)
        lines = child.out.decode().splitlines()
        self.assertEqual(
            lines[0], "chatting server(127.0.0.1:%d) connect success!" % (server.port,)
        )
        self.assertEqual(
            [l for l in lines if l.startswith(">") or l.startswith("* online")],
            ["> bob: hello", "> bob: world", "* online: bob"],
        )
        self.assertEqual(child.err, b"")

    @defer.inlineCallbacks
    def test_stdio_client_refused(self):
        """
        With nothing listening, the client says so in one line and exits 1.
        """
        port = self.free_port()
        child = self.spawn_client(port)
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (1, None))
        self.assertEqual(
            child.err.decode(), "cannot connect to 127.0.0.1:%d: Connection refused\n" % (port,)
        )

    @defer.inlineCallbacks
    def test_server_killed(self):
        """
        A server killed with SIGKILL: its kernel closes the socket, and the
        client says "server terminated prematurely" and exits 1.
        """
        server, port = yield self.spawn_twistd()
        client = self.spawn_client(port)
        yield client.wait_for(rb"\* you are guest-1")
        server.signal(signal.SIGKILL)
        reason = yield client.ended
        self.assertEqual(exit_status(reason), (1, None))
        self.assertEqual(client.err, b"server terminated prematurely\n")

    @defer.inlineCallbacks
    def test_server_host_silent(self):
        """
        A server that stops (SIGSTOP: like a crashed host, no FIN, no RST)
        is declared dead by the client within timeout + 1 s.
        """
        server, port = yield self.spawn_twistd("--heartbeat-interval", "0.5", "--timeout", "1.5")
        client = self.spawn_client(port)
        yield client.wait_for(rb"\* you are guest-1")
        server.signal(signal.SIGSTOP)
        stopped = reactor.seconds()
        reason = yield client.ended
        self.assertLess(reactor.seconds() - stopped, 1.5 + 1)
        self.assertEqual(exit_status(reason), (1, None))
        self.assertEqual(client.err, b"server not responding (no data for 1.5 s)\n")

    @defer.inlineCallbacks
    def test_client_host_silent(self):
        """
        A client that stops (SIGSTOP: its host is gone) is expired by the
        server within timeout + 1 s, and the others see it leave.
        """
        server = yield self.start_server(heartbeat_interval=0.5, timeout=1.5)
        observer = yield self.connect_client(server.port)
        client = self.spawn_client(server.port, "--name", "frozen")
        yield observer.transcript.wait_for("* guest-2 is now frozen")
        client.signal(signal.SIGSTOP)
        stopped = reactor.seconds()
        yield observer.transcript.wait_for("* frozen left (timeout)")
        self.assertLess(reactor.seconds() - stopped, 1.5 + 1)
