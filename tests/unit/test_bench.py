"""
Tests for the load and chaos tool, L{twisted_chat.bench}: its parsing of
frames, its options, its report, and its modules without the extra (short
real runs on loopback: tests/system/test_bench.py).
"""

import io
import json
import subprocess
import sys

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
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


class RoomsOptionTests(SynchronousTestCase):
    """
    C{load --rooms}: parsed, checked, and passed on to the workers only when
    given.
    """

    def parse(self, *argv):
        options = cli.Options()
        options.parseOptions(["load"] + list(argv))
        return options.subOptions

    def test_default_is_the_lobby(self):
        """
        Without --rooms there are none, and the workers are started as
        before rooms.
        """
        sub = self.parse()
        self.assertEqual(sub["rooms"], 0)
        # Private: what a worker is started with shows only in a load run.
        self.assertNotIn("--rooms", load._forward(sub))

    def test_rooms(self):
        """
        --rooms N is a number, and the workers are told it.
        """
        sub = self.parse("--rooms", "3", "--connections", "20")
        self.assertEqual(sub["rooms"], 3)
        args = load._forward(sub)
        self.assertEqual(args[args.index("--rooms") + 1], "3")

    def test_bad_rooms(self):
        """
        Fewer than none, or more rooms than connections, are usage errors.
        """
        for argv in [["--rooms", "-1"], ["--rooms", "101"], ["--rooms", "x"],
                     ["--rooms", "6", "--connections", "5"]]:
            self.assertRaises(usage.UsageError, self.parse, *argv)


class RoomNameTests(SynchronousTestCase):
    """
    How connections, and senders among them, are dealt out over the rooms.
    """

    def test_spread(self):
        """
        20 connections over 3 rooms: 7, 7 and 6 members, and the first 4
        (the senders) in rooms 0, 1, 2, 0.
        """
        names = [bench_worker.room_name(gid, 3) for gid in range(20)]
        self.assertEqual([names.count(room) for room in ("bench-0", "bench-1", "bench-2")],
                         [7, 7, 6])
        self.assertEqual(names[:4], ["bench-0", "bench-1", "bench-2", "bench-0"])

    def test_names_valid_and_sorted(self):
        """
        Names are valid room names, padded so that they sort in order.
        """
        names = [bench_worker.room_name(gid, 1000) for gid in (0, 9, 10, 999, 1000)]
        self.assertEqual(names, ["bench-000", "bench-009", "bench-010", "bench-999", "bench-000"])
        for name in names:
            self.assertEqual(wire.check_room({"room": name}), name)


class _RoomWorker(_Worker):
    """
    A L{_Worker} with the counters of a --rooms run, a clock, and senders'
    options.
    """

    joins_done = join_failures = sent = welcomed = 0
    sample = 1

    def __init__(self):
        super().__init__()
        self.reactor = Clock()

    def record_latency(self, sent_at):
        pass


def _room_event(seq, room="bench-1", kind="message", **fields):
    """
    An event of C{room} (none: the lobby's) as the server frames it.
    """
    event = {"type": kind}
    if room is not None:
        event["room"] = room
    if kind == "message":
        event.update({"from": "x", "text": bench_worker._message_text(3, seq, 64), "time": 1.0})
    event.update(fields)
    event["seq"] = seq
    return event


