"""
Which Redis client for the cluster: the numbers behind docs/cluster.rst.

Each client, in turn, against a redis-server of its own on a free loopback
port (started and stopped here), inside a Twisted reactor:

  publish  N events through the cluster's PUBLISH script (EVALSHA of INCR
           and XADD), 64 in flight, as a busy node sends them
  read     the same N entries back with XREAD COUNT 1000, as a node's
           reader does

Clients: txredisapi with hiredis (what the cluster uses), txredisapi with its
own parser, and redis.asyncio under Twisted's asyncio reactor (when the
`redis` package is installed).  Each client runs in a child process of its
own, since the asyncio one needs a different reactor.

Usage: python benchmarks/redis_client.py [--events 20000]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from cluster import start_redis  # noqa: E402 (benchmarks/cluster.py)

CLIENTS = ["txredisapi+hiredis", "txredisapi", "redis.asyncio"]


def redis_usec_per_publish(port):
    """
    Microseconds of redis-server time per PUBLISH script (INFO
    commandstats), read over a plain socket.
    """
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\n") and b"cmdstat_xread" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    stats = {}
    for line in data.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.partition(":")
            stats[name] = dict(item.split("=") for item in fields.split(","))
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            calls += int(stats[name]["calls"])
            usec += int(stats[name]["usec"])
    return usec / calls if calls else None


def run_txredisapi(port, events, hiredis):
    import txredisapi
    from twisted.internet import defer, reactor, task
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from twisted_chat import cluster

    protocol_class = txredisapi.HiredisProtocol if hiredis else txredisapi.BaseRedisProtocol
    results = {}

    @defer.inlineCallbacks
    def main():
        redis = protocol_class(charset=None, convertNumbers=False)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), redis)
        yield redis.execute_command("SET", "twisted-chat:seq", 0)
        keys = ["twisted-chat:seq", "twisted-chat:events", "twisted-chat:positions"]
        head = b'{"type":"message","from":"bench","text":"' + b"x" * 64 + b'","seq":'
        started = time.perf_counter()
        sent = 0

        def one():
            return redis.eval(cluster.PUBLISH, keys, [events, head, events, 2])

        window = []
        while sent < events:
            while len(window) < 64 and sent < events:
                window.append(one())
                sent += 1
            yield window.pop(0)
        yield defer.gatherResults(window)
        results["publish"] = events / (time.perf_counter() - started)
        started = time.perf_counter()
        last, read = b"0-0", 0
        while read < events:
            reply = yield redis.execute_command(
                "XREAD", "COUNT", 1000, "STREAMS", "twisted-chat:events", last)
            entries = reply[0][1]
            read += len(entries)
            last = entries[-1][0]
        results["read"] = events / (time.perf_counter() - started)
        redis.transport.loseConnection()

    def done(result):
        reactor.stop()
        return result

    task.deferLater(reactor, 0, main).addBoth(done)
    reactor.run()
    return results


def run_redis_asyncio(port, events):
    import asyncio

    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import defer, reactor, task

    try:
        import redis.asyncio as aioredis
    except ImportError:
        return {"error": "the redis package is not installed (pip install redis)"}

    from twisted_chat import cluster

    results = {}

    async def main():
        redis = aioredis.Redis(host="127.0.0.1", port=port)
        await redis.set("twisted-chat:seq", 0)
        script = redis.register_script(cluster.PUBLISH)
        keys = ["twisted-chat:seq", "twisted-chat:events", "twisted-chat:positions"]
        head = b'{"type":"message","from":"bench","text":"' + b"x" * 64 + b'","seq":'
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(64)

        async def one():
            async with semaphore:
                await script(keys=keys, args=[events, head, events, 2])

        await asyncio.gather(*(one() for _ in range(events)))
        results["publish"] = events / (time.perf_counter() - started)
        started = time.perf_counter()
        last, read = "0-0", 0
        while read < events:
            reply = await redis.xread({"twisted-chat:events": last}, count=1000)
            entries = reply[0][1]
            read += len(entries)
            last = entries[-1][0]
        results["read"] = events / (time.perf_counter() - started)
        await redis.aclose()

    def done(result):
        reactor.stop()
        return result

    task.deferLater(reactor, 0, lambda: defer.Deferred.fromFuture(
        asyncio.ensure_future(main()))).addBoth(done)
    reactor.run()
    return results


def child(name, port, events):
    if name == "redis.asyncio":
        results = run_redis_asyncio(port, events)
    else:
        results = run_txredisapi(port, events, hiredis=name.endswith("hiredis"))
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.events)
        return
    if shutil.which("redis-server") is None:
        raise SystemExit("redis_client.py: redis-server is not installed")
    print("%-20s %16s %16s %24s" % ("client", "publish/s", "read entries/s",
                                    "redis-server us/publish"))
    for name in CLIENTS:
        process, port = start_redis()
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--port", str(port),
                 "--events", str(args.events)],
                capture_output=True, timeout=600)
            usec = redis_usec_per_publish(port)
        finally:
            process.kill()
            process.wait()
            shutil.rmtree(process.workdir, True)
        try:
            results = json.loads(out.stdout.decode().strip().splitlines()[-1])
        except Exception:
            print("%-20s failed: %s" % (name, out.stderr.decode().strip().splitlines()[-1:]))
            continue
        if "publish" not in results:
            results.setdefault("error", "failed: " + out.stderr.decode()[-500:])
        if "error" in results:
            print("%-20s %s" % (name, results["error"]))
            continue
        print("%-20s %16.0f %16.0f %24.2f" % (
            name, results["publish"], results["read"], usec or 0), flush=True)


if __name__ == "__main__":
    main()
