"""
TLS: the server on a Twisted ssl: endpoint, the stdio client with --tls,
against a throwaway CA (tests/certs.py).
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from tests.loopback import LoopbackMixin, exit_status
from twisted_chat.server import ChatServerFactory

try:
    from tests.certs import ThrowawayCA
except ImportError:  # pragma: no cover
    ThrowawayCA = None


class TLSTests(LoopbackMixin, TestCase):
    """
    The stdio client (a child process) against a TLS server.
    """

    timeout = 30

    if ThrowawayCA is None:  # pragma: no cover
        skip = "cryptography is not installed (pip install '.[test]')"

    @defer.inlineCallbacks
    def tls_server(self, hostname="localhost"):
        """
        A server on a TLS port of 127.0.0.1 with a certificate for
        C{hostname} from this test's CA; its port.
        """
        self.ca = ThrowawayCA()
        key, cert = self.ca.server_files(hostname)
        factory = ChatServerFactory(clock=reactor)
        self.addCleanup(factory.shutdown, "test over", 1.0)
        endpoint = serverFromString(
            reactor, "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (key, cert))
        port = yield endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def chat(self, port, *options, text=b"hello over tls\n"):
        """
        Run the client with C{options}, pipe C{text} to it, and wait for it
        to end; the child.
        """
        child = self.spawn_client(port, "--host", "localhost", *options)
        child.transport.write(text)
        child.transport.closeStdin()
        yield child.ended
        return child

    @defer.inlineCallbacks
    def test_verified(self):
        """
        With the CA trusted and the right host name, the chat works.
        """
        port = yield self.tls_server()
        child = yield self.chat(port, "--tls", "--cafile", self.ca.ca_file())
        self.assertEqual(exit_status(child.ended.result), (0, None), bytes(child.err))
        self.assertIn(b"> guest-1: hello over tls", child.out)

    @defer.inlineCallbacks
    def test_cafile_alone_means_tls(self):
        port = yield self.tls_server()
        child = yield self.chat(port, "--cafile", self.ca.ca_file())
        self.assertEqual(exit_status(child.ended.result), (0, None), bytes(child.err))

    @defer.inlineCallbacks
    def test_wrong_host_name(self):
        """
        A certificate for another name is refused, in one line.
        """
        port = yield self.tls_server(hostname="elsewhere.example")
        child = yield self.chat(port, "--tls", "--cafile", self.ca.ca_file(), "--reconnect")
        self.assertEqual(exit_status(child.ended.result), (1, None))
        err = child.err.decode()
        self.assertIn("the server's certificate is not for this host name", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertNotIn(b"hello over tls", child.out)

    @defer.inlineCallbacks
    def test_untrusted(self):
        """
        A certificate from a CA nobody trusts is refused, in one line, and
        the message is not sent.
        """
        port = yield self.tls_server()
        other = ThrowawayCA("another CA")
        for options in [("--tls",), ("--tls", "--cafile", other.ca_file())]:
            child = yield self.chat(port, *options)
            self.assertEqual(exit_status(child.ended.result), (1, None))
            err = child.err.decode()
            self.assertIn("the server's certificate is not trusted", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)

    @defer.inlineCallbacks
    def test_insecure(self):
        """
        --insecure connects to anything, and says loudly what that means.
        """
        port = yield self.tls_server()
        child = yield self.chat(port, "--insecure")
        self.assertEqual(exit_status(child.ended.result), (0, None), bytes(child.err))
        self.assertIn(b"WARNING: --insecure", child.err)
        self.assertIn(b"hello over tls", child.out)

    @defer.inlineCallbacks
    def test_plain_client_on_tls_port(self):
        """
        A client without --tls fails cleanly: no traceback, exit 1.
        """
        port = yield self.tls_server()
        child = yield self.chat(port)
        self.assertEqual(exit_status(child.ended.result), (1, None))
        self.assertNotIn(b"Traceback", child.err + child.out)
        self.assertIn(b"is it a TLS port? try --tls", child.err)

    @defer.inlineCallbacks
    def test_tls_client_on_plain_port(self):
        server = yield self.start_server()
        child = yield self.chat(server.port, "--insecure")
        self.assertEqual(exit_status(child.ended.result), (1, None))
        self.assertIn(b"the server does not speak TLS", child.err)
        self.assertNotIn(b"Traceback", child.err + child.out)

    def test_cafile_and_insecure(self):
        from twisted.python.usage import UsageError

        from twisted_chat.client import Options

        self.assertRaises(UsageError, Options().parseOptions, ["--insecure", "--cafile", "x"])
        e = self.assertRaises(UsageError, Options().parseOptions, ["--cafile", "/nonexistent"])
        self.assertIn("--cafile", str(e))
