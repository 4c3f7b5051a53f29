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


    def test_default_per_address(self):
        """
        By default one address may have 100 connections, and no more.
        """
        door = self.door()
        for _ in range(100):
            self.assertIsNone(door.refusal("10.0.0.1", 0))
        self.assertEqual(door.refusal("10.0.0.1", 0).code, wire.TOO_MANY_CONNECTIONS)

    def test_ipv6_per_64(self):
        """
        IPv6 addresses count per /64, and the refusal names the /64.
        """
        door = self.door(max_per_ip=2)
        self.assertIsNone(door.refusal("2001:db8:1:2::1", 0))
        self.assertIsNone(door.refusal("2001:db8:1:2:ffff::9", 0))
        refusal = door.refusal("2001:db8:1:2::3", 0)
        self.assertEqual(refusal.message, "too many connections from 2001:db8:1:2::/64 (2)")
        self.assertIsNone(door.refusal("2001:db8:1:3::1", 0))
        door.release("2001:db8:1:2::1")
        self.assertEqual(door.connections_from("2001:db8:1:2::77"), 1)

    def test_ipv4_mapped(self):
        """
        An IPv4-mapped IPv6 address counts as that IPv4 address.
        """
        door = self.door(max_per_ip=1)
        self.assertIsNone(door.refusal("10.0.0.1", 0))
        refusal = door.refusal("::ffff:10.0.0.1", 0)
        self.assertEqual(refusal.message, "too many connections from 10.0.0.1 (1)")


class AddressKeyTests(SynchronousTestCase):
    """
    L{admission.address_key}.
    """

    def test_keys(self):
        """
        IPv4 as itself, IPv6 as its /64, IPv4-mapped as IPv4, names as they are.
        """
        cases = {
            "192.0.2.7": "192.0.2.7",
            "2001:db8::1": "2001:db8::/64",
            "2001:db8:aa:bb:cc:dd:ee:ff": "2001:db8:aa:bb::/64",
            "fe80::1%eth0": "fe80::/64",
            "::ffff:192.0.2.7": "192.0.2.7",
            "::1": "::/64",
            "host.example": "host.example",
            "not:an:address": "not:an:address",
        }
        self.assertEqual({host: admission.address_key(host) for host in cases}, cases)


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

    def test_ipv6_per_64(self):
        """
        The addresses of one IPv6 /64 share a bucket.
        """
        door = Admission(ServerSettings(), Clock())
        for i in range(settings.LOGIN_BURST):
            self.assertFalse(door.login_bucket("2001:db8::%x" % (i + 1,)).take())
        self.assertTrue(door.login_bucket("2001:db8::ffff").take())
        self.assertFalse(door.login_bucket("2001:db8:0:1::1").take())

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
