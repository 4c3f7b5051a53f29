"""
Helpers shared by the tests, one of each:

- L{tests.helpers.memory}: frame parsing and L{ServerMixin}, a server on a
  L{Clock} with connections on L{StringTransport}s.
- L{tests.helpers.fakes}: L{FakeClient}, a room member that records what it
  is sent.
- L{tests.helpers.waiting}: L{Waiter} (fires when collected output meets a
  condition), L{poll} (checks a condition on a timer) and L{sleep}.
- L{tests.helpers.processes}: child processes (the environment they get,
  L{ChildProcess}, L{exit_status}), temporary directories, memory use.
- L{tests.helpers.loopback}: L{LoopbackMixin} (servers, clients and child
  processes on 127.0.0.1, all cleaned up) and L{RawClient}.
- L{tests.helpers.certs}: a throwaway certificate authority for TLS.
"""
