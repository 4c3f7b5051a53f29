# -*- test-case-name: tests.test_bench -*-
"""
The twisted-chat load and chaos tool: C{python -m twisted_chat.bench}
(also installed as C{twisted-chat-bench}).

C{load} opens many connections to a server, makes some of them send, and
reports deliveries per second, end-to-end latency (an HDR histogram),
heartbeat round trips, and integrity: every receiver saw a gap-free C{seq}
and every sender's messages in order.  It spreads the connections over
several worker processes (C{--procs}) so that the tool is not the
bottleneck, and says how busy each was.

C{chaos} starts a server (or uses one given), reproduces the classic TCP
failure cases one by one and reports how long each side took to notice.

Only addresses the user gives are contacted; the default is 127.0.0.1.
Every run is bounded in time and stops by itself.
"""

import gc
import json
import os
import random
import re
import signal
import socket
import sys
import time

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.protocols.basic import Int32StringReceiver, LineOnlyReceiver
from twisted.python import usage

from twisted_chat import wire
from twisted_chat.net import no_delay
from twisted_chat.settings import LISTEN_BACKLOG

#: Latency is recorded in microseconds, up to a minute.
_HIGHEST_US = 60 * 1000 * 1000
#: Most latency points kept per worker for the latency-over-time plot.
_TIMELINE_POINTS = 20000


def _histogram():
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, _HIGHEST_US, 3)


def _message_text(gid, counter, size):
    """
    A message's text: send time, sender, counter, padded to C{size}.
    """
    head = "%.6f %d %d " % (time.time(), gid, counter)
    return head + "x" * max(0, size - len(head))


def _text_fields(payload):
    """
    The (send time, sender, counter) at the start of a message's text, read
    straight from the frame's bytes (compact JSON or not).
    """
    start = payload.index(b'"text":') + 7
    if payload[start : start + 1] == b" ":
        start += 1
    start += 1
    end = payload.index(b" ", start)
    middle = payload.index(b" ", end + 1)
    last = payload.index(b" ", middle + 1)
    return (
        float(payload[start:end]),
        int(payload[end + 1 : middle]),
        int(payload[middle + 1 : last]),
    )


#: How a message event's bytes start: compact JSON, or json.dumps' default.
_MESSAGE_PREFIXES = (b'{"type":"message"', b'{"type": "message"')
#: How any event's bytes start: a message, or join, leave and nick.
_EVENT_PREFIXES = _MESSAGE_PREFIXES + tuple(
    prefix % (kind,)
    for kind in (b"join", b"leave", b"nick")
    for prefix in (b'{"type":"%s"', b'{"type": "%s"')
)


def _tail_seq(data, start=0, stop=None):
    """
    The seq of the event frame payload C{data[start:stop]}; the server
    writes it last.
    """
    if stop is None:
        stop = len(data)
    return int(data[data.rindex(b'"seq":', start, stop) + 6 : stop - 1])


# The worker: connections, senders, measurements.


