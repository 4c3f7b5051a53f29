"""
Tests for L{twisted_chat.client}: the client protocol, the user-facing
L{ChatClient}, rendering, and client and server together in memory.
"""

import io
import sys

from twisted.internet import defer
from twisted.internet.address import HostnameAddress, IPv4Address
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat import client as client_module
from twisted_chat.client import (
    DRAIN_TIMEOUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SHUTDOWN,
    EXIT_USAGE,
    ChatClient,
    ChatClientProtocol,
    ConsoleProtocol,
    IChatView,
    Options,
    describe_connect_failure,
    describe_tls_failure,
    render,
    shutdown_line,
)
from twisted_chat.server import ChatServerFactory
from tests.helpers.memory import frame, parse_frames

WELCOME = {
    "type": "welcome",
    "protocol": 1,
    "name": "guest-7",
    "heartbeat_interval": 10.0,
    "timeout": 30.0,
    "max_frame": 65536,
    "max_text": 4096,
    "seq": 4,
}


class ClientMixin:
    """
    A L{ChatClient} and its L{ChatClientProtocol} on a L{StringTransport}.
    """

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.lines = []
        self.errors = []
        self.client = self.make_client()

    def make_client(self, nick=None):
        self.client = ChatClient(
            self.clock, "127.0.0.1:56562", self.lines.append, self.errors.append, nick=nick
        )
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.client

    def deliver(self, **message):
        self.protocol.dataReceived(frame(**message))

    def welcome(self, **overrides):
        message = dict(WELCOME, **overrides)
        self.deliver(**message)
        del self.lines[:]

    def sent(self):
        messages = parse_frames(self.transport.value())
        self.transport.clear()
        return messages

    def lose(self, exception=ConnectionDone):
        self.protocol.connectionLost(Failure(exception()))

    def status(self):
        return self.successResultOf(self.client.done)