class RoomReceiverTests(SynchronousTestCase):
    """
    A connection of a --rooms run checks its room's seq apart from the
    lobby's, on the lean path and the full one.
    """

    def client(self, plain=True, joined_at=10):
        """
        A L{RoomLoadClient} in bench-1, joined at seq C{joined_at} (not yet
        when None); a plain receiver unless C{plain} is false (then it
        verifies).
        """
        worker = _RoomWorker()
        client = bench_worker.RoomLoadClient(
            worker, 5, sender=False, recorder=False, verifier=not plain, room="bench-1")
        self.assertEqual(client.plain, plain)
        client.last_seq = 0
        if joined_at is not None:
            client.join_state = "asked"
            client.stringReceived(wire.encode(
                {"type": "joined", "room": "bench-1", "seq": joined_at, "topic": "",
                 "members": 2, "presence": True}))
        return worker, client

    def feed(self, client, events, chunk=1000, encode=wire.encode):
        """
        Give C{client} C{events}, framed, C{chunk} bytes at a time.
        """
        data = b"".join(wire.PREFIX.pack(len(encode(e))) + encode(e) for e in events)
        for i in range(0, len(data), chunk):
            client.dataReceived(data[i : i + chunk])

    def test_room_and_lobby_apart(self):
        """
        The room's events and the lobby's, interleaved and split anywhere,
        each rise by one from their own start: no gap, on either path.
        """
        events = [_room_event(11), _room_event(1, room=None, kind="join", name="a"),
                  _room_event(12, kind="join", name="b"), _room_event(2, room=None),
                  _room_event(13)]
        for plain in (True, False):
            for chunk in (1, 7, 1000):
                worker, client = self.client(plain)
                self.feed(client, events, chunk)
                self.assertEqual(
                    (worker.gaps, worker.reorders, client.foreign, worker.deliveries),
                    (0, 0, 0, 3))
                self.assertEqual((client.last_seq, client.room_seq), (2, 13))

    def test_gap_duplicate_reorder(self):
        """
        In the room, a seq skipped is a gap, one seen again a duplicate, an
        older one a reorder; the lobby is not blamed.
        """
        for plain in (True, False):
            worker, client = self.client(plain)
            self.feed(client, [_room_event(11), _room_event(13), _room_event(13),
                               _room_event(12), _room_event(1, room=None)], chunk=5)
            self.assertEqual(
                (client.room_gaps, client.room_duplicates, client.room_reorders),
                (1, 1, 1))
            self.assertEqual((worker.gaps, worker.reorders, client.last_seq), (1, 2, 1))

    def test_spaced_json(self):
        """
        json.dumps' spacing, with the room anywhere in the event, is read
        too.
        """
        for plain in (True, False):
            worker, client = self.client(plain)
            events = [_room_event(11), {"type": "message", "from": "x", "text": "t",
                                        "room": "bench-1", "time": 1.0, "seq": 12}]
            if not plain:
                events[1]["text"] = bench_worker._message_text(3, 1, 64)
            self.feed(client, events, encode=lambda e: json.dumps(e).encode())
            self.assertEqual((worker.gaps, client.room_seq, client.foreign, worker.deliveries),
                             (0, 12, 0, 2))

    def test_other_room(self):
        """
        An event of a room the connection is not in, or of its room before
        joined, is counted as foreign and moves no seq.
        """
        for plain in (True, False):
            worker, client = self.client(plain)
            self.feed(client, [_room_event(11, room="bench-10"), _room_event(11)])
            self.assertEqual((client.foreign, client.room_seq), (1, 11))
            worker, client = self.client(plain, joined_at=None)
            self.feed(client, [_room_event(1)])
            self.assertEqual((client.foreign, client.room_seq), (1, None))

    def test_lobby_by_name(self):
        """
        An event that names the lobby is the lobby's.
        """
        for plain in (True, False):
            worker, client = self.client(plain)
            self.feed(client, [_room_event(1, room="lobby"), _room_event(3, room="lobby")])
            self.assertEqual((client.last_seq, worker.gaps, client.room_gaps), (3, 1, 0))

    def test_other_events(self):
        """
        Room events that no load run causes (topic, op) are checked in the
        room's seq all the same; a parted is not an event.
        """
        worker, client = self.client()
        self.feed(client, [_room_event(11, kind="topic", by="x", topic="t"),
                           _room_event(13, kind="op", name="y", by=None),
                           {"type": "parted", "room": "bench-1", "seq": 13}])
        self.assertEqual((client.room_seq, client.room_gaps, client.room_duplicates), (13, 1, 0))

    def test_welcome_then_join(self):
        """
        After its welcome a connection joins its room; joined gives the seq
        to count from and tells the worker.
        """
        worker, client = self.client(joined_at=None)
        transport = StringTransport()
        client.makeConnection(transport)
        transport.clear()
        client.stringReceived(wire.encode(
            {"type": "welcome", "seq": 4, "session": "s", "heartbeat_interval": 10.0}))
        self.addCleanup(client.stop)
        self.assertEqual(_frames(transport), [{"type": "join", "room": "bench-1"}])
        self.assertEqual((client.join_state, worker.joins_done), ("asked", 0))
        client.stringReceived(wire.encode({"type": "joined", "room": "bench-1", "seq": 7}))
        self.assertEqual((client.join_state, client.room_seq, worker.joins_done), ("joined", 7, 1))
        self.assertEqual(worker.join_failures, 0)

    def test_join_refused(self):
        """
        An error about the room instead of joined is a refused join: the
        worker stops waiting for it, and counts it.
        """
        worker, client = self.client(joined_at=None)
        client.join_state = "asked"
        client.stringReceived(wire.encode(
            {"type": "error", "code": "too_many_rooms", "room": "bench-1", "message": "m"}))
        self.assertEqual((client.join_state, worker.joins_done, worker.join_failures),
                         ("refused", 1, 1))
        self.assertEqual(worker.errors, {"too_many_rooms": 1})

    def test_joined_again(self):
        """
        A joined after a resume that could not replay the room: the events
        it skips are counted as lost; one at a seq already seen is nothing.
        """
        worker, client = self.client()
        client.stringReceived(wire.encode({"type": "joined", "room": "bench-1", "seq": 9}))
        self.assertEqual((client.room_seq, client.room_gaps), (10, 0))
        client.stringReceived(wire.encode({"type": "joined", "room": "bench-1", "seq": 15}))
        self.assertEqual((client.room_seq, client.room_gaps, worker.gaps), (15, 5, 5))

    def test_lagged_resumes_the_room(self):
        """
        After lagged the connection resumes the lobby and its room, each
        from its last seq.
        """
        worker, client = self.client()
        transport = StringTransport()
        client.transport = transport
        client.session = "s"
        self.feed(client, [_room_event(11), _room_event(3, room=None)])
        client.stringReceived(wire.encode({"type": "lagged", "missed_from": 4,
                                           "rooms": {"bench-1": 12}}))
        self.assertEqual(_frames(transport), [
            {"type": "resume", "session": "s", "last_seq": 3, "rooms": {"bench-1": 11},
             "last_dseq": 0}])
        self.assertEqual(worker.lags, 1)

    def test_sends_to_its_room(self):
        """
        A sender's messages name its room.
        """
        worker = _RoomWorker()
        client = bench_worker.RoomLoadClient(worker, 2, sender=True, recorder=False,
                                             verifier=False, room="bench-2")
        client.transport = transport = StringTransport()
        client.send_message()
        [frame] = _frames(transport)
        self.assertEqual((frame["type"], frame["room"], worker.sent), ("message", "bench-2", 1))
        self.assertEqual(bench_worker._text_fields(wire.encode(frame))[1:], (2, 1))

    def test_sender_order_in_room(self):
        """
        A room's verifier counts a sender's message seen again as a
        duplicate, and an older one as out of order.
        """
        worker, client = self.client(plain=False)
        for seq, counter in enumerate([1, 3, 2, 4, 4], 11):
            event = _room_event(seq)
            event["text"] = bench_worker._message_text(3, counter, 64)
            client.stringReceived(wire.encode(event))
        self.assertEqual((client.order_errors, client.sender_duplicates, worker.order_errors),
                         (1, 1, 2))
        report = bench_worker.room_report([client])["bench-1"]
        self.assertEqual((report["sender_order"], report["duplicates"], report["gaps"]), (1, 1, 0))


