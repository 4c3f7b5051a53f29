"""
Tests for L{twisted_chat.tap} and the twistd plugin (twistd run as a child
process: tests/system/test_tap.py).
"""

import io
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from twisted.application.service import IServiceMaker
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import tap, wire
from twisted_chat.settings import LimitsError, ServerSettings, frame_limits, text_for_frame
from tests.helpers.memory import parse_frames
from tests.helpers.processes import child_env

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
    "nick-rate": 5,
    "nick-period": 20.0,
    "join-rate": 0.5,
    "join-burst": 24,
    "max-clients": 10000,
    "max-per-ip": 100,
    "read-budget": 32 * 1024 * 1024,
    # At most --timeout.
    "frame-timeout": 10.0,
    "presence-limit": 1000,
    "max-rooms-per-client": 100,
    "max-rooms": 10000,
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
            "--nick-rate", "2",
            "--nick-period", "10",
            "--join-rate", "0.25",
            "--join-burst", "8",
            "--max-clients", "7",
            "--max-per-ip", "2",
            "--read-budget", "1MiB",
            "--frame-timeout", "1.5",
            "--presence-limit", "10",
            "--max-rooms-per-client", "4",
            "--max-rooms", "50",
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
                "nick-rate": 2,
                "nick-period": 10.0,
                "join-rate": 0.25,
                "join-burst": 8,
                "max-clients": 7,
                "max-per-ip": 2,
                "read-budget": 1048576,
                "frame-timeout": 1.5,
                "presence-limit": 10,
                "max-rooms-per-client": 4,
                "max-rooms": 50,
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
        self.assertEqual((settings.max_rooms_per_client, settings.max_rooms), (4, 50))
        self.assertEqual(
            (settings.nick_rate, settings.nick_period, settings.join_rate, settings.join_burst),
            (2, 10.0, 0.25, 8))
        self.assertEqual((settings.read_budget, settings.frame_timeout), (1048576, 1.5))

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
        self.assertUsageError(
            ["--sendq", "256KiB", "--sendq-soft", "256KiB"], "must be more than --sendq-soft"
        )
        self.assertUsageError(["--sendq", "lots"], "is not a size")
        self.assertUsageError(["--sendq", "1GB"], "is not a size")
        self.assertUsageError(["--rate", "-1"], "--rate must be 0")
        self.assertUsageError(["--burst", "0"], "--burst must be at least 1")
        self.assertUsageError(["--max-clients", "0"], "at least 1")
        self.assertUsageError(["--max-per-ip", "-1"], "--max-per-ip must be 0")
        self.assertUsageError(["--backlog", "-5"], "--backlog must be 0 or more")
        self.assertUsageError(["--shutdown-grace", "-1"], "--shutdown-grace must be 0")
        self.assertUsageError(["--presence-limit", "-1"], "--presence-limit must be 0")
        self.assertUsageError(["--max-rooms-per-client", "0"], "at least 1")
        self.assertUsageError(["--max-rooms", "0"], "--max-rooms must be at least 1")
        self.assertUsageError(["--nick-rate", "-1"], "--nick-rate must be 0")
        self.assertUsageError(["--nick-period", "0"], "--nick-period must be more than 0")
        self.assertUsageError(["--join-rate", "-1"], "--join-rate must be 0")
        self.assertUsageError(["--join-burst", "0"], "--join-burst must be at least 1")
        self.assertUsageError(["--log-rate", "-1"], "--log-rate must be 0")

    def test_read_budget(self):
        """
        --read-budget is a size holding at least one --max-frame and its length.
        """
        self.assertEqual(parse("--read-budget", "1MiB")["read-budget"], 1048576)
        self.assertEqual(
            parse("--read-budget", "4100", "--max-frame", "4096").settings().read_budget, 4100)
        self.assertUsageError(
            ["--read-budget", "64KiB"],
            "--read-budget (65536) must hold at least one frame (--max-frame 65536, and "
            "its 4-byte length); raise --read-budget or lower --max-frame")
        self.assertUsageError(["--read-budget", "4099", "--max-frame", "4096"],
                              "--read-budget (4099) must hold")
        self.assertUsageError(["--read-budget", "lots"], "is not a size")

    def test_frame_timeout(self):
        """
        --frame-timeout is in (0, --timeout], by default 10 or --timeout.
        """
        self.assertEqual(parse("--frame-timeout", "30")["frame-timeout"], 30.0)
        short = parse("--heartbeat-interval", "1", "--timeout", "4")
        self.assertEqual((short["frame-timeout"], short.settings().frame_timeout), (4.0, 4.0))
        self.assertUsageError(
            ["--frame-timeout", "31"],
            "--frame-timeout (31) must be more than 0 and at most --timeout (30)")
        self.assertUsageError(["--frame-timeout", "0"], "--frame-timeout (0) must be more than 0")
        self.assertUsageError(["--frame-timeout", "nan"], "must be more than 0")
        self.assertUsageError(["--frame-timeout", "soon"], "'soon' is not a number")

    def test_frame_limits(self):
        """
        --max-frame has bounds, and must carry --max-text.
        """
        self.assertUsageError(["--max-frame", "100"], "--max-frame must be between")
        self.assertUsageError(["--max-frame", str(2**30)], "--max-frame must be between")
        self.assertUsageError(
            ["--max-frame", "65536", "--max-text", "20000"], "needs --max-frame of at least"
        )


