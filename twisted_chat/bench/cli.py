# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
The command line of C{python -m twisted_chat.bench}: C{load}, C{chaos},
and the internal C{worker}.
"""

import json
import os
import sys

from twisted.internet import defer
from twisted.python import usage

from twisted_chat import wire
from twisted_chat.bench.chaos import run_chaos
from twisted_chat.bench.load import LoadRun, format_summary, plot
from twisted_chat.bench.worker import run_worker


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
        ["rooms", None, 0, "Spread the connections, senders too, over this many rooms "
         "(each joins its own after its welcome, and stays in the lobby); "
         "0: the lobby only.", int],
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
        if not 0 <= self["rooms"] <= self["connections"]:
            raise usage.UsageError("--rooms must be between 0 and --connections")
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
