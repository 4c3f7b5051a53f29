"""
Tests for the load and chaos tool, L{twisted_chat.bench}: its parsing of
frames, its options, its report, and its modules without the extra (short
real runs on loopback: tests/system/test_bench.py).
"""

import io
import json
import subprocess
import sys

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import bench, wire
from twisted_chat.bench import cli, load
from twisted_chat.bench import worker as bench_worker
from tests.helpers.processes import child_env



class ParsingTests(SynchronousTestCase):
    """
    Reading seq and text fields straight from frame bytes.

    The worker's private parsing functions are called directly: they are
    the unit, and a load run shows only their sums.
    """

    def test_compact_and_spaced_json(self):
        """
        Both the server's compact JSON and json.dumps' default spacing are
        read.
        """
        text = bench_worker._message_text(7, 42, 64)
        event = {"type": "message", "from": "x", "text": text, "time": 1.0, "seq": 99}
        for payload in [wire.encode(event), json.dumps(event).encode()]:
            self.assertTrue(payload.startswith(bench_worker._MESSAGE_PREFIXES))
            self.assertEqual(bench_worker._tail_seq(payload), 99)
            sent_at, gid, counter = bench_worker._text_fields(payload)
            self.assertEqual((gid, counter), (7, 42))
            self.assertAlmostEqual(sent_at, float(text.split()[0]))

    def test_text_padded(self):
        """
        Message texts are padded to the requested size.
        """
        self.assertEqual(len(bench_worker._message_text(1, 1, 200)), 200)