class LoadClient(Int32StringReceiver):
    """
    One connection of a worker.
    """

    MAX_LENGTH = wire.MAX_FRAME_LIMIT

    def __init__(self, worker, gid, sender, recorder, verifier):
        self.worker = worker
        self.gid = gid
        self.sender = sender
        self.recorder = recorder
        self.verifier = verifier
        self.last_seq = None
        self.session = None
        self.inflight = 0
        self.counter = 0
        self.heartbeat = None
        self.pacer = None
        self.senders_seen = {}
        self.closed = defer.Deferred()
        # A plain receiver only counts and checks seq: it reads frames in
        # place (see dataReceived), so that the tool is cheap enough not to
        # be what limits a measurement.
        self.plain = not (sender or recorder or verifier)
        self._buffer = b""

    def connectionMade(self):
        no_delay(self.transport)
        # A first frame joins at once.
        self.sendString(b'{"type":"heartbeat"}')

    def dataReceived(self, data):
        if not self.plain:
            return Int32StringReceiver.dataReceived(self, data)
        buffer = self._buffer + data if self._buffer else data
        offset, end = 0, len(buffer)
        worker = self.worker
        unpack = wire.PREFIX.unpack_from
        while end - offset >= 4:
            (length,) = unpack(buffer, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            # Only an event's seq matters here, a join's too: a connect
            # burst brings each of the first members up to a thousand.
            if buffer.startswith(_EVENT_PREFIXES, offset + 4):
                self._check_seq(_tail_seq(buffer, offset, stop))
                if worker.measuring and buffer.startswith(_MESSAGE_PREFIXES, offset + 4):
                    worker.deliveries += 1
            else:
                self.stringReceived(buffer[offset + 4 : stop])
            offset = stop
        self._buffer = buffer[offset:]

    def stringReceived(self, payload):
        worker = self.worker
        if payload.startswith(_MESSAGE_PREFIXES):
            seq = _tail_seq(payload)
            self._check_seq(seq)
            if worker.measuring:
                worker.deliveries += 1
            own = None
            if self.recorder or self.verifier or self.sender:
                sent_at, gid, counter = _text_fields(payload)
                own = gid == self.gid
                if self.recorder and worker.measuring and seq % worker.sample == 0:
                    worker.record_latency(sent_at)
                if self.verifier:
                    previous = self.senders_seen.get(gid)
                    # Strictly rising: a message refused (rate_limited) is a
                    # legitimate skip, and a lost one shows as a seq gap.
                    if previous is not None and counter <= previous:
                        worker.order_errors += 1
                    self.senders_seen[gid] = counter
            if own and self.sender:
                self.inflight -= 1
                if worker.sending and not worker.options["rate"]:
                    self.send_message()
            return
        message = json.loads(payload)
        name = message.get("type")
        if "seq" in message and name != "welcome":
            self._check_seq(message["seq"])
        if name == "welcome":
            self.session = message.get("session")
            self.last_seq = message.get("seq")
            interval = message.get("heartbeat_interval") or wire.DEFAULT_HEARTBEAT_INTERVAL
            self.heartbeat = task.LoopingCall(self.send_heartbeat)
            self.heartbeat.clock = worker.reactor
            self.heartbeat.start(interval, now=False)
            worker.welcomed += 1
        elif name == "heartbeat_ack" and wire.is_number(message.get("ts")):
            worker.record_rtt(message["ts"])
        elif name == "lagged":
            worker.lags += 1
            self.sendString(
                json.dumps(
                    {"type": "resume", "session": self.session, "last_seq": self.last_seq}
                ).encode()
            )
        elif name == "error":
            code = message.get("code", "?")
            worker.errors[code] = worker.errors.get(code, 0) + 1
            if code == wire.RATE_LIMITED and self.sender:
                # That message was refused, so it will not come back: free
                # its slot and try again when the server says.
                self.inflight -= 1
                if worker.sending and not worker.options["rate"]:
                    delay = message.get("retry_after")
                    if not wire.is_number(delay) or delay <= 0:
                        delay = 0.1
                    worker.reactor.callLater(delay, self._send_if_sending)

    def _check_seq(self, seq):
        self.worker.events += 1
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.worker.reorders += 1
                return
            if seq != last + 1:
                self.worker.gaps += seq - last - 1
        self.last_seq = seq

    def send_heartbeat(self):
        self.sendString(
            b'{"type":"heartbeat","ts":' + repr(time.time()).encode() + b"}"
        )

    def start_sending(self):
        options = self.worker.options
        if options["rate"]:
            # Senders start at random points of their period, as users do,
            # instead of all at once.
            period = 1.0 / options["rate"]
            self.pacer = task.LoopingCall(self.send_message)
            self.pacer.clock = self.worker.reactor
            self.worker.reactor.callLater(
                random.uniform(0, period), self._start_pacer, period
            )
        else:
            for _ in range(options["inflight"]):
                self.send_message()

    def _send_if_sending(self):
        if self.worker.sending:
            self.send_message()

    def _start_pacer(self, period):
        if self.pacer is not None and self.worker.sending:
            self.pacer.start(period)

    def send_message(self):
        if self.inflight >= self.worker.options["inflight"]:
            return
        self.inflight += 1
        self.counter += 1
        text = _message_text(self.gid, self.counter, self.worker.options["size"])
        self.sendString(json.dumps({"type": "message", "text": text}).encode())
        self.worker.sent += 1

    def stop(self):
        for loop in (self.heartbeat, self.pacer):
            if loop is not None and loop.running:
                loop.stop()
        self.heartbeat = self.pacer = None

    def connectionLost(self, reason):
        self.stop()
        self.closed.callback(None)


class Worker:
    """
    One worker process's share of a load run, steered by commands on stdin
    (C{start}, C{measure}, C{stop}) and reporting JSON lines on stdout.
    """

    def __init__(self, reactor, options):
        self.reactor = reactor
        self.options = options
        self.clients = []
        self.welcomed = 0
        # Events (frames with a seq) received, whatever their kind.
        self.events = 0
        self.connect_failures = 0
        self.deliveries = 0
        self.sent = 0
        self.gaps = 0
        self.reorders = 0
        self.order_errors = 0
        self.lags = 0
        self.errors = {}
        self.measuring = False
        self.sending = False
        self.latency = _histogram()
        self.rtt = _histogram()
        self.timeline = []
        self.sample = options["sample"]
        self._measure_start = None
        self._cpu_start = None
        self.done = defer.Deferred()

    def report(self, **fields):
        # Through the stdio transport: it made stdout non-blocking, so a
        # plain write of a large report could be cut short.
        self.stdio.write(json.dumps(fields).encode("utf-8") + b"\n")

    def record_latency(self, sent_at):
        now = time.time()
        micros = max(1, int((now - sent_at) * 1e6))
        self.latency.record_value(min(micros, _HIGHEST_US))
        if len(self.timeline) < _TIMELINE_POINTS:
            self.timeline.append((round(now - self._measure_start, 4), micros))

    def record_rtt(self, ts):
        micros = max(1, int((time.time() - ts) * 1e6))
        self.rtt.record_value(min(micros, _HIGHEST_US))

    @defer.inlineCallbacks
    def connect_all(self):
        options = self.options
        procs, index = options["procs"], options["index"]
        mine = list(range(index, options["connections"], procs))
        # Several ports: the nodes of a cluster, taken in turn.
        endpoints = [
            TCP4ClientEndpoint(self.reactor, options["host"], int(port), timeout=10)
            for port in (options["ports"] or str(options["port"])).split(",")
        ]
        delay = procs / float(options["ramp"])
        recorders = max(1, len(mine) // 10)

        def failed(failure):
            self.connect_failures += 1
            self.report(event="error", message="connect: %s" % (failure.getErrorMessage(),))

        attempts = []
        started = time.time()
        for n, gid in enumerate(mine):
            client = LoadClient(
                self,
                gid,
                sender=gid < options["senders"],
                recorder=n < recorders or gid < options["senders"],
                verifier=n < 2,
            )
            if n == 0:
                # The first connection alone: if it fails, nothing will work.
                try:
                    yield connectProtocol(endpoints[gid % len(endpoints)], client)
                except Exception as e:
                    self.report(event="fatal", message="cannot connect to %s:%d: %s" % (
                        options["host"], options["port"], e))
                    self.stdio.loseConnection()
                    return
                self.clients.append(client)
                continue
            d = connectProtocol(endpoints[gid % len(endpoints)], client)
            d.addCallbacks(self.clients.append, failed)
            attempts.append(d)
            # Keep to the ramp rate: open connections in steps of 1 ms.
            due = started + (n + 1) * delay
            if due - time.time() > 0.001:
                yield task.deferLater(self.reactor, due - time.time(), lambda: None)
        yield defer.DeferredList(attempts)
        while self.welcomed < len(self.clients):
            yield task.deferLater(self.reactor, 0.01, lambda: None)
        ramp = time.time() - started
        # Then wait for the room to settle: every join was broadcast to
        # everyone already there, and that must not spill into the
        # measurement.  (Heartbeat acks go on; they carry no seq.)
        seen = -1
        while seen != self.events:
            seen = self.events
            yield task.deferLater(self.reactor, 0.3, lambda: None)
        self.report(event="ready", connected=len(self.clients), ramp=ramp)

    def command(self, line):
        if line == "start":
            self.sending = True
            for client in self.clients:
                if client.sender:
                    client.start_sending()
        elif line == "measure":
            # The connections live for the whole run: keep the collector
            # from walking them again and again (its pauses would show up
            # as latency).
            gc.collect()
            gc.freeze()
            self.measuring = True
            self._measure_start = time.time()
            self._cpu_start = _cpu_seconds()
            self.deliveries = 0
        elif line == "stop":
            self.finish()

    def progress(self):
        self.report(
            event="progress",
            connected=len(self.clients),
            welcomed=self.welcomed,
            deliveries=self.deliveries,
            sent=self.sent,
        )

    @defer.inlineCallbacks
    def finish(self):
        wall = time.time() - self._measure_start if self._measure_start else 0.0
        cpu = _cpu_seconds() - self._cpu_start if self._cpu_start is not None else 0.0
        self.measuring = self.sending = False
        self.report(
            event="final",
            connected=len(self.clients),
            connect_failures=self.connect_failures,
            deliveries=self.deliveries,
            sent=self.sent,
            gaps=self.gaps,
            reorders=self.reorders,
            order_errors=self.order_errors,
            verified=sum(1 for c in self.clients if c.verifier),
            lags=self.lags,
            errors=self.errors,
            wall=wall,
            cpu=cpu,
            latency=self.latency.encode().decode("ascii"),
            rtt=self.rtt.encode().decode("ascii"),
            timeline=self.timeline,
        )
        for client in self.clients:
            client.stop()
            client.transport.abortConnection()
        yield defer.DeferredList([c.closed for c in self.clients])
        self.stdio.loseConnection()


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


class _Commands(LineOnlyReceiver):
    delimiter = b"\n"

    def __init__(self, worker):
        self.worker = worker

    def lineReceived(self, line):
        self.worker.command(line.decode().strip())

    def connectionLost(self, reason):
        # stdout is flushed and closed (or the parent went away).
        if not self.worker.done.called:
            self.worker.done.callback(None)


def run_worker(reactor, options):
    from twisted.internet.stdio import StandardIO

    worker = Worker(reactor, options)
    worker.stdio = StandardIO(_Commands(worker), reactor=reactor)
    progress = task.LoopingCall(worker.progress)
    progress.clock = reactor
    progress.start(0.5, now=False)
    worker.connect_all().addErrback(
        lambda f: worker.report(event="error", message=f.getErrorMessage())
    )
    worker.done.addBoth(lambda r: progress.stop())
    return worker.done


# The parent: spawns workers, steers them, reports.


class _WorkerProcess(ProcessProtocol):
    def __init__(self, run):
        self.run = run
        self.buffer = b""
        self.last = {}
        self.final = None
        self.ready = False
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
            yield _with_timeout(
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
            for worker in self.workers:
                worker.command("stop")
            yield _with_timeout(
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
        latency, rtt = _histogram(), _histogram()
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


def _forward(options):
    args = []
    if options["ports"]:
        args += ["--ports", options["ports"]]
    for name in ("host", "port", "connections", "ramp", "senders", "rate", "inflight",
                 "size", "procs", "sample"):
        args += ["--" + name, str(options[name])]
    return args


def _with_timeout(reactor, d, seconds, doing):
    def expired():
        if not d.called:
            d.errback(RuntimeError("timed out after %d s %s" % (seconds, doing)))

    call = reactor.callLater(seconds, expired)

    def done(result):
        if call.active():
            call.cancel()
        return result

    return d.addBoth(done)


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
        ("connections", "%d (%d failed), all connected in %.2f s" % (
            summary["connections"], summary["connect_failures"], summary["connect_seconds"] or 0)),
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


# Chaos: the classic failure cases, timed.


class ServerProcess(ProcessProtocol):
    """
    A twisted-chat server run as a child process (twistd), its output
    collected.

    @ivar port: fires with the port it listens on.
    @ivar ended: fires when it has exited.
    """

    def __init__(self):
        self.output = bytearray()
        self.port = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        if not self.port.called:
            match = re.search(rb"starting on (\d+)", self.output)
            if match:
                self.port.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


def chat_server_args(port, options=()):
    """
    The command line that runs C{twistd -n chat}, with this Python, on
    127.0.0.1:C{port} (and the plugin's listen backlog), with the given chat
    C{options}.
    """
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "chat", "--port",
            "tcp:%d:interface=127.0.0.1:backlog=%d" % (port, LISTEN_BACKLOG)] + list(options)


@defer.inlineCallbacks
def start_chat_server(reactor, options, port=0):
    """
    Run C{twistd -n chat} on 127.0.0.1:C{port} (0: any free port) with the
    given chat C{options}.

    @return: a Deferred firing with (process transport, L{ServerProcess},
        port number).
    """
    server = ServerProcess()
    args = chat_server_args(port, options)
    process = reactor.spawnProcess(server, sys.executable, args, env=dict(os.environ))
    port = yield _with_timeout(reactor, server.port, 30, "starting the server")
    return process, server, port


def resident_mib(pid):
    """
    The resident memory of process C{pid}, in MiB (Linux /proc).
    """
    with open("/proc/%d/status" % (pid,)) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _Watcher(Int32StringReceiver):
    """
    A client for chaos runs: it beats and watches like the real client, and
    notes when it saw what.
    """

    MAX_LENGTH = wire.MAX_FRAME_LIMIT

    def __init__(self, reactor, read=True):
        self.reactor = reactor
        self.read = read
        self.events = []
        self.welcome = defer.Deferred()
        self.lost = defer.Deferred()
        self.lost_at = None
        self.timeout = None
        self.last_frame = None
        self.beat = None
        self.watchdog = None

    def connectionMade(self):
        self.sendString(b'{"type":"heartbeat"}')
        if not self.read:
            self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def stringReceived(self, payload):
        self.last_frame = self.reactor.seconds()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.reset(self.timeout)
        message = json.loads(payload)
        self.events.append((self.reactor.seconds(), message))
        if message["type"] == "welcome" and not self.welcome.called:
            self.timeout = message["timeout"]
            self.beat = task.LoopingCall(self.sendString, b'{"type":"heartbeat"}')
            self.beat.clock = self.reactor
            if self.read:
                self.beat.start(message["heartbeat_interval"], now=False)
                self.watchdog = self.reactor.callLater(
                    self.timeout, self.transport.abortConnection
                )
            else:
                # Alive, but from now on it reads nothing.
                self.transport.pauseProducing()
                self.beat.start(message["heartbeat_interval"] / 2.0)
            self.welcome.callback(message)

    def silence(self):
        if self.beat is not None and self.beat.running:
            self.beat.stop()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.cancel()

    def connectionLost(self, reason):
        self.lost_at = self.reactor.seconds()
        self.silence()
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.cancel()
        self.lost.callback(None)

    def wait_for(self, predicate, seconds):
        d = defer.Deferred()

        def check():
            for at, message in self.events:
                if predicate(message):
                    if not d.called:
                        d.callback(at)
                    return
            if self.reactor.seconds() < deadline:
                self.reactor.callLater(0.02, check)
            elif not d.called:
                d.callback(None)

        deadline = self.reactor.seconds() + seconds
        check()
        return d


@defer.inlineCallbacks
def run_chaos(reactor, options, out):
    interval, timeout = options["heartbeat-interval"], options["timeout"]
    server_args = ["--heartbeat-interval", str(interval), "--timeout", str(timeout), "--rate", "0"]
    results = []

    def start_server(port=0):
        return start_chat_server(reactor, server_args, port)

    @defer.inlineCallbacks
    def connect(port, read=True):
        watcher = _Watcher(reactor, read)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), watcher)
        yield _with_timeout(reactor, watcher.welcome, 10, "waiting for welcome")
        return watcher

    def kill(process, server):
        try:
            process.signalProcess(signal.SIGKILL)
        except Exception:
            pass
        return server.ended

    def result(case, noticed_by, began, at, bound):
        took = None if at is None else at - began
        ok = took is not None and (bound is None or took <= bound)
        results.append((case, noticed_by, took, bound, ok))

    bound = timeout + 1.0

    # 1. Server process killed.
    process, server, port = yield start_server()
    watcher = yield connect(port)
    began = reactor.seconds()
    process.signalProcess(signal.SIGKILL)
    yield watcher.lost
    yield server.ended
    result("server process killed (SIGKILL)", "client: EOF", began, watcher.lost_at, 1.0)

    # 2. Server host silent (SIGSTOP: no FIN, no RST).
    process, server, port = yield start_server()
    watcher = yield connect(port)
    began = reactor.seconds()
    process.signalProcess(signal.SIGSTOP)
    yield watcher.lost
    result("server host silent (SIGSTOP)", "client: timeout", began, watcher.lost_at, bound)
    process.signalProcess(signal.SIGCONT)

    # 3. Client host silent: a client stops sending; the server expires it.
    observer = yield connect(port)
    silent = yield connect(port)
    yield task.deferLater(reactor, 0.2, lambda: None)
    began = reactor.seconds()
    silent.silence()
    at = yield observer.wait_for(
        lambda m: m["type"] == "leave" and m.get("reason") == "timeout", bound + 2
    )
    result("client host silent (stops sending)", "server: timeout, others told", began, at, bound)

    # 4. A reader that stops reading while others talk.
    reader = yield connect(port, read=False)
    talker = yield connect(port)
    yield task.deferLater(reactor, 0.2, lambda: None)
    began = reactor.seconds()
    flood = task.LoopingCall(
        talker.sendString,
        json.dumps({"type": "message", "text": "x" * 4000}).encode(),
    )
    flood.clock = reactor
    flood.start(0.001)
    at = yield observer.wait_for(
        lambda m: m["type"] == "leave" and m.get("reason") == "sendq", bound + 5
    )
    flood.stop()
    result("a reader that stops reading", "server: lagged, then sendq", began, at, bound + 1)
    for client in (observer, silent, reader, talker):
        client.transport.abortConnection()

    # 5. Crash and restart on the same port.
    watcher = yield connect(port)
    began = reactor.seconds()
    yield kill(process, server)
    process, server, _ = yield start_server(port)
    restarted = reactor.seconds()
    again = _Watcher(reactor)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), again)
    yield again.welcome
    result("crash and restart on the same port", "client: EOF; server back", began,
           watcher.lost_at, 1.0)
    results.append(("  (restart took)", "", restarted - began, None, True))
    again.transport.abortConnection()
    yield kill(process, server)

    width = max(len(r[0]) for r in results)
    out.write("failure case%s  noticed by%s  after     bound   ok\n" % (" " * (width - 12), " " * 21))
    for case, by, took, limit, ok in results:
        out.write("%s  %-31s  %-8s  %-6s  %s\n" % (
            case.ljust(width), by,
            "-" if took is None else "%.2f s" % took,
            "" if limit is None else "%.1f s" % limit,
            "yes" if ok else "NO"))
    out.write("(server timeout %g s, heartbeat interval %g s)\n" % (timeout, interval))
    return all(r[4] for r in results)


