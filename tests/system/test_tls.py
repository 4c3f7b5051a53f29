"""
TLS: the server on a Twisted TLS endpoint, the stdio client with --tls,
against a throwaway CA (tests/helpers/certs.py).
"""

import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.trial.unittest import TestCase

from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import exit_status
from twisted_chat.server import ChatServerFactory

try:
    from tests.helpers.certs import ThrowawayCA
except ImportError:  # pragma: no cover
    ThrowawayCA = None


class TLSTests(LoopbackMixin, TestCase):
    """
    The stdio client (a child process) against a TLS server.
    """

    timeout = 30

    if ThrowawayCA is None:  # pragma: no cover
        skip = "cryptography is not installed (pip install '.[test]')"

    def make_ca(self, name="twisted-chat test CA"):
        """
        A L{ThrowawayCA} whose files are removed when the test ends.
        """
        # Not self.mktemp(): under pytest that lands in the checkout.
        directory = tempfile.mkdtemp(prefix="twisted-chat-certs-")
        self.addCleanup(shutil.rmtree, directory, True)
        return ThrowawayCA(name, directory=os.path.join(directory, "ca"))

    @defer.inlineCallbacks
    def tls_server(self, hostname="localhost"):
        """
        A server on a TLS port of 127.0.0.1 with a certificate for
        C{hostname} from this test's CA; its port.
        """
        self.ca = self.make_ca()
        factory = ChatServerFactory(clock=reactor)
        self.addCleanup(factory.shutdown, "test over", 1.0)
        endpoint = SSL4ServerEndpoint(
            reactor, 0, self.ca.server_options(hostname), interface="127.0.0.1")
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
        self.assertTrue(
            child.out.startswith(b"chatting server(localhost:%d) connect success!\n" % (port,)),
            bytes(child.out))

    def assertRefused(self, child, why):
        """
        The client ended with EXIT_FAILED and one line on stderr containing
        C{why}, and never claimed to be connected.
        """
        self.assertEqual(exit_status(child.ended.result), (1, None))
        err = child.err.decode()
        self.assertIn(why, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertNotIn(b"connect success", child.out)
        self.assertNotIn(b"you are", child.out)
        self.assertNotIn(b"hello over tls", child.out)

    @defer.inlineCallbacks
    def test_cafile_alone_means_tls(self):
        """
        --cafile implies --tls.
        """
        port = yield self.tls_server()
        child = yield self.chat(port, "--cafile", self.ca.ca_file())
        self.assertEqual(exit_status(child.ended.result), (0, None), bytes(child.err))

    @defer.inlineCallbacks
    def test_wrong_host_name(self):
        """
        A certificate for another name is refused, in one line.
        """
        port = yield self.tls_server(hostname="elsewhere.example")
        for options in [(), ("--reconnect",)]:
            child = yield self.chat(port, "--tls", "--cafile", self.ca.ca_file(), *options)
            self.assertRefused(
                child, "the server's certificate is not for this host name (localhost)\n")

    @defer.inlineCallbacks
    def test_untrusted(self):
        """
        A certificate from a CA nobody trusts is refused, in one line, and
        the message is not sent.
        """
        port = yield self.tls_server()
        other = self.make_ca("another CA")
        for options in [("--tls",), ("--tls", "--cafile", other.ca_file()),
                        ("--cafile", other.ca_file(), "--reconnect")]:
            child = yield self.chat(port, *options)
            self.assertRefused(child, "the server's certificate is not trusted")

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
        """
        A TLS client on a plain port says the server does not speak TLS.
        """
        server = yield self.start_server()
        child = yield self.chat(server.port, "--insecure")
        self.assertEqual(exit_status(child.ended.result), (1, None))
        self.assertIn(b"the server does not speak TLS", child.err)
        self.assertNotIn(b"Traceback", child.err + child.out)
        self.assertNotIn(b"connect success", child.out)
        self.assertNotIn(b"[(", child.err)

    def test_cafile_and_insecure(self):
        """
        --cafile and --insecure contradict each other; a missing --cafile
        is a usage error.
        """
        from twisted.python.usage import UsageError

        from twisted_chat.client import Options

        self.assertRaises(UsageError, Options().parseOptions, ["--insecure", "--cafile", "x"])
        e = self.assertRaises(UsageError, Options().parseOptions, ["--cafile", "/nonexistent"])
        self.assertIn("--cafile", str(e))


class ThrowawayCATests(TestCase):
    """
    The test PKI leaves nothing behind.
    """

    def test_directory_from_caller(self):
        """
        Files go where the caller says.
        """
        if ThrowawayCA is None:  # pragma: no cover
            raise self.skipTest("cryptography is not installed")
        parent = tempfile.mkdtemp(prefix="twisted-chat-certs-")
        self.addCleanup(shutil.rmtree, parent, True)
        ca = ThrowawayCA(directory=os.path.join(parent, "here"))
        self.assertEqual(os.path.dirname(ca.ca_file()), os.path.join(parent, "here"))

    def test_default_directory_removed(self):
        """
        A CA that made its own directory removes it when it goes.
        """
        if ThrowawayCA is None:  # pragma: no cover
            raise self.skipTest("cryptography is not installed")
        ca = ThrowawayCA()
        directory = os.path.dirname(ca.ca_file())
        self.assertTrue(os.path.isdir(directory))
        del ca
        import gc

        gc.collect()
        self.assertFalse(os.path.exists(directory))