class HeartbeatTests(ClientMixin, SynchronousTestCase):
    """
    The heartbeat LoopingCall.
    """

    def test_none_before_welcome(self):
        """
        Nothing is sent before the welcome says how often to beat.
        """
        self.clock.advance(25)
        self.assertEqual(self.sent(), [])
        self.assertIsNone(self.protocol.heartbeat)

    def test_cadence_from_welcome(self):
        """
        Heartbeats go out every heartbeat_interval from the welcome, the
        first one interval after it, each carrying the clock's time.
        """
        self.clock.advance(100)
        self.welcome(heartbeat_interval=2.5, timeout=10.0)
        self.clock.advance(2.4)
        self.assertEqual(self.sent(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.sent(), [{"type": "heartbeat", "ts": 102.5}])
        self.clock.advance(2.5)
        self.assertEqual(self.sent(), [{"type": "heartbeat", "ts": 105.0}])
        for _ in range(4):
            self.clock.advance(2.5)
        self.assertEqual([m["ts"] for m in self.sent()], [107.5, 110.0, 112.5, 115.0])

    def test_round_trip_reported(self):
        """
        The round trip a heartbeat's ack shows is reported in the next
        heartbeat, for the server's metrics.
        """
        self.clock.advance(100)
        self.welcome(heartbeat_interval=2.5, timeout=10.0)
        self.clock.advance(2.5)
        self.assertEqual(self.sent(), [{"type": "heartbeat", "ts": 102.5}])
        self.clock.advance(0.25)
        self.deliver(type="heartbeat_ack", ts=102.5, now=1.0)
        self.clock.advance(2.25)
        self.assertEqual(self.sent(), [{"type": "heartbeat", "ts": 105.0, "rtt": 0.25}])

    def test_keeps_beating_while_server_answers(self):
        """
        With the server answering, the client stays connected indefinitely.
        """
        self.welcome()
        for _ in range(20):
            self.clock.advance(10)
            (heartbeat,) = self.sent()
            self.deliver(type="heartbeat_ack", ts=heartbeat["ts"], now=1.0)
        self.assertFalse(self.transport.disconnecting)

    def test_stops_on_disconnect(self):
        """
        Losing the connection stops the heartbeat and the timer: nothing
        stays scheduled.
        """
        self.welcome()
        self.lose()
        self.assertIsNone(self.protocol.heartbeat)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DeadServerTests(ClientMixin, SynchronousTestCase):
    """
    A server that sends nothing for its timeout is declared dead.
    """

    def test_declared_dead_after_timeout(self):
        """
        timeout seconds after the last frame, not before, the client aborts,
        says why on stderr and exits 1.
        """
        self.welcome(timeout=30.0)
        self.clock.advance(20)
        self.deliver(type="heartbeat_ack", now=1.0)
        self.clock.advance(30 - 2**-10)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(2**-10)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertEqual(self.errors, ["server not responding (no data for 30 s)"])
        self.assertEqual(self.status(), 1)

    def test_uses_announced_timeout(self):
        """
        The timeout is the one the welcome announces.
        """
        self.welcome(heartbeat_interval=1.0, timeout=4.5)
        self.clock.advance(4.5)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertEqual(self.errors, ["server not responding (no data for 4.5 s)"])

    def test_no_welcome(self):
        """
        A server that accepts but never greets (or a TLS server, waiting for
        a handshake) is given up after WELCOME_TIMEOUT, with a hint.
        """
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertEqual(
            self.errors, ["no welcome from the server within 10 s (is it a TLS port? try --tls)"])

    def test_any_frame_counts(self):
        """
        Any frame from the server, even one we cannot read, shows it is
        alive.
        """
        self.welcome()
        for data in [frame(type="join", seq=5, name="x"), frame(type="future"), b"\x00\x00\x00\x01x"]:
            self.clock.advance(29)
            self.protocol.dataReceived(data)
        self.clock.advance(29)
        self.assertFalse(self.transport.disconnecting)

    def test_server_closes(self):
        """
        A server that closes the connection ends the session with
        "server terminated prematurely" and status 1.
        """
        self.welcome()
        self.lose()
        self.assertEqual(self.errors, ["server terminated prematurely"])
        self.assertEqual(self.status(), 1)

    def test_oversized_frame(self):
        """
        A frame larger than the announced max_frame is refused and the
        connection dropped.
        """
        self.welcome(max_frame=2048)
        self.protocol.dataReceived(b"\x00\x00\x08\x01")
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("2049", self.lines[-1])


class RenderTests(SynchronousTestCase):
    """
    L{render}: one line per event.
    """

    def test_formats(self):
        """
        Every event has its documented line.
        """
        cases = [
            ({"type": "message", "from": "alice", "text": "hello"}, "> alice: hello"),
            ({"type": "join", "name": "alice"}, "* alice joined"),
            ({"type": "leave", "name": "alice", "reason": "timeout"}, "* alice left (timeout)"),
            (
                {"type": "leave", "name": "bob", "reason": "quit", "message": "bye"},
                "* bob left (quit: bye)",
            ),
            ({"type": "nick", "old": "guest-7", "new": "alice"}, "* guest-7 is now alice"),
            ({"type": "who", "names": ["alice", "bob"]}, "* online: alice, bob"),
            ({"type": "error", "code": "x", "message": "no good"}, "! no good"),
            ({"type": "shutdown", "message": "bye"}, "* the server shut down: bye"),
        ]
        for message, line in cases:
            self.assertEqual(render(message), line)

    def test_silent(self):
        """
        Heartbeat acks and unknown types show nothing.
        """
        self.assertIsNone(render({"type": "heartbeat_ack", "now": 1}))
        self.assertIsNone(render({"type": "from-the-future"}))

    def test_sanitized(self):
        """
        Names and text from the network cannot reach the terminal raw.
        """
        line = render({"type": "message", "from": "x\x1b]0;owned\x07", "text": "\x1b[2J\u202eevil\r"})
        self.assertEqual(line, "> x\\x1b]0;owned\\x07: \\x1b[2J\\u202eevil\\x0d")
        self.assertEqual(render({"type": "who", "names": ["a\nb"]}), "* online: a\\x0ab")
        self.assertEqual(
            render({"type": "error", "message": "\x9b31m"}), "! \\x9b31m"
        )

    def test_malformed_fields(self):
        """
        Missing or mistyped fields render without raising.
        """
        self.assertEqual(render({"type": "message"}), "> ?: ?")
        self.assertEqual(render({"type": "who", "names": "x"}), "* online: ")
        self.assertEqual(render({"type": "join", "name": 5}), "* 5 joined")


class ChatClientTests(ClientMixin, SynchronousTestCase):
    """
    L{ChatClient}: what the user types and sees.
    """

    def test_connect_line(self):
        """
        The classic success line comes with the welcome, not with the
        connection (which, with TLS, may yet fail its handshake).
        """
        self.assertEqual(self.lines, [])
        self.deliver(**WELCOME)
        self.assertEqual(self.lines[0], "chatting server(127.0.0.1:56562) connect success!")

    def test_welcome_line(self):
        """
        The welcome tells the user their name.
        """
        self.deliver(**WELCOME)
        self.assertEqual(self.lines[1:], ["* you are guest-7; type /help for help"])

    def test_connect_line_once(self):
        """
        A reconnection's welcome does not claim a new connect success.
        """
        self.client.reconnect = True
        self.welcome(session="s1")
        self.lose()
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.protocol.makeConnection(StringTransport())
        self.deliver(**dict(WELCOME, session="s2"))
        self.assertFalse([line for line in self.lines if "connect success" in line])

    def test_line_is_message(self):
        """
        A typed line is sent as a message.
        """
        self.welcome()
        self.client.line_received("hello there")
        self.assertEqual(self.sent(), [{"type": "message", "text": "hello there"}])

    def test_empty_line_ignored(self):
        """
        An empty line sends nothing.
        """
        self.welcome()
        self.client.line_received("")
        self.assertEqual(self.sent(), [])

    def test_double_slash(self):
        """
        // sends a line that starts with a slash.
        """
        self.welcome()
        self.client.line_received("//shrug")
        self.assertEqual(self.sent(), [{"type": "message", "text": "/shrug"}])

    def test_commands(self):
        """
        /nick and /who send their frames; /help prints help.
        """
        self.welcome()
        self.client.line_received("/nick alice")
        self.client.line_received("/who")
        self.assertEqual(self.sent(), [{"type": "nick", "name": "alice", "id": 1}, {"type": "who"}])
        self.client.line_received("/help")
        self.assertTrue(any("/nick NAME" in line for line in self.lines))
        self.assertEqual(self.sent(), [])

    def test_unknown_command(self):
        """
        An unknown command is reported locally, not sent.
        """
        self.welcome()
        self.client.line_received("/dance now")
        self.assertEqual(self.lines, ["! unknown command /dance now (try /help)"])
        self.assertEqual(self.sent(), [])

    def test_exit(self):
        """
        /exit sends quit, closes, and the session ends with status 0.
        """
        self.welcome()
        self.client.line_received("/exit see you")
        self.assertEqual(self.sent(), [{"type": "quit", "message": "see you"}])
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertEqual(self.status(), 0)
        self.assertEqual(self.errors, [])

    def test_too_long_not_sent(self):
        """
        A line longer than the announced max_text is refused locally.
        """
        self.welcome(max_text=10)
        self.client.line_received("x" * 11)
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.lines, ["! message too long (11 characters, the limit is 10)"])
        self.client.line_received("x" * 10)
        self.assertEqual(len(self.sent()), 1)

    def test_lines_before_welcome_queued(self):
        """
        Lines typed before the welcome are sent after it, after the --name
        request.
        """
        self.make_client(nick="alice")
        self.client.line_received("early")
        self.assertEqual(self.sent(), [])
        self.deliver(**WELCOME)
        self.assertEqual(
            self.sent(), [{"type": "nick", "name": "alice", "id": 1}, {"type": "message", "text": "early"}]
        )

    def test_events_printed(self):
        """
        Events from the server are printed as rendered lines.
        """
        self.welcome()
        self.deliver(type="join", seq=5, name="bob")
        self.deliver(type="message", seq=6, **{"from": "bob", "text": "hi", "time": 0})
        self.deliver(type="error", code="nick_taken", message="the name bob is taken")
        self.assertEqual(self.lines, ["* bob joined", "> bob: hi", "! the name bob is taken"])

    def test_own_nick_tracked(self):
        """
        When the server renames us, our name follows.
        """
        self.welcome()
        self.deliver(type="nick", seq=5, old="guest-7", new="alice")
        self.assertEqual(self.client.name, "alice")
        self.deliver(type="nick", seq=6, old="bob", new="robert")
        self.assertEqual(self.client.name, "alice")

    def test_missed_events(self):
        """
        A gap in seq is reported.
        """
        self.welcome(seq=4)
        self.deliver(type="join", seq=5, name="a")
        self.deliver(type="join", seq=8, name="b")
        self.assertEqual(self.lines, ["* a joined", "! missed events 6..7", "* b joined"])

    def test_who_pages(self):
        """
        A who reply over several frames prints as one line.
        """
        self.welcome()
        self.deliver(type="who", names=["a", "b"], more=True)
        self.assertEqual(self.lines, [])
        self.deliver(type="who", names=["c"])
        self.assertEqual(self.lines, ["* online: a, b, c"])

    def test_bad_frame_from_server(self):
        """
        A frame that is not JSON is reported and skipped.
        """
        self.welcome()
        self.protocol.dataReceived(b"\x00\x00\x00\x03abc")
        self.assertEqual(self.lines, ["! bad frame from server: frame is not valid JSON"])
        self.assertFalse(self.transport.disconnecting)

    def test_connection_refused(self):
        """
        A refused connection is one line on stderr and status 1.
        """
        client = ChatClient(self.clock, "127.0.0.1:9", self.lines.append, self.errors.append)
        client.connection_failed(Failure(ConnectionRefusedError(osError=111)))
        self.assertEqual(self.errors, ["cannot connect to 127.0.0.1:9: Connection refused"])
        self.assertEqual(self.successResultOf(client.done), 1)

    def test_lookup_failed(self):
        """
        A host that does not resolve is one line too.
        """
        client = ChatClient(self.clock, "nowhere.invalid:9", self.lines.append, self.errors.append)
        client.connection_failed(Failure(DNSLookupError("no results")))
        self.assertEqual(
            self.errors, ["cannot connect to nowhere.invalid:9: DNS lookup failed: no results"]
        )