# Command line.


class LoadOptions(usage.Options):
    """
    Options of C{load}.
    """

    synopsis = "[options]"
    optParameters = [
        ["host", None, "127.0.0.1", "The server's address."],
        ["port", "p", wire.DEFAULT_PORT, "The server's port.", usage.portCoerce],
        ["ports", None, None, "Comma-separated ports to spread the connections over, "
         "in turn (the nodes of a cluster); overrides --port."],
        ["connections", "n", 100, "Connections to open.", int],
        ["ramp", None, 1000.0, "Connections opened per second.", float],
        ["senders", "s", 10, "How many of the connections send.", int],
        ["rate", "r", 0.0, "Messages per second per sender; 0: as fast as the in-flight cap allows.", float],
        ["inflight", None, 32, "Messages each sender may have sent but not seen echoed.", int],
        ["size", None, 64, "Bytes of text per message.", int],
        ["duration", "d", 10.0, "Seconds to measure.", float],
        ["warmup", "w", 2.0, "Seconds of sending before measuring.", float],
        ["procs", None, os.cpu_count() or 1, "Worker processes.", int],
        ["sample", None, 0, "Record latency of one message in N (0: 1 at a fixed rate, else 16).", int],
        ["json", None, None, "Also write the results to this JSON file."],
        ["plot", None, None, "Draw latency over time and its histogram to this PNG file."],
        ["server-pid", None, 0, "Also report this server process's memory and CPU (Linux).", int],
    ]
    optFlags = [["quiet", "q", "No progress bar."]]

    def postOptions(self):
        if self["connections"] < 1 or self["procs"] < 1:
            raise usage.UsageError("--connections and --procs must be at least 1")
        if not 0 <= self["senders"] <= self["connections"]:
            raise usage.UsageError("--senders must be between 0 and --connections")
        if self["inflight"] < 1 or self["size"] < 32 or self["ramp"] <= 0:
            raise usage.UsageError("--inflight must be at least 1, --size 32, --ramp above 0")
        if self["rate"] < 0 or self["duration"] <= 0 or self["warmup"] < 0:
            raise usage.UsageError("--rate, --duration and --warmup cannot be negative")
        self["procs"] = min(self["procs"], self["connections"])
        if self["ports"] is not None:
            try:
                ports = [usage.portCoerce(port) for port in self["ports"].split(",")]
            except ValueError:
                raise usage.UsageError("--ports must be port numbers separated by commas")
            self["port"] = ports[0]
        if not self["sample"]:
            self["sample"] = 1 if self["rate"] else 16


