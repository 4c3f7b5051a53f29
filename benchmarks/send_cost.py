"""
What one send() costs on this machine: one small frame to each of N
connected loopback TCP sockets (TCP_NODELAY, as the server sets), from a
bare Python loop, for N from 1 to 1000.  The reading ends are drained
between rounds.  This is the kernel's share of a broadcast, which no server
avoids (docs/performance.rst).

Usage: python benchmarks/send_cost.py [--counts 1,10,100,300,1000]
"""

import argparse
import socket
import statistics
import time


def measure(listener, count, frame):
    pairs = []
    try:
        for _ in range(count):
            reader = socket.create_connection(listener.getsockname())
            writer, _ = listener.accept()
            writer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader.setblocking(False)
            pairs.append((writer, reader))
        per_send = []
        for _ in range(max(20, 2000 // count)):
            start = time.perf_counter()
            for writer, _ in pairs:
                writer.send(frame)
            per_send.append((time.perf_counter() - start) / count)
            for _, reader in pairs:
                reader.recv(65536)
        return statistics.median(per_send) * 1e6, min(per_send) * 1e6
    finally:
        for writer, reader in pairs:
            writer.close()
            reader.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,100,300,1000")
    args = parser.parse_args()
    # About the size of a message event of the latency scenario.
    frame = b"\x00\x00\x00\x50" + b"x" * 80
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        for count in map(int, args.counts.split(",")):
            median, best = measure(listener, count, frame)
            print("%5d sockets: %.2f us per send (median; best %.2f)" % (count, median, best))


if __name__ == "__main__":
    main()