class BatchTests(ClientMixin, SynchronousTestCase):
    """
    Piped input: stdin ending does not cut off the replies.
    """

    def echo(self, text, name="guest-7", seq=5):
        self.deliver(type="message", seq=seq, text=text, time=0, **{"from": name})

    def test_waits_for_echoes(self):
        """
        After EOF the client waits until the server has echoed every line,
        prints them, then quits with status 0.
        """
        self.welcome()
        self.client.line_received("a")
        self.client.line_received("b")
        self.client.end_of_input()
        self.sent()
        self.echo("a", seq=5)
        self.assertFalse(self.transport.disconnecting)
        self.echo("b", seq=6)
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertEqual(self.lines, ["> guest-7: a", "> guest-7: b"])
        self.assertEqual(self.status(), 0)

    def test_errors_count_as_replies(self):
        """
        A line the server refused is answered too.
        """
        self.welcome()
        self.client.line_received("/nick bob")
        self.client.end_of_input()
        self.deliver(type="error", code="nick_taken", message="taken")
        self.assertTrue(self.transport.disconnecting)

    def test_rename_and_who_in_batch(self):
        """
        Renames and who requests in a batch are waited for as well; echoes
        under the new name still count.
        """
        self.welcome()
        for line in ["/nick alice", "hi", "/who"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(type="nick", seq=5, old="guest-7", new="alice")
        self.echo("hi", name="alice", seq=6)
        self.assertFalse(self.transport.disconnecting)
        self.deliver(type="who", names=["alice"])
        self.assertTrue(self.transport.disconnecting)

    def test_eof_before_welcome(self):
        """
        Input that ends before the welcome is still sent and waited for.
        """
        self.client.line_received("early")
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.assertEqual(self.sent(), [{"type": "message", "text": "early"}])
        self.echo("early")
        self.assertTrue(self.transport.disconnecting)

    def test_bounded_wait(self):
        """
        If replies never come, the client gives up after DRAIN_TIMEOUT.
        """
        self.welcome()
        self.client.line_received("lost")
        self.client.end_of_input()
        self.clock.advance(DRAIN_TIMEOUT - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.lines, ["! gave up waiting for 1 replies from the server"])
        self.lose()
        self.assertEqual(self.status(), client_module.EXIT_FAILED)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothing_sent(self):
        """
        Empty input quits as soon as the welcome arrives.
        """
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.assertEqual(self.sent(), [{"type": "quit"}])


class InterruptTests(ClientMixin, SynchronousTestCase):
    """
    Ctrl-C: the reactor is stopping.
    """

    def test_quit_sent(self):
        """
        An interrupt sends quit and is done when the connection closes,
        with the status for an interrupted session.
        """
        self.welcome()
        d = self.client.interrupt()
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.assertNoResult(d)
        self.lose()
        self.successResultOf(d)
        self.assertEqual(self.status(), client_module.EXIT_INTERRUPTED)

    def test_bounded(self):
        """
        An interrupt does not wait forever for a dead connection.
        """
        self.welcome()
        d = self.client.interrupt()
        self.clock.advance(client_module.INTERRUPT_GRACE)
        self.successResultOf(d)


class ConsoleTests(SynchronousTestCase):
    """
    L{ConsoleProtocol}: stdio for the client.
    """

    def setUp(self):
        self.clock = Clock()
        self.lines = []
        self.client = ChatClient(self.clock, "h:1", self.lines.append, self.lines.append)
        self.console = ConsoleProtocol(self.client)
        self.transport = StringTransport()
        self.console.makeConnection(self.transport)

    def test_console_is_the_view(self):
        """
        The client's console is a real IChatView for its session.
        """
        self.assertTrue(verifyObject(IChatView, self.client.console))
        self.assertIs(self.client.console.session, self.client)

    def test_lines_decoded(self):
        """
        CRLF and LF lines arrive as text; invalid UTF-8 is replaced.
        """
        received = []
        self.client.line_received = received.append
        self.console.dataReceived(b"one\r\ntwo\n\xffthree\n")
        self.assertEqual(received, ["one", "two", "\ufffdthree"])

    def test_write_line(self):
        """
        Lines are written to stdout as UTF-8 with a newline.
        """
        self.console.write_line("caf\u00e9")
        self.assertEqual(self.transport.value(), b"caf\xc3\xa9\n")

    def test_eof_is_end_of_input(self):
        """
        stdin ending tells the client the input is over.
        """
        self.console.readConnectionLost()
        self.assertTrue(self.client.input_ended)

    def test_overlong_line(self):
        """
        A line too long for a frame is refused; reading goes on.
        """
        received = []
        self.client.line_received = received.append
        self.console.dataReceived(b"x" * 70000 + b"\nok\n")
        self.assertEqual(self.lines, ["! line too long (more than 65536 bytes), not sent"])
        self.assertEqual(received[-1:], ["ok"])


class OptionsTests(SynchronousTestCase):
    """
    The client's command line.
    """

    def test_defaults(self):
        """
        By default the client talks to 127.0.0.1:56562 with a guest name.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(
            (options["host"], options["port"], options["name"]), ("127.0.0.1", 56562, None)
        )

    def test_values(self):
        """
        --host, --port and --name are taken.
        """
        options = Options()
        options.parseOptions(["--host", "::1", "--port", "4000", "--name", "alice"])
        self.assertEqual((options["host"], options["port"], options["name"]), ("::1", 4000, "alice"))

    def test_bad_values(self):
        """
        A bad port or name is a usage error.
        """
        from twisted.python.usage import UsageError

        for argv in [["--port", "x"], ["--port", "70000"], ["--name", "guest-1"], ["--name", "a b"],
                     ["--server", "h:0"], ["--server", "h:x"], ["--server", "[::1"], ["--server", ":1"]]:
            self.assertRaises(UsageError, Options().parseOptions, argv)

    def test_servers(self):
        """
        --server may be given several times; without it, --host and --port
        are the one server.
        """
        options = Options()
        options.parseOptions(["--server", "a:1", "--server", "[::1]:2", "-s", "c"])
        self.assertEqual(options["servers"], [("a", 1), ("::1", 2), ("c", 56562)])
        options = Options()
        options.parseOptions(["--host", "h", "--port", "7"])
        self.assertEqual(options["servers"], [("h", 7)])

    def test_rotation(self):
        """
        Each connection attempt goes to the next server, and the client's
        messages name the one it tried.
        """
        from twisted_chat.client.cli import _ReportingEndpoint

        class Client:
            address = None
            failures = []

            def connection_failed(self, failure):
                self.failures.append(failure)

        tried = []

        class Endpoint:
            def __init__(self, reactor, host, port):
                self.where = (host, port)

            def connect(self, factory):
                tried.append(self.where)
                return defer.succeed(None)

        client = Client()
        endpoint = _ReportingEndpoint(
            None, [("127.0.0.1", 1), ("::1", 2)], client, endpoint=Endpoint)
        seen = []
        for _ in range(3):
            endpoint.connect(Factory())
            seen.append(client.address)
        self.assertEqual(seen, ["127.0.0.1:1", "[::1]:2", "127.0.0.1:1"])
        self.assertEqual(tried, [("127.0.0.1", 1), ("::1", 2), ("127.0.0.1", 1)])
        self.assertEqual(client.failures, [])


class InMemoryTests(SynchronousTestCase):
    """
    The real client protocol against the real server protocol, connected in
    memory, on one clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.factory = ChatServerFactory(clock=self.clock, heartbeat_interval=10.0, timeout=30.0)
        self.pairs = []

    def connect(self, nick=None):
        lines, errors = [], []
        chat = ChatClient(self.clock, "memory", lines.append, errors.append, nick=nick)
        address = IPv4Address("TCP", "127.0.0.1", 1000 + len(self.pairs))
        client, server, pump = iosim.connectedServerAndClient(
            lambda: self.factory.buildProtocol(address),
            lambda: ChatClientProtocol(self.clock, chat),
        )
        self.pairs.append(pump)
        return chat, client, server, pump, lines, errors

    def advance(self, seconds, step=1.0, pumps=None):
        """
        Let time pass, delivering traffic on C{pumps} (all by default).
        """
        pumps = self.pairs if pumps is None else pumps
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            while any([pump.flush() for pump in pumps]):
                pass

    def test_heartbeats_keep_both_alive(self):
        """
        An idle client stays connected for many timeouts: its heartbeats
        keep the server's timer and the acks keep the client's.
        """
        chat, client, server, pump, lines, errors = self.connect()
        self.advance(300)
        self.assertFalse(client.transport.disconnecting)
        self.assertFalse(server.transport.disconnecting)
        self.assertFalse(chat.finished)
        self.assertEqual(len(self.factory.room), 1)

    def test_silence_kills_both(self):
        """
        When the network goes silent (nothing delivered either way), each
        side declares the other dead after its timeout.
        """
        chat, client, server, pump, lines, errors = self.connect()
        other, _, _, other_pump, other_lines, _ = self.connect()
        self.advance(15)
        self.advance(30, pumps=[other_pump])
        # Both ends have aborted; on a dead link nothing is delivered, so
        # the reactor reports each loss on its own side.
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(server.transport.disconnecting)
        client.connectionLost(Failure(ConnectionAborted()))
        server.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(errors, ["server not responding (no data for 30 s)"])
        self.assertEqual(self.successResultOf(chat.done), 1)
        self.advance(1, pumps=[other_pump])
        self.assertIn("* guest-1 left (timeout)", other_lines)
        self.assertFalse(other.finished)

    def test_chat_round_trip(self):
        """
        Two clients chat, rename and list the room through the real server.
        """
        alice, *_, alice_lines, _ = self.connect(nick="alice")
        bob, *_, bob_lines, _ = self.connect()
        self.advance(1)
        bob.line_received("/nick bob")
        alice.line_received("hello bob")
        bob.line_received("/who")
        self.advance(1)
        self.assertIn("> alice: hello bob", bob_lines)
        self.assertIn("* guest-2 is now bob", alice_lines)
        self.assertEqual(bob_lines[-1], "* online: alice, bob")
        alice.line_received("/exit bye")
        self.advance(1)
        self.assertEqual(self.successResultOf(alice.done), 0)
        self.assertIn("* alice left (quit: bye)", bob_lines)


class PacingTests(ClientMixin, SynchronousTestCase):
    """
    Messages leave no faster than the server's announced rate.
    """

    def test_never_faster_than_the_server_allows(self):
        """
        However many lines arrive at once, the server's own token bucket
        (same rate and burst) accepts every message the client sends.
        """
        from twisted_chat.ratelimit import TokenBucket

        self.welcome(rate={"burst": 3, "per_second": 2.0})
        server_bucket = TokenBucket(2.0, 3, self.clock)
        for i in range(30):
            self.client.line_received("line %d" % (i,))
        sent = 0
        for _ in range(400):
            for message in self.sent():
                if message["type"] == "heartbeat":
                    continue
                self.assertEqual(message["type"], "message")
                self.assertEqual(server_bucket.take(), 0)
                sent += 1
            self.clock.advance(0.05)
        self.assertEqual(sent, 30)

    def test_order_kept(self):
        """
        Commands wait their turn behind paced messages.
        """
        self.welcome(rate={"burst": 1, "per_second": 10.0})
        self.client.line_received("a")
        self.client.line_received("b")
        self.client.line_received("/who")
        self.clock.advance(1)
        self.assertEqual(
            [m.get("text", m["type"]) for m in self.sent()], ["a", "b", "who"]
        )

    def test_unlimited(self):
        """
        A server with rate 0 (or none announced) is not paced.
        """
        self.welcome(rate={"burst": 20, "per_second": 0})
        for i in range(50):
            self.client.line_received(str(i))
        self.assertEqual(len(self.sent()), 50)

    def test_batch_waits_for_paced_lines(self):
        """
        After EOF the client quits only once every paced line went out and
        came back.
        """
        self.welcome(rate={"burst": 1, "per_second": 10.0})
        for text in ["a", "b", "c"]:
            self.client.line_received(text)
        self.client.end_of_input()
        seq = 5
        while seq < 8:
            for message in self.sent():
                self.assertEqual(message["type"], "message")
                self.deliver(type="message", seq=seq, text=message["text"], time=0, **{"from": "guest-7"})
                seq += 1
            self.clock.advance(0.05)
        self.assertEqual(self.sent(), [{"type": "quit"}])

    def test_input_paused_while_outbox_long(self):
        """
        stdin stops being read while many lines wait, and resumes once they
        have gone.
        """
        from twisted_chat.client import OUTBOX_HIGH

        calls = []
        self.client.pause_input = lambda: calls.append("pause")
        self.client.resume_input = lambda: calls.append("resume")
        self.welcome(rate={"burst": 1, "per_second": 1000.0})
        for i in range(OUTBOX_HIGH + 2):
            self.client.line_received(str(i))
        self.assertEqual(calls, ["pause"])
        for _ in range(1200):
            self.clock.advance(0.002)
        self.assertEqual(calls, ["pause", "resume"])


class CatchUpTests(ClientMixin, SynchronousTestCase):
    """
    lagged: the client resumes on the same connection.
    """

    def test_resume_after_lagged(self):
        """
        On lagged the client asks for everything after the last event it
        saw, and the replay flows on without a gap message.
        """
        self.welcome(seq=4, session="s1")
        self.deliver(type="join", seq=5, name="x")
        self.deliver(type="lagged", missed_from=6)
        self.assertEqual(self.sent(), [{"type": "resume", "session": "s1", "last_seq": 5}])
        self.deliver(type="join", seq=6, name="y")
        self.deliver(type="resumed", replayed=1, name="guest-7")
        self.assertEqual(
            self.lines,
            ["* x joined", "* fell behind; catching up", "* y joined", "* caught up, 1 missed events replayed"],
        )

    def test_duplicates_dropped(self):
        """
        An event seen already is not shown twice.
        """
        self.welcome(seq=4)
        self.deliver(type="join", seq=5, name="x")
        self.deliver(type="join", seq=5, name="x")
        self.assertEqual(self.lines, ["* x joined"])


class ReconnectTests(ClientMixin, SynchronousTestCase):
    """
    --reconnect: a lost connection is replaced and the session resumed.
    """

    def setUp(self):
        super().setUp()
        self.client = ChatClient(
            self.clock, "h:1", self.lines.append, self.errors.append, nick="alice",
            reconnect=True,
        )
        self.connect_new()
        self.deliver(**dict(WELCOME, session="s1", seq=4))
        self.deliver(type="join", seq=5, name="guest-7")
        self.deliver(type="nick", seq=6, old="guest-7", new="alice")
        self.sent()
        del self.lines[:]

    def connect_new(self):
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def lose_and_reconnect(self, session="s2", seq=9):
        self.lose()
        self.assertFalse(self.client.finished)
        self.connect_new()
        self.deliver(**dict(WELCOME, session=session, seq=seq, name="guest-9"))

    def test_lost_connection_is_not_the_end(self):
        """
        With reconnect, losing the server says so and keeps the session.
        """
        self.lose()
        self.assertEqual(self.lines, ["* server terminated prematurely; reconnecting"])
        self.assertEqual(self.errors, [])
        self.assertNoResult(self.client.done)

    def test_resumes_on_new_connection(self):
        """
        The new connection's first frame resumes the old session; the replay
        shows, then the reconnection is reported.
        """
        self.lose_and_reconnect()
        self.assertEqual(self.sent(), [{"type": "resume", "session": "s1", "last_seq": 6}])
        self.deliver(type="message", seq=7, text="while away", time=0, **{"from": "bob"})
        self.deliver(type="resumed", replayed=1, name="alice")
        self.assertEqual(
            self.lines[1:],
            ["> bob: while away", "* reconnected, 1 missed events replayed"],
        )
        self.assertEqual(self.sent(), [])
        self.assertEqual((self.client.name, self.client.session), ("alice", "s1"))

    def test_keeps_a_name_taken_since(self):
        """
        A name the user took with /nick after --name is the one it keeps
        across a resume: the client does not rename itself back.
        """
        self.client.line_received("/nick alicia")
        self.assertEqual([m["name"] for m in self.sent()], ["alicia"])
        self.deliver(type="nick", seq=7, old="alice", new="alicia")
        self.lose_and_reconnect()
        self.sent()
        self.deliver(type="resumed", replayed=0, name="alicia")
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.client.name, "alicia")

    def test_lines_typed_while_away_sent_after(self):
        """
        What the user typed during the outage goes out once resumed.
        """
        self.lose()
        self.client.line_received("typed while away")
        self.connect_new()
        self.deliver(**dict(WELCOME, session="s2", seq=9))
        self.deliver(type="resumed", replayed=0, name="alice")
        self.assertEqual(
            self.sent()[-1], {"type": "message", "text": "typed while away"}
        )

    def test_unconfirmed_resent(self):
        """
        A message sent but never echoed before the drop is sent again after
        the resume: nothing the user typed is lost.
        """
        self.client.line_received("in flight")
        self.sent()
        self.lose_and_reconnect()
        self.sent()
        self.deliver(type="resumed", replayed=0, name="alice")
        self.assertEqual(self.sent(), [{"type": "message", "text": "in flight"}])

    def test_echoed_not_resent(self):
        """
        A message whose echo arrived (even in the replay) is not sent again.
        """
        self.client.line_received("made it")
        self.lose_and_reconnect()
        self.sent()
        self.deliver(type="message", seq=7, text="made it", time=0, **{"from": "alice"})
        self.deliver(type="resumed", replayed=1, name="alice")
        self.assertEqual(self.sent(), [])

    def test_resume_failed(self):
        """
        If the server lost the session, the client says so, reports the
        events it cannot get back, and carries on as the new session,
        taking its name again.
        """
        self.lose_and_reconnect(session="s2", seq=9)
        self.sent()
        self.deliver(type="error", code="resume_failed", message="unknown session", oldest_seq=1)
        self.assertEqual(
            self.lines[1:],
            ["* reconnected as a new session (the server no longer had ours)", "! missed events 7..9"],
        )
        self.assertEqual(self.sent(), [{"type": "nick", "name": "alice", "id": 2}])
        self.assertEqual((self.client.session, self.client.last_seq), ("s2", 9))
        self.deliver(type="join", seq=10, name="guest-9")
        self.assertEqual(self.lines[-1], "* guest-9 joined")

    def test_server_restarted_from_zero(self):
        """
        A restarted server counts seq from 0 again: no bogus gap is reported.
        """
        self.lose_and_reconnect(seq=0)
        self.deliver(type="error", code="resume_failed", message="unknown", oldest_seq=1)
        self.assertFalse([line for line in self.lines if "missed" in line])
        self.deliver(type="join", seq=1, name="guest-1")
        self.assertEqual(self.lines[-1], "* guest-1 joined")

    def test_timeout_reconnects_too(self):
        """
        A silent server is also reconnected, not fatal.
        """
        self.clock.advance(30)
        self.lose()
        self.assertEqual(self.lines, ["* server not responding (no data for 30 s); reconnecting"])

    def test_retry_policy(self):
        """
        Delays grow exponentially up to 30 s, jitter included; a shutdown's
        reconnect_after is honoured once.
        """
        delays = [self.client.retry_delay(n) for n in range(1, 12)]
        self.assertTrue(1.0 <= delays[0] <= 2.0, delays)
        self.assertTrue(all(d <= 30.0 for d in delays), delays)
        self.assertGreater(delays[-1], 28.0)
        self.deliver(type="shutdown", message="bye", reconnect_after=3.25)
        self.assertEqual(self.client.retry_delay(1), 3.25)
        self.assertNotEqual(self.client.retry_delay(1), 3.25)

    def test_exit_while_disconnected(self):
        """
        /exit during an outage ends the session at once.
        """
        self.lose()
        self.client.line_received("/exit")
        self.assertEqual(self.successResultOf(self.client.done), 0)

    def test_connect_failures_reported(self):
        """
        Each failed attempt is one line on stderr, not the end.
        """
        self.client.connection_failed(Failure(ConnectionRefusedError(osError=111)))
        self.assertEqual(self.errors, ["cannot connect to h:1: Connection refused; will retry"])
        self.assertFalse(self.client.finished)