def limits(max_frame, max_text, sendq_soft=262144, sendq=1048576):
    """
    L{DEFAULTS} with these frame and send-queue limits.
    """
    return dict(
        DEFAULTS,
        **{"max-frame": max_frame, "max-text": max_text, "sendq-soft": sendq_soft, "sendq": sendq}
    )


# A limit given on the command line, or not (None).
_given_sizes = st.none() | st.integers(min_value=-10, max_value=2**26)


class FrameLimitTests(SynchronousTestCase):
    """
    --max-frame, --max-text, --sendq-soft and --sendq: a limit not given is
    derived from the ones given; given limits that conflict are refused.
    """

    def assertUsageMessage(self, argv, message):
        error = self.assertRaises(UsageError, parse, *argv)
        self.assertEqual(str(error), message)

    def test_nothing_given(self):
        """
        With none of them given, the defaults, and the same settings as
        before: parsed or not.
        """
        self.assertEqual(dict(parse()), DEFAULTS)
        self.assertEqual(parse().settings(), ServerSettings())
        self.assertEqual(tap.Options().settings(), ServerSettings())

    def test_max_frame_alone(self):
        """
        --max-frame alone lowers --max-text to what it carries, down to 128
        characters at the smallest frame, and keeps the default where it
        fits.
        """
        self.assertEqual(dict(parse("--max-frame", "1024")), limits(1024, 128))
        self.assertEqual(dict(parse("--max-frame", "4096")), limits(4096, 640))
        self.assertEqual(dict(parse("--max-frame", "24831")), limits(24831, 4095))
        self.assertEqual(dict(parse("--max-frame", "24832")), limits(24832, 4096))
        self.assertEqual(dict(parse("--max-frame", "65536")), DEFAULTS)
        self.assertEqual(parse("--max-frame", "4096").settings().max_text, 640)

    def test_max_frame_alone_raises_sendq(self):
        """
        --max-frame alone above --sendq-soft's default raises it to one
        frame, and --sendq to four times that.
        """
        self.assertEqual(
            dict(parse("--max-frame", "16777216")),
            limits(16777216, 4096, 16777216, 67108864),
        )
        self.assertEqual(
            dict(parse("--max-frame", "524288")), limits(524288, 4096, 524288, 1048576)
        )

    def test_max_text_alone(self):
        """
        --max-text alone raises --max-frame (and what holds a frame) as far
        as it needs; the most is what 16 MiB carries.
        """
        self.assertEqual(dict(parse("--max-text", "100")), limits(65536, 100))
        self.assertEqual(dict(parse("--max-text", "20000")), limits(120256, 20000, 262144))
        self.assertEqual(
            dict(parse("--max-text", "100000")), limits(600256, 100000, 600256)
        )
        self.assertUsageMessage(
            ["--max-text", "2796161"],
            "--max-text 2796161 is too long: the largest --max-frame (16777216) "
            "carries 2796160 characters; lower --max-text",
        )

    def test_both_given_conflict(self):
        """
        --max-frame and --max-text that do not fit together are refused,
        saying what to change.
        """
        self.assertUsageMessage(
            ["--max-frame", "4096", "--max-text", "4096"],
            "--max-text 4096 needs --max-frame of at least 24832; "
            "raise --max-frame or lower --max-text",
        )
        self.assertUsageMessage(
            ["--max-frame", "4096", "--max-text", "641"],
            "--max-text 641 needs --max-frame of at least 4102; "
            "raise --max-frame or lower --max-text",
        )

    def test_both_given_compatible(self):
        """
        --max-frame and --max-text that fit together are kept as given.
        """
        self.assertEqual(
            dict(parse("--max-frame", "4096", "--max-text", "640")), limits(4096, 640)
        )
        self.assertEqual(
            dict(parse("--max-frame", "1024", "--max-text", "1")), limits(1024, 1)
        )
        self.assertEqual(
            dict(parse("--max-frame", "200000", "--max-text", "20000")),
            limits(200000, 20000),
        )

    def test_sendq_soft(self):
        """
        --sendq-soft alone lowers --max-frame to one frame; with --max-frame
        or --max-text that need more, it is refused, saying what to change.
        """
        self.assertEqual(
            dict(parse("--sendq-soft", "32KiB")), limits(32768, 4096, 32768)
        )
        self.assertEqual(
            dict(parse("--sendq-soft", "16KiB")), limits(16384, 2688, 16384)
        )
        self.assertUsageMessage(
            ["--sendq-soft", "1000"],
            "--sendq-soft (1000) must hold at least one frame of the smallest "
            "--max-frame (1024); raise --sendq-soft",
        )
        self.assertUsageMessage(
            ["--sendq-soft", "4096", "--max-frame", "8192"],
            "--sendq-soft (4096) must hold at least one frame (--max-frame 8192); "
            "raise --sendq-soft or lower --max-frame",
        )
        self.assertUsageMessage(
            ["--sendq-soft", "16KiB", "--max-text", "4096"],
            "--max-text 4096 needs frames of 24832 bytes, more than --sendq-soft "
            "(16384); raise --sendq-soft or lower --max-text",
        )

    def test_sendq(self):
        """
        --sendq alone lowers --sendq-soft if that must (to a quarter of it),
        and --max-frame with it (a frame at most that quarter), as
        --sendq-soft alone does; a --sendq too small for four of the
        smallest frames, or not over a given --sendq-soft or one given
        frame, is refused, naming only options that were given.
        """
        self.assertEqual(
            dict(parse("--sendq", "256KiB")), limits(65536, 4096, 65536, 262144)
        )
        self.assertEqual(
            dict(parse("--sendq", "512KiB")), limits(65536, 4096, 262144, 524288)
        )
        self.assertEqual(
            dict(parse("--sendq", "64KiB")), limits(16384, 2688, 16384, 65536)
        )
        self.assertUsageMessage(
            ["--sendq", "2000"],
            "--sendq (2000) must hold at least four of the smallest frames "
            "(4096 bytes); raise --sendq",
        )
        self.assertUsageMessage(
            ["--sendq", "64KiB", "--max-frame", "65536"],
            "--sendq (65536) must be more than one frame (--max-frame 65536); "
            "raise --sendq or lower --max-frame",
        )
        self.assertUsageMessage(
            ["--sendq", "20000", "--max-text", "4096"],
            "--sendq (20000) must be more than one frame (--max-frame 24832); "
            "raise --sendq or lower --max-text",
        )
        self.assertUsageMessage(
            ["--sendq", "256KiB", "--sendq-soft", "256KiB"],
            "--sendq (262144) must be more than --sendq-soft (262144); "
            "raise --sendq or lower --sendq-soft",
        )

    @given(max_frame=st.integers(wire.MIN_FRAME_LIMIT, wire.MAX_FRAME_LIMIT))
    def test_text_for_frame_is_largest(self, max_frame):
        """
        L{text_for_frame} is the longest text any frame of that size
        carries: one character more does not fit.
        """
        text = text_for_frame(max_frame)
        self.assertLessEqual(wire.max_frame_for_text(text), max_frame)
        self.assertGreater(wire.max_frame_for_text(text + 1), max_frame)

    @given(max_frame=st.integers(wire.MIN_FRAME_LIMIT, wire.MAX_FRAME_LIMIT))
    def test_max_frame_alone_property(self, max_frame):
        """
        For any --max-frame alone, --max-text is the largest that fits, or
        its default if that is smaller.
        """
        options = parse("--max-frame", str(max_frame))
        largest = text_for_frame(max_frame)
        self.assertGreaterEqual(largest, 1)
        self.assertEqual(options["max-text"], min(largest, wire.DEFAULT_MAX_TEXT))
        self.assertLessEqual(wire.max_frame_for_text(options["max-text"]), max_frame)

    @given(
        max_frame=_given_sizes,
        max_text=_given_sizes,
        sendq_soft=_given_sizes,
        sendq=_given_sizes,
    )
    def test_limits_fit_or_refused(self, max_frame, max_text, sendq_soft, sendq):
        """
        Whatever is given, L{frame_limits} refuses it, or keeps every
        given limit and returns four that fit together.
        """
        given = (max_frame, max_text, sendq_soft, sendq)
        try:
            result = frame_limits(*given)
        except LimitsError:
            return
        for was, now in zip(given, result):
            if was is not None:
                self.assertEqual(now, was)
        frame, text, soft, hard = result
        self.assertTrue(wire.MIN_FRAME_LIMIT <= frame <= wire.MAX_FRAME_LIMIT)
        self.assertTrue(1 <= text and wire.max_frame_for_text(text) <= frame)
        self.assertTrue(frame <= soft < hard)