class WorkerOptions(LoadOptions):
    """
    Options of the internal C{worker} command.
    """

    optParameters = LoadOptions.optParameters + [["index", None, 0, "This worker's number.", int]]

    def postOptions(self):
        pass


class ChaosOptions(usage.Options):
    """
    Options of C{chaos}.
    """

    optParameters = [
        ["heartbeat-interval", None, 0.5, "The server's heartbeat interval.", float],
        ["timeout", None, 1.5, "The server's timeout.", float],
    ]


class Options(usage.Options):
    """
    C{python -m twisted_chat.bench COMMAND}.
    """

    synopsis = "Usage: python -m twisted_chat.bench {load|chaos} [options]"
    subCommands = [
        ["load", None, LoadOptions, "Load a server and report throughput, latency and integrity."],
        ["chaos", None, ChaosOptions, "Start a server, break it the classic ways, time the detection."],
        ["worker", None, WorkerOptions, "(internal) one worker process of a load run."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("say load or chaos")


@defer.inlineCallbacks
def main(reactor, *argv):
    """
    Run the tool.  (L{react} API.)
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write("twisted-chat-bench: %s\n%s" % (e, options))
        raise SystemExit(2)
    command, sub = options.subCommand, options.subOptions
    if command == "worker":
        yield run_worker(reactor, sub)
        return
    if command == "chaos":
        try:
            ok = yield run_chaos(reactor, sub, sys.stdout)
        except RuntimeError as e:
            sys.stderr.write("twisted-chat-bench: chaos: %s\n" % (e,))
            raise SystemExit(1)
        if not ok:
            raise SystemExit(1)
        return
    run = LoadRun(reactor, sub)
    try:
        summary = yield run.run()
    except RuntimeError as e:
        sys.stderr.write("twisted-chat-bench: %s\n" % (e,))
        raise SystemExit(1)
    sys.stdout.write(format_summary(summary) + "\n")
    if sub["json"]:
        with open(sub["json"], "w") as f:
            json.dump(summary, f, indent=2)
    if sub["plot"]:
        plot(run, sub["plot"])
    if not summary["ok"]:
        raise SystemExit(1)


def run():
    """
    Console-script entry point.
    """
    task.react(main, sys.argv[1:])


if __name__ == "__main__":
    run()
