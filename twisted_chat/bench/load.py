# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
C{load}, from the parent's side: it spawns the worker processes
(L{twisted_chat.bench.worker}), steers them through ramp-up, warm-up and
measurement, and sums up what they report: deliveries per second,
end-to-end latency (an HDR histogram), heartbeat round trips, and
integrity (every receiver saw a gap-free C{seq} and every sender's
messages in order).
"""

import json
import os
import signal
import sys
import time

from twisted.internet import defer, task
from twisted.internet.protocol import ProcessProtocol

from twisted_chat import wire
from twisted_chat.bench.servers import resident_mib, with_timeout
from twisted_chat.bench.worker import histogram


class _WorkerProcess(ProcessProtocol):
    def __init__(self, run):
        self.run = run
        self.buffer = b""
        self.last = {}
        self.final = None
        self.ready = False
        self.halted = self.settled = False
        self.ended = defer.Deferred()
        self.stderr = b""

    def outReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            event = message.get("event")
            if event == "progress":
                self.last = message
            elif event == "ready":
                self.ready = True
                self.last.update(message)
            elif event == "halted":
                self.halted = True
            elif event == "settled":
                self.settled = True
            elif event == "final":
                self.final = message
            elif event == "error":
                self.run.warn(message.get("message", ""))
            elif event == "fatal":
                self.run.fatal = message.get("message", "a worker failed")
            self.run.changed()

    def errReceived(self, data):
        self.stderr += data

    def processEnded(self, reason):
        self.ended.callback(None)

    def command(self, word):
        self.transport.write(word.encode() + b"\n")


class LoadRun:
    """
    A load run from the parent's side.
    """

    def __init__(self, reactor, options, out=sys.stdout, err=sys.stderr):
        self.reactor = reactor
        self.options = options
        self.out = out
        self.err = err
        self.workers = []
        self.warnings = []
        self.fatal = None
        self.ramp_seconds = None
        self.server_stats = None
        self._waiting = []
        self.bar = None

    def warn(self, text):
        if len(self.warnings) < 20:
            self.warnings.append(text)

    def changed(self):
        for entry in list(self._waiting):
            condition, d = entry
            if condition():
                self._waiting.remove(entry)
                d.callback(None)
        if self.bar is not None:
            self.bar.update_to(self)

    def wait_until(self, condition):
        if condition():
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append((condition, d))
        return d

    def spawn_workers(self):
        options = self.options
        for index in range(options["procs"]):
            args = [sys.executable, "-m", "twisted_chat.bench", "worker",
                    "--index", str(index)] + _forward(options)
            worker = _WorkerProcess(self)
            self.reactor.spawnProcess(worker, sys.executable, args, env=dict(os.environ))
            self.workers.append(worker)

    def connected(self):
        return sum(w.last.get("welcomed", 0) for w in self.workers)

    @defer.inlineCallbacks
    def run(self):
        options = self.options
        self.spawn_workers()
        self.bar = _Progress(options, self.err)
        try:
            yield with_timeout(
                self.reactor,
                self.wait_until(
                    lambda: self.fatal
                    or all(w.ready or w.ended.called for w in self.workers)
                ),
                options["connections"] / float(options["ramp"]) + 60,
                "ramping up",
            )
            if self.fatal:
                raise RuntimeError(self.fatal)
            self.ramp_seconds = max(w.last.get("ramp", 0.0) for w in self.workers)
            self.bar.phase("warm-up")
            for worker in self.workers:
                worker.command("start")
            yield task.deferLater(self.reactor, options["warmup"], lambda: None)
            self.bar.phase("measuring")
            for worker in self.workers:
                worker.command("measure")
            measure_start = self.reactor.seconds()
            server = _ServerSampler(options["server-pid"])
            while self.reactor.seconds() - measure_start < options["duration"]:
                yield task.deferLater(self.reactor, 0.25, lambda: None)
                self.bar.tick(self.reactor.seconds() - measure_start)
                server.sample()
            self.server_stats = server.result()
            if options["rooms"]:
                # Every sender stops before any worker waits for the last
                # events, and every worker has them before any closes its
                # connections (which are events too): then every member of
                # a room must end at the same seq.
                for command, flag, doing in [("halt", "halted", "stopping the senders"),
                                             ("settle", "settled", "waiting for the last events")]:
                    for worker in self.workers:
                        worker.command(command)
                    yield with_timeout(
                        self.reactor,
                        self.wait_until(lambda flag=flag: all(
                            getattr(w, flag) or w.ended.called for w in self.workers)),
                        60,
                        doing,
                    )
            for worker in self.workers:
                worker.command("stop")
            yield with_timeout(
                self.reactor,
                defer.DeferredList([w.ended for w in self.workers]),
                60,
                "stopping the workers",
            )
        finally:
            self.bar.close()
            for worker in self.workers:
                if not worker.ended.called:
                    try:
                        worker.transport.signalProcess(signal.SIGKILL)
                    except Exception:
                        pass
        return self.summary()

    def summary(self):
        finals = [w.final for w in self.workers if w.final is not None]
        if len(finals) != len(self.workers):
            errors = b"".join(w.stderr for w in self.workers).decode(errors="replace")
            raise RuntimeError("a worker failed:\n" + errors[-2000:])
        latency, rtt = histogram(), histogram()
        from hdrh.histogram import HdrHistogram

        for final in finals:
            latency.add(HdrHistogram.decode(final["latency"]))
            rtt.add(HdrHistogram.decode(final["rtt"]))
        wall = max(f["wall"] for f in finals) or 1.0
        errors = {}
        for final in finals:
            for code, count in final["errors"].items():
                errors[code] = errors.get(code, 0) + count

        def ms(histogram, percentile):
            if not histogram.get_total_count():
                return None
            return histogram.get_value_at_percentile(percentile) / 1000.0

        summary = {
            "server": "%s:%s" % (self.options["host"], self.options["ports"] or self.options["port"]),
            "connect_seconds": self.ramp_seconds,
            "server_process": self.server_stats,
            "connections": sum(f["connected"] for f in finals),
            "connect_failures": sum(f["connect_failures"] for f in finals),
            "senders": self.options["senders"],
            "rate_per_sender": self.options["rate"],
            "inflight": self.options["inflight"],
            "size": self.options["size"],
            "duration": wall,
            "sent": sum(f["sent"] for f in finals),
            "deliveries": sum(f["deliveries"] for f in finals),
            "deliveries_per_second": sum(f["deliveries"] for f in finals) / wall,
            "latency_ms": {
                "samples": latency.get_total_count(),
                "p50": ms(latency, 50),
                "p90": ms(latency, 90),
                "p99": ms(latency, 99),
                "max": latency.get_max_value() / 1000.0 if latency.get_total_count() else None,
            },
            "heartbeat_rtt_ms": {
                "samples": rtt.get_total_count(),
                "p50": ms(rtt, 50),
                "p99": ms(rtt, 99),
                "max": rtt.get_max_value() / 1000.0 if rtt.get_total_count() else None,
            },
            "integrity": {
                "gaps": sum(f["gaps"] for f in finals),
                "reorders": sum(f["reorders"] for f in finals),
                "sender_order_errors": sum(f["order_errors"] for f in finals),
                "receivers_fully_verified": sum(f["verified"] for f in finals),
                "lagged": sum(f["lags"] for f in finals),
                "errors": errors,
            },
            "tool_cpu_percent": [round(100.0 * f["cpu"] / (f["wall"] or 1.0), 1) for f in finals],
            "warnings": self.warnings,
        }
        integrity = summary["integrity"]
        summary["ok"] = (
            integrity["gaps"] == 0
            and integrity["reorders"] == 0
            and integrity["sender_order_errors"] == 0
            and summary["connect_failures"] == 0
        )
        if self.options["rooms"]:
            summary["rooms"] = rooms_summary(
                self.options["rooms"], [f.get("rooms", {}) for f in finals],
                sum(f.get("join_failures", 0) for f in finals))
            summary["ok"] = summary["ok"] and summary["rooms"]["ok"]
        self._timelines = [f["timeline"] for f in finals]
        self._latency = latency
        return summary


class _ServerSampler:
    """
    The server process's resident memory and CPU use while measuring, read
    from /proc (Linux), when its pid is given.
    """

    def __init__(self, pid):
        self.pid = pid
        self.peak_rss = 0
        self.start = self._cpu() if pid else None
        self.started = time.time()

    def _cpu(self):
        with open("/proc/%d/stat" % (self.pid,)) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sample(self):
        if self.pid:
            self.peak_rss = max(self.peak_rss, resident_mib(self.pid))

    def result(self):
        if not self.pid:
            return None
        self.sample()
        elapsed = time.time() - self.started
        return {
            "pid": self.pid,
            "peak_rss_mib": round(self.peak_rss, 1),
            "cpu_percent": round(100.0 * (self._cpu() - self.start) / elapsed, 1),
        }


#: A room's counts that must all be 0, each with how the table says it.
_ROOM_FAULTS = (
    ("not_joined", "members not joined"),
    ("gaps", "gaps"),
    ("duplicates", "duplicates"),
    ("reorders", "reordered"),
    ("sender_order", "out of sender order"),
    ("foreign", "events of other rooms"),
    ("behind", "members behind at the end"),
)


def rooms_summary(count, reports, join_failures=0):
    """
    Sum up what the workers of a C{--rooms} run found per room, and judge
    each room.

    @param count: the number of rooms of the run.
    @param reports: each worker's L{twisted_chat.bench.worker.room_report}.
    @param join_failures: joins answered with an error instead of
        C{joined}.
    @return: a dict: C{count}; C{ok}, whether every room is; C{failed},
        the names of the rooms that are not; C{join_failures}; and
        C{per_room}, by name, each room's counts (as C{room_report}'s, its
        C{ends} turned into C{last_seq}, the highest seq any member ended
        at, and C{behind}, the members that ended before it), with
        C{not_joined} and C{ok}.
    """
    merged = {}
    for report in reports:
        for name, entry in report.items():
            into = merged.setdefault(name, {"ends": {}})
            for key, value in entry.items():
                if key == "ends":
                    for end, members in value.items():
                        into["ends"][end] = into["ends"].get(end, 0) + members
                else:
                    into[key] = into.get(key, 0) + value
    for entry in merged.values():
        ends = {int(end): members for end, members in entry.pop("ends").items()}
        entry["last_seq"] = max(ends) if ends else None
        entry["behind"] = sum(members for end, members in ends.items() if end != entry["last_seq"])
        entry["not_joined"] = entry["members"] - entry["joined"]
        entry["ok"] = not any(entry[key] for key, _ in _ROOM_FAULTS)
    per_room = dict(sorted(merged.items()))
    failed = [name for name, entry in per_room.items() if not entry["ok"]]
    return {
        "count": count,
        "ok": not failed and len(per_room) == count and not join_failures,
        "failed": failed,
        "join_failures": join_failures,
        "per_room": per_room,
    }


def _forward(options):
    args = []
    if options["ports"]:
        args += ["--ports", options["ports"]]
    if options["rooms"]:
        args += ["--rooms", str(options["rooms"])]
    for name in ("host", "port", "connections", "ramp", "senders", "rate", "inflight",
                 "size", "procs", "sample"):
        args += ["--" + name, str(options[name])]
    return args


class _Progress:
    """
    A progress bar on stderr (tqdm): connections while ramping, then
    seconds while measuring.
    """

    def __init__(self, options, err):
        self.enabled = not options["quiet"]
        self.bar = None
        if not self.enabled:
            return
        from tqdm import tqdm

        self.tqdm = tqdm
        self.duration = options["duration"]
        self.bar = tqdm(total=options["connections"], desc="connecting", unit="conn",
                        file=err, leave=False)

    def update_to(self, run):
        if self.bar is not None and self.bar.desc == "connecting":
            self.bar.n = run.connected()
            self.bar.refresh()

    def phase(self, name):
        if not self.enabled:
            return
        self.bar.close()
        self.bar = self.tqdm(total=self.duration if name == "measuring" else None,
                             desc=name, unit="s", leave=False, file=self.bar.fp)

    def tick(self, elapsed):
        if self.bar is not None:
            self.bar.n = round(min(elapsed, self.duration), 2)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_summary(summary):
    """
    The final table, as text.
    """
    latency = summary["latency_ms"]
    rtt = summary["heartbeat_rtt_ms"]
    integrity = summary["integrity"]

    def number(value, fmt="%.2f"):
        return "-" if value is None else fmt % (value,)

    rows = [
        ("server", summary["server"]),
        ("connections", "%d (%d failed), all connected%s in %.2f s" % (
            summary["connections"], summary["connect_failures"],
            " and in their rooms" if "rooms" in summary else "", summary["connect_seconds"] or 0)),
        ("senders", "%d, %s, %d-byte texts" % (
            summary["senders"],
            "%g msg/s each" % summary["rate_per_sender"] if summary["rate_per_sender"]
            else "as fast as possible, %d in flight each" % summary["inflight"],
            summary["size"])),
        ("measured for", "%.1f s" % summary["duration"]),
        ("messages sent", "%d" % summary["sent"]),
        ("deliveries", "%d" % summary["deliveries"]),
        ("deliveries/s", "%.0f" % summary["deliveries_per_second"]),
        ("latency ms p50/p90/p99/max", "%s / %s / %s / %s (%d samples)" % (
            number(latency["p50"]), number(latency["p90"]), number(latency["p99"]),
            number(latency["max"]), latency["samples"])),
        ("heartbeat rtt ms p50/p99/max", "%s / %s / %s (%d samples)" % (
            number(rtt["p50"]), number(rtt["p99"]), number(rtt["max"]), rtt["samples"])),
        ("integrity", "%s: %d gaps, %d reordered, %d out of sender order (%d receivers fully checked)" % (
            "OK" if summary["ok"] else "FAILED", integrity["gaps"], integrity["reorders"],
            integrity["sender_order_errors"], integrity["receivers_fully_verified"])),
        ("lagged / errors", "%d / %s" % (integrity["lagged"], integrity["errors"] or "none")),
        ("tool CPU per process", ", ".join("%.0f%%" % c for c in summary["tool_cpu_percent"])),
    ]
    if "rooms" in summary:
        rows.append(("rooms", _rooms_row(summary["rooms"])))
    if summary["server_process"]:
        rows.append(("server process", "peak RSS %.1f MiB, CPU %.1f%% of a core" % (
            summary["server_process"]["peak_rss_mib"], summary["server_process"]["cpu_percent"])))
    width = max(len(name) for name, _ in rows)
    lines = ["%s  %s" % (name.ljust(width), value) for name, value in rows]
    busy = [c for c in summary["tool_cpu_percent"] if c > 90]
    if busy:
        lines.append("warning: the tool itself was busy (over 90% of a core); the "
                     "server may be faster than measured: try more --procs")
    if integrity["errors"].get(wire.RATE_LIMITED):
        lines.append("warning: the server rate-limited the senders; to measure "
                     "throughput, run it with --rate 0")
    for warning in summary["warnings"]:
        lines.append("warning: %s" % (warning,))
    return "\n".join(lines)


def _rooms_row(rooms):
    """
    The table's line on the rooms of a C{--rooms} run: how much was
    checked, or which rooms failed and how.
    """
    per_room = rooms["per_room"].values()
    if rooms["ok"]:
        return "%d, OK in every room: %d members, %d events checked in seq order" % (
            rooms["count"], sum(r["joined"] for r in per_room),
            sum(r["checked"] for r in per_room))
    problems = []
    for name in rooms["failed"][:5]:
        entry = rooms["per_room"][name]
        problems.append("%s (%s)" % (name, ", ".join(
            "%s: %d" % (words, entry[key]) for key, words in _ROOM_FAULTS if entry[key])))
    if len(rooms["failed"]) > 5:
        problems.append("...")
    missing = rooms["count"] - len(rooms["per_room"])
    if missing:
        problems.append("%d with no member" % (missing,))
    if rooms["join_failures"]:
        problems.append("%d joins refused" % (rooms["join_failures"],))
    return "FAILED in %d of %d: %s" % (
        len(rooms["failed"]) + missing, rooms["count"], "; ".join(problems))


def plot(run, path):
    """
    Latency over time and the latency histogram, as a PNG.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'twisted-chat[plot]'")
    figure, (over_time, histogram) = plt.subplots(1, 2, figsize=(12, 4.5))
    for timeline in run._timelines:
        if timeline:
            xs, ys = zip(*timeline)
            over_time.plot(xs, [y / 1000.0 for y in ys], ".", markersize=1)
    over_time.set_xlabel("seconds into the measurement")
    over_time.set_ylabel("latency (ms)")
    over_time.set_title("End-to-end latency over time")
    points = [(item.value_iterated_to / 1000.0, item.count_added_in_this_iter_step)
              for item in run._latency.get_recorded_iterator()]
    if points:
        xs, ys = zip(*points)
        histogram.bar(xs, ys, width=max(xs) / 200.0 or 0.01)
    histogram.set_xlabel("latency (ms)")
    histogram.set_ylabel("messages")
    histogram.set_title("Latency histogram")
    figure.tight_layout()
    figure.savefig(path)