class ExtraTests(SynchronousTestCase):
    """
    The tool needs the bench extra, and says so in one line without it.
    """

    def importer(self, *absent):
        """
        An C{import_module} for which the modules C{absent} are not
        installed, and that imports nothing else either.
        """
        imported = []

        def import_module(name):
            imported.append(name)
            if name in absent:
                raise ImportError("No module named %r" % (name,))

        return import_module, imported

    def run_without(self, *absent):
        """
        Run the tool with C{absent} missing; return its exit status and what
        it wrote on stderr.
        """
        import_module, _ = self.importer(*absent)
        err = io.StringIO()
        exit = self.assertRaises(
            SystemExit, bench.run, ["load"], import_module=import_module, err=err)
        return exit.code, err.getvalue()

    def test_missing_extra(self):
        """
        Without hdrhistogram, one line names the extra and the missing
        distribution, and the exit status is 2.
        """
        status, err = self.run_without("hdrh.histogram")
        self.assertEqual(status, 2)
        self.assertEqual(
            err,
            "twisted-chat-bench needs the bench extra: pip install "
            "'twisted-chat[bench]' (missing: hdrhistogram)\n",
        )

    def test_all_missing(self):
        """
        Every missing distribution is named, on the same one line.
        """
        status, err = self.run_without("hdrh.histogram", "tqdm")
        self.assertEqual(status, bench.MISSING_EXTRA_STATUS)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("(missing: hdrhistogram, tqdm)", err)

    def test_installed(self):
        """
        With the extra installed (as the test extra installs it), nothing
        is missing; the modules checked are the extra's.
        """
        self.assertEqual(bench.missing_extra(), [])
        import_module, imported = self.importer()
        self.assertEqual(bench.missing_extra(import_module), [])
        self.assertEqual(imported, ["hdrh.histogram", "tqdm"])

    def without_extra(self, code):
        """
        Run C{code} in a child Python that cannot import the extra's
        modules, as if it were not installed.

        @return: its exit status and its output (stdout and stderr).
        """
        hide = (
            "import sys\n"
            "class Absent:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('hdrh', 'tqdm'):\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Absent())\n"
        )
        child = subprocess.run(
            [sys.executable, "-c", hide + code], env=child_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return child.returncode, child.stdout

    def test_helpers_need_no_extra(self):
        """
        What benchmarks/*.py import, and every module of the tool, load
        without the extra.
        """
        status, output = self.without_extra(
            "from twisted_chat.bench.servers import chat_server_args, resident_mib, start_chat_server\n"
            "from twisted_chat.bench import cli, chaos, load, worker\n"
            "from twisted_chat import bench\n"
            "print(bench.missing_extra())\n"
        )
        self.assertEqual((status, output), (0, b"['hdrhistogram', 'tqdm']\n"))

    def test_module_without_extra(self):
        """
        C{python -m twisted_chat.bench} without the extra prints the one
        line and exits 2: no traceback.
        """
        status, output = self.without_extra(
            "import runpy\n"
            "sys.argv[1:] = ['load']\n"
            "runpy.run_module('twisted_chat.bench', run_name='__main__')\n"
        )
        self.assertEqual(
            (status, output),
            (2, b"twisted-chat-bench needs the bench extra: pip install "
                b"'twisted-chat[bench]' (missing: hdrhistogram, tqdm)\n"),
        )


class OptionsTests(SynchronousTestCase):
    """
    The tool's command line.
    """

    def test_load_defaults(self):
        """
        load defaults to the fan-out scenario on 127.0.0.1.
        """
        options = cli.Options()
        options.parseOptions(["load"])
        sub = options.subOptions
        self.assertEqual(
            (sub["host"], sub["connections"], sub["senders"], sub["inflight"], sub["size"]),
            ("127.0.0.1", 100, 10, 32, 64),
        )
        self.assertEqual(sub["sample"], 16)

    def test_ports(self):
        """
        --ports spreads the connections over several servers, and is checked.
        """
        options = cli.Options()
        options.parseOptions(["load", "--ports", "4001,4002"])
        self.assertEqual((options.subOptions["ports"], options.subOptions["port"]), ("4001,4002", 4001))
        # Private: what a worker is started with shows only in a load run.
        self.assertIn("--ports", load._forward(options.subOptions))
        for bad in ("4001,x", "70000", ""):
            self.assertRaises(usage.UsageError, cli.Options().parseOptions, ["load", "--ports", bad])

    def test_bad(self):
        """
        Impossible numbers are usage errors.
        """
        from twisted.python.usage import UsageError

        for argv in [["load", "--senders", "5", "--connections", "2"],
                     ["load", "--size", "3"], ["load", "--rate", "-1"], []]:
            self.assertRaises(UsageError, cli.Options().parseOptions, argv)


class SummaryTests(SynchronousTestCase):
    """
    The final table.
    """

    def summary(self, **integrity):
        base = {"gaps": 0, "reorders": 0, "sender_order_errors": 0,
                "receivers_fully_verified": 4, "lagged": 0, "errors": {}}
        base.update(integrity)
        return {
            "server": "127.0.0.1:1", "connect_seconds": 0.5, "server_process": None,
            "connections": 10, "connect_failures": 0, "senders": 2, "rate_per_sender": 0,
            "inflight": 32, "size": 64, "duration": 1.0, "sent": 5, "deliveries": 50,
            "deliveries_per_second": 50.0,
            "latency_ms": {"samples": 3, "p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
            "heartbeat_rtt_ms": {"samples": 0, "p50": None, "p99": None, "max": None},
            "integrity": base, "tool_cpu_percent": [95.0], "warnings": [],
            "ok": not (base["gaps"] or base["reorders"]),
        }

    def test_table(self):
        """
        The table shows throughput, latency, integrity and a busy tool.
        """
        text = load.format_summary(self.summary())
        self.assertIn("deliveries/s", text)
        self.assertIn("1.00 / 2.00 / 3.00 / 4.00", text)
        self.assertIn("OK: 0 gaps", text)
        self.assertIn("the tool itself was busy", text)

    def test_rate_limited_warning(self):
        """
        A run against a rate-limiting server says how to measure instead.
        """
        summary = self.summary(errors={"rate_limited": 7})
        self.assertIn("run it with --rate 0", load.format_summary(summary))

    def test_failed_integrity(self):
        """
        Gaps make the integrity line say FAILED.
        """
        self.assertIn("FAILED: 3 gaps", load.format_summary(self.summary(gaps=3)))


class _Worker:
    """
    Just what a LoadClient reads and counts on its worker.
    """

    measuring = True
    sending = False
    deliveries = gaps = reorders = events = order_errors = lags = 0
    options = {"rate": 0, "inflight": 1, "size": 64}

    def __init__(self):
        self.errors = {}


class PlainReceiverTests(SynchronousTestCase):
    """
    The lean receive path of plain receivers still checks every event.
    """

    def receive(self, seqs, chunk, events=None):
        """
        Feed a plain receiver message events with C{seqs} (or C{events}, as
        given), C{chunk} bytes at a time.
        """
        worker = _Worker()
        client = bench_worker.LoadClient(worker, 5, sender=False, recorder=False, verifier=False)
        self.assertTrue(client.plain)
        client.last_seq = 0
        if events is None:
            events = [{"type": "message", "from": "x", "text": "t", "time": 1.0, "seq": seq}
                      for seq in seqs]
        data = b"".join(wire.encode_frame(event) for event in events)
        for i in range(0, len(data), chunk):
            client.dataReceived(data[i : i + chunk])
        return worker

    def test_counts_in_order(self):
        """
        Events in order, split anywhere, are all counted, with no gap.
        """
        for chunk in (1, 7, 1000):
            worker = self.receive([1, 2, 3, 4], chunk)
            self.assertEqual((worker.deliveries, worker.gaps, worker.reorders), (4, 0, 0))

    def test_gap_and_reorder(self):
        """
        A missing seq is a gap, and an old one a reorder.
        """
        worker = self.receive([1, 2, 5, 4], 3)
        self.assertEqual((worker.gaps, worker.reorders), (2, 1))

    def test_presence_events(self):
        """
        join, leave and nick events count in the seq check (a missing one
        is a gap) but are not message deliveries.
        """
        events = [
            {"type": "join", "name": "a", "seq": 1},
            {"type": "message", "from": "a", "text": "t", "time": 1.0, "seq": 2},
            {"type": "nick", "old": "a", "new": "b", "seq": 3},
            {"type": "leave", "name": "b", "reason": "quit", "seq": 5},
        ]
        worker = self.receive(None, 5, events)
        self.assertEqual((worker.deliveries, worker.events, worker.gaps), (1, 4, 1))


class SenderOrderTests(SynchronousTestCase):
    """
    A verifying receiver checks that each sender's messages come in the
    order they were sent.
    """

    def receive(self, counters):
        worker = _Worker()
        client = bench_worker.LoadClient(worker, 5, sender=False, recorder=False, verifier=True)
        client.last_seq = 0
        for seq, counter in enumerate(counters, 1):
            text = bench_worker._message_text(3, counter, 64)
            client.stringReceived(wire.encode(
                {"type": "message", "from": "x", "text": text, "time": 1.0, "seq": seq}))
        return worker

    def test_skip_is_not_an_error(self):
        """
        A counter skipped (that message was refused, say) is fine: a lost
        message would be a seq gap.
        """
        self.assertEqual(self.receive([1, 2, 4, 5]).order_errors, 0)

    def test_older_or_repeated_is_an_error(self):
        """
        A counter older than or equal to the last is an order error.
        """
        self.assertEqual(self.receive([1, 3, 2, 4, 4]).order_errors, 2)
