"""
The stdio client as people run it: a child process with a pipe for stdin,
against a server on loopback.
"""

import signal
import socket

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import exit_status
from twisted_chat.client import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_SHUTDOWN


class StdioClientTests(LoopbackMixin, TestCase):
    """
    python -m twisted_chat.client, piped.
    """

    timeout = 20

    @defer.inlineCallbacks
    def pipe(self, port, data, *options):
        """
        Run the client, pipe C{data} to it and wait for it to end.

        @return: a Deferred firing with the child and its (code, signal).
        """
        child = self.spawn_client(port, *options)
        child.transport.write(data)
        child.transport.closeStdin()
        reason = yield child.ended
        return child, exit_status(reason)

    @defer.inlineCallbacks
    def test_last_line_without_newline(self):
        """
        printf 'hi' and printf 'one\\ntwo' send every line, the last one
        too, and wait for its echo.
        """
        server = yield self.start_server()
        for data, lines in [(b"hi", ["hi"]), (b"one\ntwo", ["one", "two"])]:
            child, status = yield self.pipe(server.port, data)
            self.assertEqual(status, (0, None), bytes(child.err))
            echoes = [line.partition(": ")[2] for line in child.out.decode().splitlines()
                      if line.startswith("> ")]
            self.assertEqual(echoes, lines)

    @defer.inlineCallbacks
    def test_rename_to_own_name(self):
        """
        /nick to the name the client already has (which the server answers
        with nothing) does not keep the batch waiting: it ends at once,
        with status 0.
        """
        server = yield self.start_server()
        child, status = yield self.pipe(
            server.port, b"/nick alice\nhello\n", "--name", "alice")
        self.assertEqual(status, (0, None), bytes(child.err))
        out = child.out.decode().splitlines()
        self.assertIn("* you are already alice", out)
        self.assertEqual(out[-1], "> alice: hello")
        self.assertEqual(child.err, b"")

    @defer.inlineCallbacks
    def test_refused_line_fails_the_batch(self):
        """
        ok, a 5000-character line and after: the refusal is on stderr, not
        stdout, the other lines go, and the exit status is EXIT_REFUSED.
        """
        server = yield self.start_server()
        child, status = yield self.pipe(
            server.port, b"ok\n" + b"x" * 5000 + b"\nafter\n", "--name", "batch")
        self.assertEqual(status, (EXIT_REFUSED, None), bytes(child.err))
        self.assertEqual(
            child.err.decode(), "! message too long (5000 characters, the limit is 4096)\n")
        out = child.out.decode().splitlines()
        self.assertEqual(out[0], "chatting server(127.0.0.1:%d) connect success!" % (server.port,))
        self.assertEqual([line for line in out if line.startswith(">")],
                         ["> batch: ok", "> batch: after"])
        self.assertFalse([line for line in out if line.startswith("!")])

    @defer.inlineCallbacks
    def test_graceful_shutdown(self):
        """
        A server that stops gracefully: one line that it shut down, its
        message once, nothing on stderr, EXIT_SHUTDOWN.
        """
        server = yield self.start_server()
        child = self.spawn_client(server.port)
        yield child.wait_for(rb"\* you are guest-1")
        server.shutdown("server is shutting down", 1.0)
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (EXIT_SHUTDOWN, None), bytes(child.err))
        self.assertEqual(child.out.decode().splitlines()[-1], "* the server shut down")
        self.assertEqual(bytes(child.err), b"")

    def silent_port(self):
        """
        A loopback port where a connection attempt hangs: a listening
        socket that never accepts, its backlog full.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        return port

    @defer.inlineCallbacks
    def test_interrupt_while_connecting(self):
        """
        Ctrl-C while a --reconnect client is connecting: no line about the
        cancelled attempt, EXIT_INTERRUPTED.
        """
        port = self.silent_port()
        child = self.spawn_client(port, "--reconnect")
        child.transport.write(b"/status\n")
        yield child.wait_for(rb"connecting to 127.0.0.1")
        child.signal(signal.SIGINT)
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (EXIT_INTERRUPTED, None), bytes(child.err))
        self.assertEqual(bytes(child.err), b"")

    @defer.inlineCallbacks
    def test_interrupt_between_attempts(self):
        """
        Ctrl-C while a --reconnect client waits to try again: the same.
        """
        port = self.free_port()
        child = self.spawn_client(port, "--reconnect")
        yield child.wait_for(rb"will retry\n", stream="err")
        child.signal(signal.SIGINT)
        reason = yield child.ended
        self.assertEqual(exit_status(reason), (EXIT_INTERRUPTED, None), bytes(child.err))
        for line in child.err.decode().splitlines():
            self.assertEqual(
                line, "cannot connect to 127.0.0.1:%d: Connection refused; will retry" % (port,))
        self.assertEqual(bytes(child.out), b"")