class SettingsTests(SynchronousTestCase):
    """
    L{twisted_chat.settings}: the server's settings and policy defaults.
    """

    def test_protocol_defaults(self):
        """
        A server started without options announces the values a client
        assumes before its welcome (L{wire}'s defaults).
        """
        defaults = ServerSettings()
        self.assertEqual(
            (defaults.heartbeat_interval, defaults.timeout, defaults.max_frame,
             defaults.max_text),
            (wire.DEFAULT_HEARTBEAT_INTERVAL, wire.DEFAULT_TIMEOUT,
             wire.DEFAULT_MAX_FRAME, wire.DEFAULT_MAX_TEXT),
        )

    def test_frozen(self):
        """
        Settings cannot be changed once made.
        """
        import dataclasses

        self.assertRaises(
            dataclasses.FrozenInstanceError, setattr, ServerSettings(), "rate", 1.0)

    def test_every_value_documented(self):
        """
        Every value of L{twisted_chat.settings} has a docstring below it.
        """
        import ast
        import inspect

        from twisted_chat import settings

        body = ast.parse(inspect.getsource(settings)).body
        names = []
        for statement, following in zip(body, body[1:] + [None]):
            if isinstance(statement, ast.Assign) and statement.targets[0].id.isupper():
                names.append(statement.targets[0].id)
                documented = (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                )
                self.assertTrue(documented, statement.targets[0].id)
        self.assertIn("LISTEN_BACKLOG", names)
        self.assertIn("FLOOD_FACTOR", names)

    def test_limits_error_is_usage_error(self):
        """
        Limits that do not fit are a L{LimitsError} from
        L{frame_limits}, and a usage error naming the option under twistd.
        """
        error = self.assertRaises(LimitsError, frame_limits, max_frame=100)
        self.assertIn("--max-frame must be between", str(error))
        options = tap.Options()
        error = self.assertRaises(UsageError, options.parseOptions, ["--max-frame", "100"])
        self.assertIn("--max-frame must be between", str(error))


