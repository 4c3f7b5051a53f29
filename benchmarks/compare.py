"""
The performance targets, measured side by side: twisted-chat against the
baseline server (benchmarks/baseline_server.py), same tool, same machine,
alternating, several rounds; medians and ratios are printed at the end.

Usage: python benchmarks/compare.py [--rounds 3] [--only fanout,latency,scale]
                                   [--floor]
       python benchmarks/compare.py --only rooms

Scenarios (each a `python -m twisted_chat.bench load` run):
  fanout   100 connections, 10 senders as fast as possible (32 in flight
           each), 64-byte texts
  latency  1000 connections, 20 senders at 5 messages/s each (100,000
           deliveries/s)
  scale    10,000 connections with heartbeats, no messages (twisted-chat
           only): connect time, server memory, idle CPU
  rooms    10,000 connections in 1,000 rooms of 10 (each in the lobby too),
           100 senders (one in each of 100 rooms) at 5 messages/s each,
           integrity checked per room (twisted-chat only: the baseline and
           floor servers have no rooms).  Not run by default: its rounds
           take about as long as scale's; ask with --only rooms.

With --floor, the scenarios also run against benchmarks/floor_server.c,
built here with the C compiler (cc): "c-floor", the least a server of the
same design can do (its sends and nothing else), and, for fan-out and
latency, "c-naive", the same with each message sent on its own as a
straightforward epoll server does.  They show what this machine's kernel
and the load tool allow any server.

Servers listen on 127.0.0.1 only; every run stops by itself.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from twisted_chat.bench.servers import chat_server_args

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = {
    "fanout": ["--connections", "100", "--senders", "10", "--inflight", "32",
               "--size", "64", "--duration", "10", "--warmup", "2"],
    "latency": ["--connections", "1000", "--senders", "20", "--rate", "5",
                "--size", "64", "--duration", "10", "--warmup", "2"],
    "scale": ["--connections", "10000", "--senders", "0", "--ramp", "5000",
              "--duration", "10", "--warmup", "2"],
    "rooms": ["--connections", "10000", "--rooms", "1000", "--senders", "100",
              "--rate", "5", "--size", "64", "--ramp", "5000",
              "--duration", "10", "--warmup", "2"],
}
#: The scenarios only twisted-chat runs: the baseline has no point there
#: (scale) or no rooms (rooms).
OURS_ONLY = ("scale", "rooms")
#: What runs without --only.
DEFAULT = "fanout,latency,scale"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_floor(directory):
    """
    Build benchmarks/floor_server.c into C{directory}; return its path.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("--floor needs a C compiler (cc or gcc)")
    binary = os.path.join(directory, "floor_server")
    subprocess.run([compiler, "-O2", "-o", binary, os.path.join(HERE, "floor_server.c")],
                   check=True)
    return binary


def start(server, port, extra=(), floor=None):
    if server in ("c-floor", "c-naive"):
        args = [floor, str(port)] + (["--no-coalesce"] if server == "c-naive" else [])
        ready = b"listening on %d" % (port,)
    elif server == "twisted-chat":
        args = chat_server_args(port, ["--rate", "0"] + list(extra))
        # A cluster node listens at once, but takes clients once in the room.
        ready = rb"joined the room" if extra else rb"starting on %d" % (port,)
    else:
        args = [sys.executable, os.path.join(HERE, "baseline_server.py"), str(port)]
        ready = rb"listening on %d" % (port,)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    deadline = time.time() + 30
    while ready not in seen:
        if time.time() > deadline or process.poll() is not None:
            raise SystemExit("%s did not start:\n%s" % (server, seen.decode(errors="replace")))
        seen += process.stdout.readline()
    # Keep draining its output so that its log can never block it.
    subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
    return process