class FinalLineTests(SynchronousTestCase):
    """
    What follows the last newline when stdin ends is a line too.
    """

    def setUp(self):
        self.clock = Clock()
        self.lines = []
        self.client = ChatClient(self.clock, "h:1", self.lines.append, self.lines.append)
        self.received = []
        self.client.line_received = self.received.append
        self.console = ConsoleProtocol(self.client)
        self.console.makeConnection(StringTransport())

    def test_only_line(self):
        """
        Input without any newline is one line, delivered at end of input.
        """
        self.console.dataReceived(b"hi")
        self.assertEqual(self.received, [])
        self.console.readConnectionLost()
        self.assertEqual(self.received, ["hi"])
        self.assertTrue(self.client.input_ended)

    def test_last_line(self):
        """
        The last of several lines, without its newline, is not dropped.
        """
        self.console.dataReceived(b"one\ntw")
        self.console.dataReceived(b"o")
        self.console.readConnectionLost()
        self.assertEqual(self.received, ["one", "two"])

    def test_on_connection_lost(self):
        """
        stdio closing at once (no half-close) delivers the rest too, once.
        """
        self.console.dataReceived(b"half a line\r")
        self.console.connectionLost(Failure(ConnectionDone()))
        self.console.readConnectionLost()
        self.assertEqual(self.received, ["half a line"])

    def test_nothing_left(self):
        """
        Input that ends with a newline adds no empty line.
        """
        self.console.dataReceived(b"one\n")
        self.console.readConnectionLost()
        self.assertEqual(self.received, ["one"])

    def test_after_overlong_line(self):
        """
        The rest of a refused over-long line is not taken for a final line.
        """
        self.console.dataReceived(b"x" * 70000)
        self.console.readConnectionLost()
        self.assertEqual(self.received, [])