class Twistd(usage.Options):
    """
    A command with C{chat} as its sub-command, as twistd has.
    """

    subCommands = [["chat", None, tap.Options, "The chat server."]]


class UsageErrorTests(SynchronousTestCase):
    """
    Under twistd, a bad command line is one line on stderr, not twistd's
    whole option list.
    """

    def run_twistd(self, *argv):
        """
        Parse C{argv} with L{Twistd}, collecting stdout and stderr.

        @return: the L{SystemExit} raised, stdout and stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        error = self.assertRaises(SystemExit, Twistd().parseOptions, list(argv))
        return error, out.getvalue(), err.getvalue()

    def test_one_line(self):
        """
        A bad value, a conflict or an unknown option of ours exits with
        status 2 and one line naming the error and --help.
        """
        for argv, message in [
            (["--max-frame", "12"], "--max-frame must be between 1024 and 16777216"),
            (
                ["--max-frame", "4096", "--max-text", "4096"],
                "--max-text 4096 needs --max-frame of at least 24832; "
                "raise --max-frame or lower --max-text",
            ),
            (["--no-such-option"], "option --no-such-option not recognized"),
        ]:
            error, out, err = self.run_twistd("chat", *argv)
            self.assertEqual(error.code, tap.USAGE_ERROR_STATUS)
            self.assertEqual(out, "")
            self.assertEqual(
                err, "twistd chat: %s (see twistd chat --help)\n" % (message,)
            )

    def test_help(self):
        """
        C{twistd chat --help} still prints our whole help and exits 0.
        """
        error, out, err = self.run_twistd("chat", "--help")
        self.assertIn(error.code, (None, 0))
        self.assertEqual(err, "")
        self.assertIn("Run a twisted-chat server.", out)
        self.assertIn("--max-frame=", out)

    def test_alone_raises(self):
        """
        Not as a sub-command, a bad command line raises L{UsageError} and
        writes nothing.
        """
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertRaises(UsageError, parse, "--max-frame", "12")
        self.assertEqual(err.getvalue(), "")


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
        self.assertTrue(factory.room.coalesce)

    def test_cluster_hold_limit(self):
        """
        A cluster node, too, holds what pending clients are owed up to
        --sendq bytes beyond its backlog.
        """
        service = tap.makeService(
            parse("--redis", "redis://127.0.0.1:1/0", "--sendq", "2MiB"),
            reactor=MemoryReactorClock())
        self.assertEqual(service.factory.room.backlog.hold_limit, 2 * 1024 * 1024)

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


class RequireTests(SynchronousTestCase):
    def test_missing_extra_is_one_line(self):
        # Private: through makeService, only an extra that is really
        # missing would show this, and the test extra installs them all.
        """
        A missing extra is a one-line usage error naming the pip command.
        """
        e = self.assertRaises(UsageError, tap._require, "--metrics", "metrics",
                              "json", "no_such_module_for_twisted_chat")
        self.assertIn("--metrics needs the metrics extra: pip install 'twisted-chat[metrics]'",
                      str(e))
        tap._require("--metrics", "metrics", "json")
