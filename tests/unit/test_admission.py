"""
Tests for L{twisted_chat.admission}: the caps on connections and the login
attempts per address, without sockets.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import admission, settings, wire
from twisted_chat.admission import Admission
from twisted_chat.settings import ServerSettings


class AdmissionTests(SynchronousTestCase):
    """
    L{Admission.refusal} and L{Admission.release}.
    """

    def door(self, **fields):
        return Admission(ServerSettings(**fields), Clock())

    def test_server_full(self):
        """
        With max_clients connections in, the next is refused server_full,
        whatever its address.
        """
        door = self.door(max_clients=2)
        self.assertIsNone(door.refusal("10.0.0.1", 1))
        refusal = door.refusal("10.0.0.2", 2)
        self.assertEqual(refusal.code, wire.SERVER_FULL)
        self.assertEqual(refusal.message, "the server is full (2 connections)")

    def test_per_address(self):
        """
        An address with max_per_ip connections is refused the next, others
        are not, and a released connection makes room again.
        """
        door = self.door(max_per_ip=2)
        for _ in range(2):
            self.assertIsNone(door.refusal("10.0.0.1", 0))
        refusal = door.refusal("10.0.0.1", 0)
        self.assertEqual(refusal.code, wire.TOO_MANY_CONNECTIONS)
        self.assertEqual(refusal.message, "too many connections from 10.0.0.1 (2)")
        self.assertIsNone(door.refusal("10.0.0.2", 0))
        door.release("10.0.0.1")
        self.assertEqual(door.connections_from("10.0.0.1"), 1)
        self.assertIsNone(door.refusal("10.0.0.1", 0))

    def test_no_per_address_limit(self):
        """
        max_per_ip 0 lets any number in from one address, and releasing
        them all forgets the address.
        """
        door = self.door(max_per_ip=0)
        for _ in range(50):
            self.assertIsNone(door.refusal("10.0.0.1", 0))
        for _ in range(50):
            door.release("10.0.0.1")
        self.assertEqual(door.connections_from("10.0.0.1"), 0)

    def test_no_address(self):
        """
        A connection without a host (a UNIX socket) is counted against no
        address, and releasing it is harmless.
        """
        door = self.door(max_per_ip=1)
        self.assertIsNone(door.refusal(None, 0))
        self.assertIsNone(door.refusal(None, 0))
        door.release(None)


class LoginBucketTests(SynchronousTestCase):
    """
    L{Admission.login_bucket}.
    """

    def test_per_address(self):
        """
        Each address has its own bucket: LOGIN_BURST attempts at once.
        """
        door = Admission(ServerSettings(), Clock())
        for _ in range(settings.LOGIN_BURST):
            self.assertFalse(door.login_bucket("10.0.0.1").take())
        self.assertTrue(door.login_bucket("10.0.0.1").take())
        self.assertFalse(door.login_bucket("10.0.0.2").take())

    def test_bounded(self):
        """
        Only the most recent LOGIN_ADDRESSES addresses are remembered: the
        oldest is forgotten, so its bucket is full again.
        """
        self.patch(admission, "LOGIN_ADDRESSES", 3)
        door = Admission(ServerSettings(), Clock())
        for _ in range(settings.LOGIN_BURST):
            door.login_bucket("first").take()
        for host in ["a", "b", "c"]:
            door.login_bucket(host)
        self.assertFalse(door.login_bucket("first").take())
