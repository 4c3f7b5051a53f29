"""
Integration tests on real loopback sockets (127.0.0.1 only): the server and
clients in this process, the twistd plugin and the stdio client as child
processes, and the classic ways a TCP peer dies.

Every test is bounded by trial's C{timeout}, and every child process is
killed in cleanup if it is still running.
"""

import signal
import socket
import struct

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from twisted_chat import wire
from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import exit_status
from tests.helpers.waiting import poll


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
        self.assertEqual(server.room.seq, clients[-1].last_seq)

    @defer.inlineCallbacks
    def connect_welcomed(self, port):
        """
        A L{RawClient} connected to 127.0.0.1:C{port} that has had its
        welcome.
        """
        raw = yield self.connect_raw(port)
        yield raw.wait_for_type("welcome")
        return raw

    @defer.inlineCallbacks
    def test_burst_beyond_backlog_while_pending(self):
        """
        On real sockets: a client that has not sent its first frame yet
        while the room has more events than --backlog still receives every
        one after its welcome, then its own join, with no gap.
        """
        server = yield self.start_server(backlog=8)
        server.join_hold = 30
        talker = yield self.connect_welcomed(server.port)
        talker.sendString(wire.encode({"type": "heartbeat"}))
        yield talker.wait_for_type("join")
        quiet = yield self.connect_welcomed(server.port)
        talker.transport.write(b"".join(
            wire.encode_frame({"type": "message", "text": "m%d" % (i,)}) for i in range(18)))
        yield talker.waiter.wait_until(
            lambda: len([m for m in talker.messages if m["type"] == "message"]) == 18)
        self.assertEqual(len(server.room.backlog), 8)
        quiet.sendString(wire.encode({"type": "heartbeat"}))
        yield quiet.wait_for_type("heartbeat_ack")
        welcome_seq = quiet.messages[0]["seq"]
        events = [m for m in quiet.messages if "seq" in m and m["type"] != "welcome"]
        self.assertEqual([m["seq"] for m in events],
                         list(range(welcome_seq + 1, welcome_seq + 20)))
        self.assertEqual([m["type"] for m in events], ["message"] * 18 + ["join"])

    @defer.inlineCallbacks
    def test_peer_reset(self):
        """
        A client whose connection is reset (RST, as when its process dies
        with data unread) leaves with reason reset; the server keeps
        serving the others.
        """
        server = yield self.start_server()
        observer = yield self.connect_client(server.port)
        raw = yield self.connect_raw(server.port)
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
        raw = yield self.connect_raw(server.port)
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
        child, port = yield self.spawn_twistd(
            "--heartbeat-interval", "1", "--timeout", "3", "--verbose"
        )
        chat = yield self.connect_client(port, nick="alice")
        chat.line_received("hello from alice")
        chat.line_received("/who")
        yield chat.transcript.wait_for("* online: alice")
        self.assertIn("> alice: hello from alice", chat.transcript.lines)
        yield child.wait_for(rb"alice \(127.0.0.1:\d+\) says: hello from alice")
        stopping = reactor.seconds()
        child.signal(signal.SIGTERM)
        status = yield chat.done
        # A graceful stop is said as such, once, with its own status.
        self.assertEqual(chat.transcript.lines[-1], "* the server shut down")
        self.assertEqual(chat.errors.lines, [])
        self.assertEqual(status, 4)
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
    def test_stdio_client_rooms_piped(self):
        """
        Two stdio clients on loopback: one joins a room and talks there, the
        other sends it a direct message; each prints the lines as the
        README shows them, and both exit 0.
        """
        server = yield self.start_server()
        alice = self.spawn_client(server.port, "--name", "alice")
        alice.transport.write(b"/join dev\nhello dev\n/who\n")
        # Until alice has joined, bob has nobody to write to.
        yield poll(lambda: b"hello dev" in alice.out)
        bob = self.spawn_client(server.port, "--name", "bob")
        bob.transport.write(b"/msg alice psst\n/join dev\nhi all\n")
        bob.transport.closeStdin()
        reason = yield bob.ended
        self.assertEqual(exit_status(reason), (0, None), bob.err)
        yield poll(lambda: b"hi all" in alice.out)
        alice.transport.closeStdin()
        reason = yield alice.ended
        self.assertEqual(exit_status(reason), (0, None), alice.err)
        alice_lines = alice.out.decode().splitlines()
        bob_lines = bob.out.decode().splitlines()
        self.assertIn("> alice: hello dev", alice_lines)
        self.assertIn("* online: @alice", alice_lines)
        self.assertIn("*bob* psst", alice_lines)
        self.assertIn("* bob joined", alice_lines)
        self.assertIn("> bob: hi all", alice_lines)
        self.assertIn("-> *alice* psst", bob_lines)
        self.assertIn("> bob: hi all", bob_lines)
        self.assertNotIn(b"Traceback", alice.err + bob.err)

    @defer.inlineCallbacks
    def test_stdio_client_piped_file_never_rate_limited(self):
        """
        A 1000-line file piped through the client is paced to the server's
        announced rate: no line is refused, every line comes back, in order.
        """
        server = yield self.start_server(rate=200.0, burst=20)
        child = self.spawn_client(server.port, "--name", "batch")
        child.transport.write(b"".join(b"line %d\n" % (i,) for i in range(1000)))
        child.transport.closeStdin()
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None), child.err)
        lines = child.out.decode().splitlines()
        self.assertEqual(
            [l for l in lines if l.startswith("> batch: ")],
            ["> batch: line %d" % (i,) for i in range(1000)],
        )
        self.assertFalse([l for l in lines if l.startswith("!")])

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
