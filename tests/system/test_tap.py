"""
twistd itself, as a child process: its usage errors and help, and the JSON
log observer (the options and the service: tests/unit/test_tap.py).
"""

import json

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from twisted_chat import tap
from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import TWISTD, exit_status


class TwistdUsageErrorTests(LoopbackMixin, TestCase):
    """
    A bad command line, in a real twistd.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_one_line_exit_2(self):
        """
        C{twistd -n chat --max-frame 12} prints one line on stderr, nothing
        on stdout, and exits with status 2.
        """
        child = self.spawn(TWISTD + ["-n", "--pidfile=", "chat", "--max-frame", "12"])
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (tap.USAGE_ERROR_STATUS, None))
        self.assertEqual(bytes(child.out), b"")
        self.assertEqual(
            bytes(child.err).splitlines(),
            [
                b"twistd chat: --max-frame must be between 1024 and 16777216 "
                b"(see twistd chat --help)"
            ],
        )

    @defer.inlineCallbacks
    def test_help(self):
        """
        C{twistd chat --help} prints our help and exits 0.
        """
        child = self.spawn(TWISTD + ["chat", "--help"])
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None))
        self.assertIn(b"--max-frame=", bytes(child.out))
        self.assertIn(b"Run a twisted-chat server.", bytes(child.out))


class JSONLogTests(LoopbackMixin, TestCase):
    """
    C{twistd --logger twisted_chat.logs.json}: one JSON object a line.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_json_lines(self):
        """
        --logger twisted_chat.logs.json writes JSON lines naming each peer.
        """
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
