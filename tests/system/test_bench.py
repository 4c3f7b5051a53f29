"""
The load and chaos tool run for real, against servers in child processes
(its parts: tests/unit/test_bench.py).
"""

import json
import os
import shutil
from unittest import SkipTest

from twisted.internet import defer, utils
from twisted.trial.unittest import TestCase

from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import ROOT, exit_status, temp_dir


FLOOR_SOURCE = os.path.join(ROOT, "benchmarks", "floor_server.c")


class RunTests(LoopbackMixin, TestCase):
    """
    Short real runs of the tool, as a user would start it.
    """

    timeout = 90

    @defer.inlineCallbacks
    def load_smoke(self, port):
        """
        Run the tool briefly against C{port} and check what it reports.
        """
        out = os.path.join(temp_dir(self, "bench-"), "result.json")
        child = self.spawn(
            ["-m", "twisted_chat.bench", "load", "--port", str(port),
             "--connections", "20", "--senders", "4", "--duration", "1",
             "--warmup", "0.5", "--procs", "2", "--quiet", "--json", out]
        )
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None), bytes(child.out + child.err))
        with open(out) as f:
            summary = json.load(f)
        self.assertEqual(summary["connections"], 20)
        self.assertGreater(summary["deliveries"], 0)
        self.assertGreater(summary["latency_ms"]["samples"], 0)
        self.assertTrue(summary["ok"])
        self.assertIn(b"deliveries/s", child.out)

    @defer.inlineCallbacks
    def test_load_smoke(self):
        """
        A short load run against a real server measures deliveries and
        latency, checks integrity, and writes JSON.
        """
        server = yield self.start_server(rate=0)
        yield self.load_smoke(server.port)

    @defer.inlineCallbacks
    def test_load_rooms(self):
        """
        bench load --rooms 3 spreads 20 connections and 4 senders over three
        rooms of a real server for about a second, and finds every room
        intact at every member.
        """
        server = yield self.start_server(rate=0)
        out = os.path.join(temp_dir(self, "bench-"), "result.json")
        child = self.spawn(
            ["-m", "twisted_chat.bench", "load", "--port", str(server.port),
             "--connections", "20", "--senders", "4", "--rooms", "3", "--duration", "1",
             "--warmup", "0.3", "--procs", "2", "--quiet", "--json", out]
        )
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None), bytes(child.out + child.err))
        with open(out) as f:
            summary = json.load(f)
        self.assertTrue(summary["ok"])
        rooms = summary["rooms"]
        self.assertEqual((rooms["count"], rooms["ok"], rooms["failed"]), (3, True, []))
        per_room = rooms["per_room"]
        self.assertEqual(sorted(per_room), ["bench-0", "bench-1", "bench-2"])
        self.assertEqual([(r["members"], r["joined"], r["senders"]) for r in per_room.values()],
                         [(7, 7, 2), (7, 7, 1), (6, 6, 1)])
        for entry in per_room.values():
            self.assertTrue(entry["ok"])
            self.assertGreater(entry["checked"], 0)
            self.assertGreaterEqual(entry["verifiers"], 1)
        self.assertGreater(summary["deliveries"], 0)
        self.assertIn(b"rooms ", child.out)
        self.assertIn(b"3, OK in every room: 20 members", child.out)

    @defer.inlineCallbacks
    def test_floor_server(self):
        """
        benchmarks/floor_server.c, the C floor that benchmarks/compare.py
        --floor measures against, builds and serves the tool: deliveries,
        latency and integrity.
        """
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise SkipTest("no C compiler")
        binary = os.path.join(temp_dir(self, "floor-"), "floor_server")
        out, err, code = yield utils.getProcessOutputAndValue(
            compiler, ["-O2", "-Wall", "-Werror", "-o", binary, FLOOR_SOURCE], env=os.environ)
        self.assertEqual(code, 0, out + err)
        server = self.spawn(["0"], program=binary)
        match = yield server.wait_for(rb"listening on (\d+)")
        yield self.load_smoke(int(match.group(1)))

    @defer.inlineCallbacks
    def test_load_cannot_connect(self):
        """
        With nothing listening, the tool says so in one line and exits 1.
        """
        port = self.free_port()
        child = self.spawn(["-m", "twisted_chat.bench", "load", "--port", str(port), "--quiet"])
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (1, None))
        self.assertIn(b"cannot connect to 127.0.0.1:%d" % (port,), child.err)
        self.assertNotIn(b"Traceback", child.err)

    @defer.inlineCallbacks
    def test_chaos_smoke(self):
        """
        chaos runs every failure case against its own server and reports
        each within its bound.
        """
        child = self.spawn(["-m", "twisted_chat.bench", "chaos"])
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (0, None), bytes(child.out + child.err))
        for case in [b"server process killed", b"server host silent", b"client host silent",
                     b"a reader that stops reading", b"crash and restart"]:
            self.assertIn(case, child.out)
        self.assertNotIn(b" NO\n", child.out)
