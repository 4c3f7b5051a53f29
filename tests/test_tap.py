"""
Tests for L{twisted_chat.tap} and the twistd plugin.
"""

import json
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.internet import defer
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_chat import tap
from tests.common import child_env, parse_frames
from tests.loopback import TWISTD, LoopbackMixin

DEFAULTS = {
    "port": "tcp:56562:backlog=4096",
    "heartbeat-interval": 10.0,
    "timeout": 30.0,
    "max-frame": 65536,
    "max-text": 4096,
    "backlog": 1024,
    "sendq-soft": 262144,
    "sendq": 1048576,
    "rate": 5.0,
    "burst": 20,
    "max-clients": 10000,
    "max-per-ip": 0,
    "presence-limit": 1000,
    "log-rate": 100,
    "shutdown-grace": 2.0,
    "redis": None,
    "metrics": None,
    "auth-file": None,
    "allow-plaintext-login": 0,
    # --timeout's.
    "node-timeout": 30.0,
    "verbose": 0,
}


def parse(*argv):
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    L{tap.Options}.
    """

    def assertUsageError(self, argv, text):
        error = self.assertRaises(UsageError, parse, *argv)
        self.assertIn(text, str(error))

    def test_defaults(self):
        """
        With no options, the documented defaults.
        """
        self.assertEqual(dict(parse()), DEFAULTS)

    def test_all_options(self):
        """
        Every option is taken and converted to its type.
        """
        options = parse(
            "--port", "4000",
            "--heartbeat-interval", "0.5",
            "--timeout", "2",
            "--max-frame", "2048",
            "--max-text", "100",
            "--backlog", "0",
            "--sendq-soft", "64KiB",
            "--sendq", "2MiB",
            "--rate", "0.5",
            "--burst", "3",
            "--max-clients", "7",
            "--max-per-ip", "2",
            "--presence-limit", "10",
            "--log-rate", "0",
            "--shutdown-grace", "0",
            "--node-timeout", "3",
            "--verbose",
        )
        self.assertEqual(
            dict(options),
            {
                "port": "tcp:4000:backlog=4096",
                "heartbeat-interval": 0.5,
                "timeout": 2.0,
                "max-frame": 2048,
                "max-text": 100,
                "backlog": 0,
                "sendq-soft": 65536,
                "sendq": 2097152,
                "rate": 0.5,
                "burst": 3,
                "max-clients": 7,
                "max-per-ip": 2,
                "presence-limit": 10,
                "log-rate": 0,
                "shutdown-grace": 0.0,
                "redis": None,
                "metrics": None,
                "auth-file": None,
                "allow-plaintext-login": 0,
                "node-timeout": 3.0,
                "verbose": 1,
            },
        )
        settings = options.settings()
        self.assertEqual((settings.sendq_soft, settings.max_per_ip), (65536, 2))
        self.assertIs(settings.verbose, True)
        self.assertEqual(settings.presence_limit, 10)

    def test_endpoint_strings(self):
        """
        Any server endpoint string is accepted as it is.
        """
        for description in ["tcp:56562:interface=127.0.0.1", "tcp6:0:interface=\\:\\:1", "unix:/tmp/chat.sock"]:
            self.assertEqual(parse("--port", description)["port"], description)

    def test_bad_port(self):
        """
        A port that is no endpoint, or out of range, is a usage error.
        """
        self.assertUsageError(["--port", "nonsense:1"], "not a server endpoint")
        self.assertUsageError(["--port", "tcp:x"], "not a server endpoint")
        self.assertUsageError(["--port", "70000"], "out of range")

    def test_timeout_must_exceed_interval(self):
        """
        --timeout must be more than --heartbeat-interval.
        """
        self.assertUsageError(["--timeout", "10"], "--timeout (10) must be more than")
        self.assertUsageError(["--heartbeat-interval", "40"], "must be more than")

    def test_bad_numbers(self):
        """
        Non-numbers and non-positive values are usage errors.
        """
        self.assertUsageError(["--timeout", "soon"], "'soon' is not a number")
        self.assertUsageError(["--max-frame", "1.5"], "not a whole number")
        self.assertUsageError(["--heartbeat-interval", "0"], "more than 0")
        self.assertUsageError(["--heartbeat-interval", "nan"], "more than 0")
        self.assertUsageError(["--max-text", "0"], "at least 1")

    def test_reliability_limits(self):
        """
        The send queue, rate and connection limits are checked.
        """
        self.assertUsageError(["--sendq-soft", "1000"], "must hold at least one frame")
        self.assertUsageError(["--sendq", "256KiB"], "must be more than --sendq-soft")
        self.assertUsageError(["--sendq", "lots"], "is not a size")
        self.assertUsageError(["--sendq", "1GB"], "is not a size")
        self.assertUsageError(["--rate", "-1"], "--rate must be 0")
        self.assertUsageError(["--burst", "0"], "--burst must be at least 1")
        self.assertUsageError(["--max-clients", "0"], "at least 1")
        self.assertUsageError(["--max-per-ip", "-1"], "--max-per-ip must be 0")
        self.assertUsageError(["--backlog", "-5"], "--backlog must be 0 or more")
        self.assertUsageError(["--shutdown-grace", "-1"], "--shutdown-grace must be 0")
        self.assertUsageError(["--presence-limit", "-1"], "--presence-limit must be 0")
        self.assertUsageError(["--log-rate", "-1"], "--log-rate must be 0")

    def test_frame_limits(self):
        """
        --max-frame has bounds, and must carry --max-text.
        """
        self.assertUsageError(["--max-frame", "100"], "--max-frame must be between")
        self.assertUsageError(["--max-frame", str(2**30)], "--max-frame must be between")
        self.assertUsageError(["--max-text", "20000"], "needs --max-frame of at least")


class FailingReactor(MemoryReactorClock):
    """
    A reactor whose ports are all taken.
    """

    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


class MakeServiceTests(SynchronousTestCase):
    """
    L{tap.makeService} and L{tap.ChatService}.
    """

    def test_listens(self):
        """
        The service listens where --port says, with the factory configured
        from the options.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(
            parse("--port", "tcp:4321:interface=127.0.0.1", "--timeout", "12", "--verbose"),
            reactor=reactor,
        )
        service.privilegedStartService()
        service.startService()
        ((port, factory, _, interface),) = reactor.tcpServers
        self.assertEqual((port, interface), (4321, "127.0.0.1"))
        self.assertIs(factory, service.factory)
        self.assertEqual((factory.settings.timeout, factory.settings.verbose), (12.0, True))
        self.assertIs(factory.clock, reactor)
        self.assertTrue(factory.hub.coalesce)

    def test_port_taken(self):
        """
        A port that cannot be had ends twistd with one line, not a traceback.
        """
        service = tap.makeService(parse(), reactor=FailingReactor())
        error = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(
            str(error.code),
            "twisted-chat: Couldn't listen on any:56562: [Errno 98] Address already in use.",
        )

    def test_graceful_stop(self):
        """
        Stopping the service sends shutdown to every client and finishes
        only when every connection has closed.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(parse("--port", "tcp:0"), reactor=reactor)
        service.privilegedStartService()
        service.startService()
        transports = []
        for _ in range(2):
            protocol = service.factory.buildProtocol(None)
            transport = StringTransport()
            protocol.makeConnection(transport)
            transport.clear()
            transports.append((protocol, transport))
        d = service.stopService()
        self.assertNoResult(d)
        for protocol, transport in transports:
            self.assertEqual(parse_frames(transport.value())[-1]["type"], "shutdown")
            self.assertTrue(transport.disconnecting)
            protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)
        self.assertFalse(service.running)

    def test_graceful_stop_bounded(self):
        """
        A client that never closes is aborted after the grace period.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(parse("--port", "tcp:0"), reactor=reactor)
        service.startService()
        protocol = service.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d = service.stopService()
        reactor.advance(service.grace)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)