class FinalLineSentTests(ClientMixin, SynchronousTestCase):
    """
    The final line is sent and its echo waited for, like the others.
    """

    def test_sent_and_waited_for(self):
        """
        printf 'one\\ntwo' sends both lines and quits once both came back.
        """
        console = ConsoleProtocol(self.client)
        console.makeConnection(StringTransport())
        console.dataReceived(b"one\ntwo")
        console.readConnectionLost()
        self.welcome()
        self.assertEqual(
            self.sent(), [{"type": "message", "text": "one"}, {"type": "message", "text": "two"}])
        self.deliver(type="message", seq=5, text="one", time=0, **{"from": "guest-7"})
        self.assertFalse(self.transport.disconnecting)
        self.deliver(type="message", seq=6, text="two", time=0, **{"from": "guest-7"})
        self.assertEqual(self.sent(), [{"type": "quit"}])


class _BatchMixin(ClientMixin):
    """
    A client in batch mode whose stdout and stderr lines go to one
    transcript, marked "out" and "err".
    """

    def make_client(self, nick=None, batch=True):
        self.transcript = []
        self.client = ChatClient(
            self.clock, "127.0.0.1:56562",
            lambda line: self.transcript.append(("out", line)),
            lambda line: self.transcript.append(("err", line)),
            nick=nick, batch=batch)
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.client

    def echo(self, text, seq):
        self.deliver(type="message", seq=seq, text=text, time=0, **{"from": "guest-7"})


