"""
The stdio client logging in to a server with accounts, over TLS on loopback
(the accounts themselves: tests/unit/test_accounts.py).
"""

import os

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.trial.unittest import TestCase

from tests.helpers.loopback import LoopbackMixin
from tests.helpers.processes import exit_status, temp_dir, temp_file
from twisted_chat import accounts
from twisted_chat.server import ChatServerFactory


class ClientLoginTests(LoopbackMixin, TestCase):
    """
    The stdio client logging in over TLS (a child process).
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        from tests.helpers.certs import ThrowawayCA

        self.ca = ThrowawayCA(directory=temp_dir(self, "twisted-chat-certs-"))
        path = temp_file(self, "alice:%s\n" % (accounts.hash_password("pw-a"),))
        factory = ChatServerFactory(
            clock=reactor, portal=accounts.portal(accounts.AuthFile(path)))
        self.addCleanup(factory.shutdown, "test over", 1.0)
        port = yield SSL4ServerEndpoint(
            reactor, 0, self.ca.server_options("localhost"), interface="127.0.0.1"
        ).listen(factory)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    @defer.inlineCallbacks
    def chat(self, password, *options):
        os.environ["TWISTED_CHAT_PASSWORD"] = password
        try:
            child = self.spawn_client(
                self.port, "--host", "localhost", "--cafile", self.ca.ca_file(), *options)
        finally:
            del os.environ["TWISTED_CHAT_PASSWORD"]
        child.transport.write(b"hello as alice\n")
        child.transport.closeStdin()
        reason = yield child.ended
        return child, exit_status(reason)

    @defer.inlineCallbacks
    def test_login(self):
        """
        The client with --login logs in and chats under the account's name.
        """
        child, status = yield self.chat("pw-a", "--login", "--name", "alice")
        self.assertEqual(status, (0, None), bytes(child.err))
        self.assertIn(b"* logged in as alice", child.out)
        self.assertIn(b"> alice: hello as alice", child.out)

    @defer.inlineCallbacks
    def test_wrong_password(self):
        """
        The client with a wrong password says so in one line and exits 1.
        """
        child, status = yield self.chat("nope", "--login", "--name", "alice")
        self.assertEqual(status, (1, None))
        self.assertEqual(child.err.decode(), "cannot log in as alice: wrong name or password\n")

    @defer.inlineCallbacks
    def test_no_login(self):
        """
        The client without --login tells how to log in and exits 1.
        """
        child, status = yield self.chat("unused")
        self.assertEqual(status, (1, None))
        self.assertIn(b"the server wants a login: use --login --name NAME", child.err)