class PluginTests(SynchronousTestCase):
    """
    The twistd plugin.
    """

    def test_discovered(self):
        """
        twistd finds a plugin with tapname chat that builds our service.
        """
        makers = [p for p in getPlugins(IServiceMaker) if p.tapname == "chat"]
        self.assertTrue(makers)
        self.assertIs(makers[0].options, tap.Options)
        self.assertIs(makers[0].makeService, tap.makeService)

    def test_plugin_imports_no_reactor(self):
        """
        Importing the plugin installs no reactor and imports nothing of
        ours, so twistd's --reactor still works and our bugs cannot hide it.
        """
        code = (
            "import sys, twisted.plugins.twisted_chat_plugin; "
            "print('twisted.internet.reactor' in sys.modules, "
            "any(m.startswith('twisted_chat') for m in sys.modules))"
        )
        output = subprocess.check_output(
            [sys.executable, "-c", code], env=child_env(), timeout=60
        )
        self.assertEqual(output.split(), [b"False", b"False"])


class JSONLogTests(LoopbackMixin, TestCase):
    """
    C{twistd --logger twisted_chat.logs.json}: one JSON object a line.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_json_lines(self):
        server = self.spawn(
            TWISTD + ["-n", "--pidfile=", "--logger", "twisted_chat.logs.json", "chat",
                      "--port", "tcp:0:interface=127.0.0.1"])
        match = yield server.wait_for(rb'"port": (\d+)|starting on (\d+)')
        port = int(match.group(1) or match.group(2))
        client = self.spawn_client(port, "--name", "alice")
        client.transport.write(b"hi\n")
        client.transport.closeStdin()
        yield client.ended
        yield server.wait_for(rb"left")
        events = [json.loads(line) for line in bytes(server.out).decode().splitlines()]
        about = [e for e in events if e.get("peer")]
        self.assertTrue(about)
        formats = [e["log_format"] for e in about]
        self.assertIn("{name} ({peer}) connected", formats)
        self.assertIn("{name} ({peer}) left: {reason}", formats)
        for event in about:
            self.assertIn("name", event)
            self.assertRegex(event["peer"], r"^127\.0\.0\.1:\d+$")
        left = [e for e in about if e["log_format"].endswith("left: {reason}")]
        self.assertEqual((left[0]["name"], left[0]["reason"]), ("alice", "quit"))


class RequireTests(SynchronousTestCase):
    def test_missing_extra_is_one_line(self):
        e = self.assertRaises(UsageError, tap._require, "--metrics", "metrics",
                              "json", "no_such_module_for_twisted_chat")
        self.assertIn("--metrics needs the metrics extra: pip install 'twisted-chat[metrics]'",
                      str(e))
        tap._require("--metrics", "metrics", "json")