def _frames(transport):
    """
    The frames written to C{transport}, decoded.
    """
    data, frames = transport.value(), []
    while data:
        (length,) = wire.PREFIX.unpack_from(data)
        frames.append(json.loads(data[4 : 4 + length]))
        data = data[4 + length :]
    return frames


class RoomReportTests(SynchronousTestCase):
    """
    Per-room integrity, summed over a worker's connections and then over
    the workers, judged, and shown.
    """

    def member(self, room="bench-0", first=0, last=5, sender=False, **faults):
        """
        A connection of C{room} as it ends a run: joined at C{first}, last
        event C{last}, with the counts of C{faults}.
        """
        client = bench_worker.RoomLoadClient(
            _RoomWorker(), 0, sender=sender, recorder=False, verifier=False, room=room)
        client.room_first_seq, client.room_seq = first, last
        for name, count in faults.items():
            setattr(client, name, count)
        return client

    def test_worker_report(self):
        """
        A worker sums its connections per room, and says where each ended.
        """
        report = bench_worker.room_report([
            self.member(sender=True), self.member(first=2, room_gaps=1),
            self.member(room="bench-1", last=None, first=None, foreign=2),
        ])
        self.assertEqual(report["bench-0"], {
            "members": 2, "joined": 2, "senders": 1, "verifiers": 0, "gaps": 1,
            "duplicates": 0, "reorders": 0, "sender_order": 0, "foreign": 0,
            "checked": 5 + 2, "ends": {"5": 2}})
        self.assertEqual((report["bench-1"]["joined"], report["bench-1"]["foreign"]), (0, 2))

    def test_all_ok(self):
        """
        Rooms whose every member joined and ended at the same seq, with no
        fault, are OK, over several workers.
        """
        worker_a = bench_worker.room_report([self.member(), self.member(room="bench-1", last=3)])
        worker_b = bench_worker.room_report([self.member()])
        rooms = load.rooms_summary(2, [worker_a, worker_b])
        self.assertTrue(rooms["ok"])
        self.assertEqual(rooms["failed"], [])
        self.assertEqual(list(rooms["per_room"]), ["bench-0", "bench-1"])
        entry = rooms["per_room"]["bench-0"]
        self.assertEqual((entry["members"], entry["last_seq"], entry["behind"], entry["ok"]),
                         (2, 5, 0, True))

    def test_faults(self):
        """
        A member behind the others at the end, a member not joined, or any
        fault count fails its room, and the run.
        """
        for faulty in [self.member(last=4), self.member(last=None, first=None),
                       self.member(room_gaps=1), self.member(room_duplicates=1),
                       self.member(room_reorders=1), self.member(order_errors=1),
                       self.member(foreign=1)]:
            report = bench_worker.room_report([self.member(), faulty, self.member(room="bench-1")])
            rooms = load.rooms_summary(2, [report])
            self.assertFalse(rooms["ok"])
            self.assertEqual(rooms["failed"], ["bench-0"])
            self.assertTrue(rooms["per_room"]["bench-1"]["ok"])

    def test_room_missing_or_join_refused(self):
        """
        A room no member of which connected, or a refused join, fails the
        run.
        """
        report = bench_worker.room_report([self.member()])
        self.assertFalse(load.rooms_summary(2, [report])["ok"])
        self.assertTrue(load.rooms_summary(1, [report])["ok"])
        self.assertFalse(load.rooms_summary(1, [report], join_failures=1)["ok"])

    def test_table(self):
        """
        The table's rooms line says what was checked, or which rooms failed
        and how.
        """
        good = load.rooms_summary(1, [bench_worker.room_report([self.member(), self.member()])])
        summary = SummaryTests.summary(SummaryTests())
        summary["rooms"] = good
        self.assertIn("all connected and in their rooms in 0.50 s", load.format_summary(summary))
        self.assertIn("1, OK in every room: 2 members, 10 events checked in seq order",
                      load.format_summary(summary))
        bad = load.rooms_summary(3, [bench_worker.room_report(
            [self.member(), self.member(last=4, room_gaps=2), self.member(room="bench-1")])])
        summary["rooms"] = bad
        self.assertIn("FAILED in 2 of 3: bench-0 (gaps: 2, members behind at the end: 1); "
                      "1 with no member", load.format_summary(summary))

    def test_no_rooms_no_line(self):
        """
        Without --rooms, the table is as it always was: no rooms line.
        """
        text = load.format_summary(SummaryTests.summary(SummaryTests()))
        self.assertIn("all connected in 0.50 s", text)
        names = [line.split("  ")[0] for line in text.splitlines()]
        self.assertEqual(names, [
            "server", "connections", "senders", "measured for", "messages sent",
            "deliveries", "deliveries/s", "latency ms p50/p90/p99/max",
            "heartbeat rtt ms p50/p99/max", "integrity", "lagged / errors",
            "tool CPU per process", "warning: the tool itself was busy (over 90% of a core); "
            "the server may be faster than measured: try more --procs"])


