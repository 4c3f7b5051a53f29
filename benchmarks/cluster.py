"""
The cluster on one machine: 1, 2 and 3 nodes on one redis-server, against
the single process without Redis, with the same load tool and scenarios as
benchmarks/compare.py (connections spread over the nodes in turn).

Usage: python benchmarks/cluster.py [--rounds 1] [--only fanout,latency]
       [--nodes 0,1,2,3]

0 nodes means the embedded single process (no --redis).  Each run gets a
fresh redis-server and fresh nodes on free loopback ports; everything stops
by itself.  Reports deliveries/s, p50 and p99 latency, and the integrity
check (one gap-free seq on every receiver, whatever its node).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from compare import SCENARIOS, free_port, median, start


def start_redis():
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="twisted-chat-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in process.stdout:
        if b"eady to accept connections" in line:
            break
    subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
    process.workdir = workdir
    return process, port


def run(nodes, scenario):
    """
    One load run against C{nodes} nodes (0: no Redis); its summary.
    """
    processes, ports = [], []
    redis = None
    try:
        extra = []
        if nodes:
            redis, redis_port = start_redis()
            extra = ["--redis", "redis://127.0.0.1:%d/0" % (redis_port,)]
        for _ in range(max(nodes, 1)):
            port = free_port()
            processes.append(start("twisted-chat", port, extra))
            ports.append(port)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            args = [sys.executable, "-m", "twisted_chat.bench", "load", "--quiet",
                    "--ports", ",".join(map(str, ports)), "--json", out.name]
            if nodes <= 1:
                args += ["--server-pid", str(processes[0].pid)]
            result = subprocess.run(args + SCENARIOS[scenario], timeout=300,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            with open(out.name) as f:
                text = f.read()
            if not text:
                raise SystemExit("the run failed:\n" + result.stderr.decode(errors="replace"))
            return json.loads(text)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        if redis is not None:
            redis.kill()
            redis.wait()
            shutil.rmtree(redis.workdir, True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="fanout,latency")
    parser.add_argument("--nodes", default="0,1,2,3")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("cluster.py: redis-server is not installed")
    results = {}
    for scenario in args.only.split(","):
        for round in range(args.rounds):
            for nodes in map(int, args.nodes.split(",")):
                summary = run(nodes, scenario)
                results.setdefault((scenario, nodes), []).append(summary)
                print("%-8s round %d %-9s %9.0f deliveries/s  p50 %s  p99 %s ms  integrity %s"
                      "  refused %d" % (
                          scenario, round + 1, "%d nodes" % nodes if nodes else "embedded",
                          summary["deliveries_per_second"], summary["latency_ms"]["p50"],
                          summary["latency_ms"]["p99"], "OK" if summary["ok"] else "FAILED",
                          summary["integrity"]["errors"].get("rate_limited", 0)),
                      flush=True)
    print("\nmedians of %d rounds (2 cores, shared by redis-server, the nodes and the "
          "load tool)" % (args.rounds,))
    print("%-8s %-9s %12s %9s %9s %10s" % (
        "scenario", "nodes", "deliveries/s", "p50 ms", "p99 ms", "integrity"))
    for (scenario, nodes), runs in results.items():
        print("%-8s %-9s %12.0f %9.2f %9.2f %10s" % (
            scenario, nodes or "embedded",
            median([r["deliveries_per_second"] for r in runs]),
            median([r["latency_ms"]["p50"] for r in runs]),
            median([r["latency_ms"]["p99"] for r in runs]),
            "OK" if all(r["ok"] for r in runs) else "FAILED"))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