def load(port, pid, scenario):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = [sys.executable, "-m", "twisted_chat.bench", "load", "--quiet",
                "--port", str(port), "--server-pid", str(pid), "--json", out.name]
        run = subprocess.run(args + SCENARIOS[scenario], timeout=300,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(out.name) as f:
            text = f.read()
        if not text:
            raise SystemExit("the %s run failed:\n%s" % (scenario, run.stderr.decode(errors="replace")))
        return json.loads(text)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=DEFAULT,
                        help="comma-separated scenarios, of %s (default: %s)" % (
                            ", ".join(SCENARIOS), DEFAULT))
    parser.add_argument("--floor", action="store_true",
                        help="also run the C floor servers (needs cc)")
    args = parser.parse_args()
    unknown = sorted(set(args.only.split(",")) - set(SCENARIOS))
    if unknown:
        parser.error("no scenario %s; there are %s" % (", ".join(unknown), ", ".join(SCENARIOS)))
    floor = None
    if args.floor:
        workdir = tempfile.TemporaryDirectory(prefix="twisted-chat-floor-")
        floor = build_floor(workdir.name)
    results = {}
    for scenario in args.only.split(","):
        servers = ["twisted-chat"] if scenario in OURS_ONLY else ["twisted-chat", "baseline"]
        if floor and scenario != "rooms":
            servers += ["c-floor"] if scenario == "scale" else ["c-floor", "c-naive"]
        for round in range(args.rounds):
            for server in servers:
                port = free_port()
                process = start(server, port, floor=floor)
                try:
                    summary = load(port, process.pid, scenario)
                finally:
                    process.kill()
                    process.wait()
                results.setdefault((scenario, server), []).append(summary)
                rooms = summary.get("rooms")
                print("%-8s round %d %-13s %9.0f deliveries/s  p50 %s  p99 %s ms  "
                      "connect %.2f s  CPU %s%%  integrity %s%s" % (
                          scenario, round + 1, server, summary["deliveries_per_second"],
                          summary["latency_ms"]["p50"], summary["latency_ms"]["p99"],
                          summary["connect_seconds"], summary["server_process"]["cpu_percent"],
                          "OK" if summary["ok"] else "FAILED",
                          "" if rooms is None else " (%d of %d rooms OK)" % (
                              sum(r["ok"] for r in rooms["per_room"].values()), rooms["count"])),
                      flush=True)

    print("\nmedians of %d rounds (2 cores, shared by the server and the load tool)" % (args.rounds,))
    print("%-8s %-13s %12s %9s %9s %9s %10s %9s %8s" % (
        "scenario", "server", "deliveries/s", "p50 ms", "p99 ms", "max ms",
        "connect s", "RSS MiB", "CPU %"))
    for (scenario, server), runs in results.items():
        def m(get):
            return median([get(r) for r in runs])
        row = (
            m(lambda r: r["deliveries_per_second"]),
            m(lambda r: r["latency_ms"]["p50"]),
            m(lambda r: r["latency_ms"]["p99"]),
            m(lambda r: r["latency_ms"]["max"]),
            m(lambda r: r["connect_seconds"]),
            m(lambda r: r["server_process"]["peak_rss_mib"]),
            m(lambda r: r["server_process"]["cpu_percent"]),
        )
        print("%-8s %-13s %12s %9s %9s %9s %10s %9s %8s" % ((scenario, server) + tuple(
            "-" if v is None else ("%.0f" % v if i == 0 else "%.2f" % v) for i, v in enumerate(row))))
    for scenario in ("fanout", "latency"):
        ours, theirs = results.get((scenario, "twisted-chat")), results.get((scenario, "baseline"))
        if ours and theirs:
            ratios = [a["deliveries_per_second"] / b["deliveries_per_second"]
                      for a, b in zip(ours, theirs) if b["deliveries_per_second"]]
            p99 = [b["latency_ms"]["p99"] / a["latency_ms"]["p99"]
                   for a, b in zip(ours, theirs) if a["latency_ms"]["p99"]]
            print("%s: twisted-chat / baseline deliveries, per round: %s (median %.2fx); "
                  "baseline p99 / ours: median %.1fx" % (
                      scenario, ", ".join("%.2fx" % r for r in ratios), median(ratios), median(p99)))
        c_floor = results.get((scenario, "c-floor"))
        if ours and c_floor:
            p99 = [a["latency_ms"]["p99"] / b["latency_ms"]["p99"]
                   for a, b in zip(ours, c_floor) if b["latency_ms"]["p99"]]
            print("%s: twisted-chat p99 / c-floor p99, per round: %s (median %.2fx)" % (
                scenario, ", ".join("%.2fx" % r for r in p99), median(p99)))


if __name__ == "__main__":
    main()