class BatchFailureTests(_BatchMixin, SynchronousTestCase):
    """
    Batch mode (stdin not a terminal): problems go to stderr, in their
    turn, and a line not sent makes the exit status EXIT_REFUSED.
    """

    def test_too_long_in_order(self):
        """
        ok, a 5000-character line and after, piped before the welcome: the
        refusal is on stderr in the input's order (after ok's echo, before
        after is sent), the others are sent, and the exit status is
        EXIT_REFUSED.
        """
        for line in ["ok", "x" * 5000, "after"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.assertEqual(self.sent(), [{"type": "message", "text": "ok"}])
        self.echo("ok", 5)
        self.assertEqual(self.sent(), [{"type": "message", "text": "after"}])
        self.echo("after", 6)
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertEqual(self.transcript, [
            ("out", "chatting server(127.0.0.1:56562) connect success!"),
            ("out", "* you are guest-7; type /help for help"),
            ("out", "> guest-7: ok"),
            ("err", "! message too long (5000 characters, the limit is 4096)"),
            ("out", "> guest-7: after"),
        ])
        self.assertEqual(self.status(), EXIT_REFUSED)

    def test_limit_from_welcome(self):
        """
        A line read before the welcome is held to the limit the welcome
        announces.
        """
        self.client.line_received("x" * 11)
        self.deliver(**dict(WELCOME, max_text=10))
        self.assertEqual(self.sent(), [])
        self.assertEqual(
            self.transcript[-1], ("err", "! message too long (11 characters, the limit is 10)"))

    def test_refused_by_server(self):
        """
        An error answering a line goes to stderr and the status is
        EXIT_REFUSED.
        """
        self.welcome()
        del self.transcript[:]
        self.client.line_received("/nick bob")
        self.client.end_of_input()
        self.deliver(type="error", code="nick_taken", message="the name bob is taken")
        self.lose()
        self.assertEqual(self.transcript, [("err", "! the name bob is taken")])
        self.assertEqual(self.status(), EXIT_REFUSED)

    def test_bad_commands_in_order(self):
        """
        Unknown and incomplete commands are reported in their turn, on
        stderr, and count as lines not sent.
        """
        for line in ["/dance", "/nick", "hi", "/bogus", "last"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.echo("hi", 5)
        self.echo("last", 6)
        self.lose()
        self.assertEqual(self.transcript[2:], [
            ("err", "! unknown command /dance (try /help)"),
            ("err", "! usage: /nick NAME"),
            ("out", "> guest-7: hi"),
            ("err", "! unknown command /bogus (try /help)"),
            ("out", "> guest-7: last"),
        ])
        self.assertEqual(self.status(), EXIT_REFUSED)

    def test_overlong_input_line(self):
        """
        A line too long even to read is reported in its turn and counts.
        """
        console = ConsoleProtocol(self.client)
        console.makeConnection(StringTransport())
        console.dataReceived(b"x" * 70000 + b"\nok\n")
        console.readConnectionLost()
        self.deliver(**WELCOME)
        self.echo("ok", 5)
        self.lose()
        self.assertEqual(
            self.transcript[2], ("err", "! line too long (more than 65536 bytes), not sent"))
        self.assertEqual(self.status(), EXIT_REFUSED)

    def test_all_sent(self):
        """
        A batch whose every line came back exits EXIT_OK, with nothing on
        stderr.
        """
        self.client.line_received("fine")
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.echo("fine", 5)
        self.lose()
        self.assertEqual([kind for kind, _ in self.transcript], ["out"] * 3)
        self.assertEqual(self.status(), EXIT_OK)

    def test_interactive_unchanged(self):
        """
        At a terminal a refusal is part of the conversation: stdout, and no
        effect on the exit status.
        """
        self.make_client(batch=False)
        self.welcome()
        self.client.line_received("/nick bob")
        self.deliver(type="error", code="nick_taken", message="the name bob is taken")
        self.client.line_received("/exit")
        self.lose()
        self.assertEqual(self.transcript[-1], ("out", "! the name bob is taken"))
        self.assertEqual(self.status(), EXIT_OK)


class RenameTests(_BatchMixin, SynchronousTestCase):
    """
    Renames in batch mode: one in flight at a time, and none to the name
    the client has (the server would answer nothing, and the batch would
    wait for an answer in vain).
    """

    def test_to_own_name(self):
        """
        /nick to the current name is not sent; the batch ends as soon as
        the rest is answered, with status 0.
        """
        for line in ["/nick guest-7", "hi"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.assertEqual(self.sent(), [{"type": "message", "text": "hi"}])
        self.echo("hi", 5)
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertIn(("out", "* you are already guest-7"), self.transcript)
        self.assertEqual(self.status(), EXIT_OK)

    def test_same_name_twice(self):
        """
        The second of two renames to one name waits for the first, and is
        then seen to be the name the client has.
        """
        for line in ["/nick bob", "/nick bob"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.assertEqual(self.sent(), [{"type": "nick", "name": "bob", "id": 1}])
        self.deliver(type="nick", seq=5, old="guest-7", new="bob")
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertEqual(self.transcript[-1], ("out", "* you are already bob"))
        self.assertEqual(self.status(), EXIT_OK)

    def test_refused_rename_releases_the_next(self):
        """
        A refused rename (its error echoes the rename's id) lets the next
        one go.
        """
        for line in ["/nick bob", "/nick carol"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.sent()
        self.deliver(type="error", code="nick_taken", message="the name bob is taken", id=1)
        self.assertEqual(self.sent(), [{"type": "nick", "name": "carol", "id": 2}])

    def test_waiting_line_does_not_hang(self):
        """
        A refusal waiting for the answer to the line before it does not
        keep the batch from giving up when that answer never comes.
        """
        for line in ["lost", "/bogus"]:
            self.client.line_received(line)
        self.client.end_of_input()
        self.deliver(**WELCOME)
        self.sent()
        self.clock.advance(DRAIN_TIMEOUT)
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertEqual(self.status(), EXIT_FAILED)


class ShutdownTests(ClientMixin, SynchronousTestCase):
    """
    A graceful stop of the server is not a crash.
    """

    def test_line(self):
        """
        The shutdown line says the server shut down, with its message once.
        """
        self.assertEqual(shutdown_line("server is shutting down"), "* the server shut down")
        self.assertEqual(shutdown_line("The server shut down."), "* the server shut down")
        self.assertEqual(
            shutdown_line("server is shutting down: back at 5"),
            "* the server shut down: back at 5")
        self.assertEqual(
            shutdown_line("maintenance\x1b[2J"), "* the server shut down: maintenance\\x1b[2J")
        self.assertEqual(shutdown_line(None), "* the server shut down")

    def test_close_expected(self):
        """
        After shutdown the close is no error: one line on stdout, nothing
        on stderr, EXIT_SHUTDOWN.
        """
        self.welcome()
        self.deliver(type="shutdown", message="server is shutting down", reconnect_after=2.5)
        self.lose()
        self.assertEqual(self.lines, ["* the server shut down"])
        self.assertEqual(self.errors, [])
        self.assertEqual(self.status(), EXIT_SHUTDOWN)

    def test_reconnect(self):
        """
        With --reconnect the client says when it comes back.
        """
        self.client.reconnect = True
        self.welcome()
        self.deliver(type="shutdown", message="bye", reconnect_after=2.5)
        self.lose()
        self.assertEqual(self.lines, ["* the server shut down: bye", "* reconnecting in 2.5 s"])
        self.assertNoResult(self.client.done)

    def test_only_that_connection(self):
        """
        A close without shutdown, later, is a crash again.
        """
        self.client.reconnect = True
        self.welcome(session="s1")
        self.deliver(type="shutdown", message="bye", reconnect_after=1)
        self.lose()
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.protocol.makeConnection(StringTransport())
        self.lose()
        self.assertEqual(self.lines[-1], "* server terminated prematurely; reconnecting")


class InterruptWhileConnectingTests(SynchronousTestCase):
    """
    Ctrl-C before any connection is up.
    """

    def setUp(self):
        self.clock = Clock()
        self.lines = []
        self.errors = []
        self.client = ChatClient(
            self.clock, "127.0.0.1:56599", self.lines.append, self.errors.append,
            reconnect=True)

    def test_quiet(self):
        """
        The attempt the interrupt cancels says nothing; the session ends
        EXIT_INTERRUPTED.
        """
        self.client.connection_failed(Failure(ConnectionRefusedError(osError=111)))
        del self.errors[:]
        self.successResultOf(self.client.interrupt())
        self.client.connection_failed(
            Failure(ConnectingCancelledError(HostnameAddress(b"127.0.0.1", 56599))))
        self.assertEqual((self.lines, self.errors), ([], []))
        self.assertEqual(self.successResultOf(self.client.done), EXIT_INTERRUPTED)

    def test_no_repr(self):
        """
        No connection failure is described by an object's repr.
        """
        address = HostnameAddress(b"127.0.0.1", 56599)
        for error in [ConnectingCancelledError(address), defer.CancelledError(),
                      ValueError(address), ConnectionRefusedError(osError=111),
                      DNSLookupError("no results")]:
            text = describe_connect_failure(Failure(error))
            self.assertNotIn("Address", text)
            self.assertNotIn("(", text)
            self.assertTrue(text)


class TLSFailureTextTests(SynchronousTestCase):
    """
    Why TLS failed, in words.
    """

    def test_wrong_host(self):
        """
        A host name mismatch names the host, not the exception's repr.
        """
        from service_identity import VerificationError
        from service_identity.hazmat import DNS_ID, DNSMismatch

        error = VerificationError(errors=[DNSMismatch(mismatched_id=DNS_ID("localhost"))])
        self.assertEqual(
            describe_tls_failure(Failure(error)),
            "the server's certificate is not for this host name (localhost)")

    def test_handshake(self):
        """
        An OpenSSL error shows its reasons, not a list of tuples.
        """
        from OpenSSL.SSL import Error

        text = describe_tls_failure(
            Failure(Error([("SSL routines", "", "sslv3 alert handshake failure")])))
        self.assertEqual(text, "TLS handshake failed: sslv3 alert handshake failure")


class CommandTests(ClientMixin, SynchronousTestCase):
    """
    Commands that need an argument say so.
    """

    def test_nick_without_name(self):
        """
        /nick alone answers its usage, and sends nothing.
        """
        self.welcome()
        for line in ["/nick", "/nick   "]:
            self.client.line_received(line)
        self.assertEqual(self.lines, ["! usage: /nick NAME"] * 2)
        self.assertEqual(self.sent(), [])

    def test_help_lists_status(self):
        """
        /help lists /status.
        """
        self.welcome()
        self.client.line_received("/help")
        self.assertTrue([line for line in self.lines if line.startswith("*   /status")])


class QueuedWhileOfflineTests(ClientMixin, SynchronousTestCase):
    """
    --reconnect: lines typed during an outage are kept, and the user is
    told so once per outage.
    """

    NOTICE = "* not connected: what you type is kept and sent once the connection is back"

    def setUp(self):
        super().setUp()
        self.client.reconnect = True
        self.welcome(session="s1")

    def reconnect(self):
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.deliver(**dict(WELCOME, session="s2", seq=4))
        self.deliver(type="resumed", replayed=0, name="guest-7")

    def test_once_per_outage(self):
        """
        The first line typed offline brings the notice, the next do not; a
        new outage brings it again.
        """
        self.lose()
        self.client.line_received("one")
        self.client.line_received("two")
        self.assertEqual(self.lines.count(self.NOTICE), 1)
        self.reconnect()
        self.assertEqual(
            [m["text"] for m in self.sent() if m["type"] == "message"], ["one", "two"])
        self.client.line_received("online")
        self.lose()
        self.client.line_received("three")
        self.assertEqual(self.lines.count(self.NOTICE), 2)

    def test_not_when_connected(self):
        """
        Lines typed while connected bring no notice.
        """
        self.client.line_received("hello")
        self.assertNotIn(self.NOTICE, self.lines)

    def test_server_down_from_the_start(self):
        """
        A failed first attempt counts as an outage too.
        """
        client = ChatClient(self.clock, "h:1", self.lines.append, self.errors.append,
                            reconnect=True)
        client.line_received("before any attempt")
        self.assertNotIn(self.NOTICE, self.lines)
        client.connection_failed(Failure(ConnectionRefusedError(osError=111)))
        client.line_received("after a failed one")
        self.assertIn(self.NOTICE, self.lines)


class StatusTests(ClientMixin, SynchronousTestCase):
    """
    /status: what the client knows about the link.
    """

    def status_of(self):
        del self.lines[:]
        self.client.line_received("/status")
        lines, self.lines[:] = list(self.lines), []
        return lines

    def beat(self, rtt):
        """
        The next heartbeat (every 10 s from the welcome at 0), answered
        after C{rtt} seconds.
        """
        self.clock.advance(10 - self.clock.seconds() % 10)
        (heartbeat,) = self.sent()
        self.clock.advance(rtt)
        self.deliver(type="heartbeat_ack", ts=heartbeat["ts"], now=1.0)

    def test_connected(self):
        """
        Connected: server, TLS or not, name, a short session, round trips,
        silence, seq and counters.
        """
        self.client.tls = True
        self.welcome(session="kZ3aP0cQnYbW9tE1x_Lr2uVd", seq=4)
        self.assertEqual(self.status_of()[1][:26], "* no heartbeat answered ye")
        self.deliver(type="join", seq=7, name="x")
        for rtt in [0.004, 0.001, 0.002]:
            self.beat(rtt)
        self.clock.advance(2.5)
        self.assertEqual(self.status_of(), [
            "* connected to 127.0.0.1:56562 (TLS) as guest-7, session kZ3aP0...",
            "* heartbeat round trip 2.0 ms (median 2.0 ms of the last 3); "
            "last heard from the server 2.5 s ago",
            "* seq 7; 2 missed events, 0 replayed; 0 reconnections",
        ])
        self.assertEqual(self.sent(), [])

    def test_window_bounded(self):
        """
        The median is over the last RTT_WINDOW round trips only.
        """
        self.welcome()
        for _ in range(client_module.RTT_WINDOW):
            self.beat(0.009)
        for _ in range(client_module.RTT_WINDOW // 2 + 1):
            self.beat(0.001)
        self.assertIn("(median 1.0 ms of the last 20)", self.status_of()[1])

    def test_before_connecting(self):
        """
        Before the first welcome: connecting, plain TCP.
        """
        client = ChatClient(self.clock, "h:1", self.lines.append, self.errors.append)
        client.line_received("/status")
        self.assertEqual(self.lines, ["* not connected: connecting to h:1 (plain TCP, not encrypted)"])

    def test_reconnecting(self):
        """
        Offline with --reconnect: since when, and when the next try is.
        """
        self.client.reconnect = True
        self.welcome(session="s1", seq=4)
        self.clock.advance(100)
        self.lose()
        self.clock.advance(3)
        self.client.backoff = lambda attempt: 10.0
        self.client.retry_delay(1)
        self.clock.advance(4)
        self.assertEqual(self.status_of(), [
            "* not connected (to 127.0.0.1:56562, plain TCP, not encrypted) for 7.0 s; "
            "next try in 6.0 s",
            "* seq 4; 0 missed events, 0 replayed; 0 reconnections",
        ])
        self.clock.advance(6)
        self.assertTrue(self.status_of()[0].endswith("; trying now"))

    def test_counts_reconnections_and_replays(self):
        """
        Each reconnection and each replayed event is counted.
        """
        self.client.reconnect = True
        self.welcome(session="s1", seq=4)
        self.lose()
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.deliver(**dict(WELCOME, session="s2", seq=9))
        self.deliver(type="join", seq=5, name="a")
        self.deliver(type="resumed", replayed=1, name="guest-7")
        self.deliver(type="lagged", missed_from=6)
        self.deliver(type="join", seq=6, name="b")
        self.deliver(type="resumed", replayed=1, name="guest-7")
        self.assertEqual(self.status_of()[-1], "* seq 6; 0 missed events, 2 replayed; 1 reconnections")


class CommandLineTests(SynchronousTestCase):
    """
    The command line follows the usual conventions.
    """

    def parse(self, *argv):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        exit = self.assertRaises(SystemExit, Options().parseOptions, list(argv))
        return exit.code, out.getvalue()

    def test_version(self):
        """
        --version is the product's version.
        """
        import twisted_chat

        self.assertEqual(self.parse("--version"), (0, "twisted-chat %s\n" % (twisted_chat.__version__,)))

    def test_h_is_help(self):
        """
        -h is --help, and --host has no short form.
        """
        code, out = self.parse("-h")
        self.assertEqual(code, 0)
        self.assertIn("-h, --help", out)
        self.assertIn("      --host=", out)

    def test_usage(self):
        """
        The usage line names --login; --server's help has no run of spaces.
        """
        self.assertIn("--login", Options.synopsis)
        self.assertNotIn("  ", Options().docs["server"])
        self.assertEqual(EXIT_USAGE, 2)
        self.assertEqual(EXIT_FAILED, 1)
