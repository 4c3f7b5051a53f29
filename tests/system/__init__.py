"""
The slow tests: real loopback sockets, child processes (twistd, the stdio
client, the load tool), TLS, the canaries on real transports, and long
randomized runs.  tests/test_cluster.py, on a real redis-server, is one of
them too.
"""