class _Stdio:
    """
    What a worker reports to its parent, collected.
    """

    def __init__(self):
        self.reports = []
        self.lost = False

    def write(self, data):
        self.reports.append(json.loads(data))

    def loseConnection(self):
        self.lost = True


class WorkerEndTests(SynchronousTestCase):
    """
    How a worker ends a run: halt (stop measuring and sending), settle
    (with --rooms: wait for the last events), stop (report and close).
    """

    def worker(self, rooms):
        """
        A L{bench_worker.Worker} on a clock, with one room connection if
        C{rooms}, reporting to a L{_Stdio}.
        """
        clock = Clock()
        options = {"sample": 1, "rooms": rooms, "rate": 5.0, "inflight": 1, "size": 64}
        worker = bench_worker.Worker(clock, options)
        worker.stdio = _Stdio()
        if rooms:
            client = bench_worker.RoomLoadClient(worker, 0, sender=True, recorder=False,
                                                 verifier=False, room="bench-0")
            client.makeConnection(StringTransportWithDisconnection())
            client.transport.protocol = client
            client.room_seq = client.room_first_seq = 0
            worker.clients.append(client)
        return clock, worker

    def test_halt_stops_senders(self):
        """
        halt ends the measurement and stops every sender's pacer, once.
        """
        clock, worker = self.worker(rooms=1)
        [client] = worker.clients
        worker.measuring = worker.sending = True
        worker._measure_start = 0.0
        client.start_sending()
        clock.advance(0.3)
        self.assertTrue(client.pacer.running)
        worker.command("halt")
        self.assertEqual((worker.measuring, worker.sending, client.pacer), (False, False, None))
        self.assertEqual(worker.stdio.reports[-1], {"event": "halted"})
        measured = worker._measured
        worker.halt()
        self.assertIs(worker._measured, measured)
        worker.command("stop")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_settle_waits_for_quiet(self):
        """
        settle reports only once no event has come for half a second, with
        what each room looked like then; stop reports that.
        """
        clock, worker = self.worker(rooms=1)
        [client] = worker.clients
        worker.command("settle")
        for seq in (1, 2):
            clock.advance(0.4)
            client.stringReceived(wire.encode(_room_event(seq, room="bench-0")))
        clock.advance(0.5)
        self.assertEqual(worker.stdio.reports, [])
        clock.advance(0.5)
        self.assertEqual(worker.stdio.reports, [{"event": "settled"}])
        # A leave after settling (another worker closing) changes nothing.
        client.stringReceived(wire.encode(_room_event(3, room="bench-0", kind="leave")))
        worker.command("stop")
        final = worker.stdio.reports[-1]
        self.assertEqual(final["event"], "final")
        self.assertEqual(final["rooms"]["bench-0"]["ends"], {"2": 1})
        self.assertEqual(final["join_failures"], 0)
        self.assertTrue(worker.stdio.lost)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_settle_is_bounded(self):
        """
        A room that never falls quiet stops settling after ten seconds.
        """
        clock, worker = self.worker(rooms=1)
        [client] = worker.clients
        worker.command("settle")
        for seq in range(1, 60):
            clock.advance(0.25)
            client.stringReceived(wire.encode(_room_event(seq, room="bench-0")))
        self.assertEqual(worker.stdio.reports, [{"event": "settled"}])
        worker.command("stop")

    def test_no_rooms_final(self):
        """
        Without --rooms the final report has no rooms in it.
        """
        clock, worker = self.worker(rooms=0)
        worker.command("stop")
        final = worker.stdio.reports[-1]
        self.assertEqual(final["event"], "final")
        self.assertNotIn("rooms", final)
        self.assertNotIn("join_failures", final)
