# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
Chat servers for a run: C{twistd -n chat} as a child process, and what the
tool and benchmarks/*.py read of it (its port, its resident memory).

Nothing here needs the bench extra.
"""

import os
import re
import sys

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol

from twisted_chat.settings import LISTEN_BACKLOG


def with_timeout(reactor, d, seconds, doing):
    """
    Fail C{d} with a L{RuntimeError} saying what was being done if it has
    not fired within C{seconds}.

    @return: C{d}.
    """
    def expired():
        if not d.called:
            d.errback(RuntimeError("timed out after %d s %s" % (seconds, doing)))

    call = reactor.callLater(seconds, expired)

    def done(result):
        if call.active():
            call.cancel()
        return result

    return d.addBoth(done)


class ServerProcess(ProcessProtocol):
    """
    A twisted-chat server run as a child process (twistd), the tail of its
    output kept.

    @ivar port: fires with the port it listens on; fails, with its output,
        if it exits before.
    @ivar ended: fires when it has exited.
    @ivar running: whether it has not exited yet.
    """

    #: Bytes of output kept.
    KEEP = 65536

    def __init__(self):
        self.output = bytearray()
        self.port = defer.Deferred()
        self.ended = defer.Deferred()
        self.running = True

    def outReceived(self, data):
        self.output += data
        if not self.port.called:
            match = re.search(rb"starting on (\d+)", self.output)
            if match:
                self.port.callback(int(match.group(1)))
        del self.output[:-self.KEEP]

    errReceived = outReceived

    def processEnded(self, reason):
        self.running = False
        self.ended.callback(None)
        if not self.port.called:
            self.port.errback(RuntimeError(
                "the server did not start:\n" + self.output.decode(errors="replace")))


def chat_server_args(port, options=(), prelude=""):
    """
    The command line that runs C{twistd -n chat}, with this Python, on
    127.0.0.1:C{port} (and the plugin's listen backlog), with the given chat
    C{options}; C{prelude} is Python run before twistd in that process.
    """
    return [sys.executable, "-c", prelude + "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "chat", "--port",
            "tcp:%d:interface=127.0.0.1:backlog=%d" % (port, LISTEN_BACKLOG),
            # Every load connection comes from 127.0.0.1: no limit per
            # address (a caller's own --max-per-ip, later, still wins).
            "--max-per-ip", "0"] + list(options)


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
    port = yield with_timeout(reactor, server.port, 30, "starting the server")
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
