"""
Accounts: hashes, the auth file, twisted_chat.passwd and the server's login
(the stdio client logging in over TLS: tests/system/test_accounts.py).
"""

import io
import os
import stat

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers.memory import ServerMixin
from tests.helpers.processes import temp_dir, temp_file
from twisted_chat import accounts, passwd, wire
from twisted_chat.server import ChatServerFactory

try:
    import bcrypt
except ImportError:  # pragma: no cover
    bcrypt = None


def now(f, *args):
    """
    Run C{f} at once instead of in a thread: tests on a Clock.
    """
    return defer.maybeDeferred(f, *args)


class HashTests(SynchronousTestCase):
    def test_scrypt(self):
        """
        A scrypt hash is salted, well-formed and verifies only its password.
        """
        hashed = accounts.hash_password("s3cret")
        self.assertTrue(hashed.startswith("$scrypt$ln=14,r=8,p=1$"))
        accounts.check_hash(hashed)
        self.assertTrue(accounts.verify("s3cret", hashed))
        self.assertFalse(accounts.verify("s3cret ", hashed))
        self.assertNotEqual(hashed, accounts.hash_password("s3cret"))  # salted

    def test_bcrypt(self):
        """
        A bcrypt hash is well-formed and verifies only its password.
        """
        if bcrypt is None:  # pragma: no cover
            raise self.skipTest("bcrypt is not installed")
        hashed = accounts.hash_password("s3cret", "bcrypt")
        accounts.check_hash(hashed)
        self.assertTrue(accounts.verify("s3cret", hashed))
        self.assertFalse(accounts.verify("other", hashed))

    def test_malformed(self):
        """
        A malformed or out-of-range hash is refused with ValueError.
        """
        for bad in ["plain", "$scrypt$ln=14$x", "$scrypt$ln=99,r=8,p=1$AA$AA", "$2b$short",
                    "$scrypt$ln=a,r=8,p=1$AA$AA"]:
            self.assertRaises(ValueError, accounts.check_hash, bad)


class AuthFileTests(SynchronousTestCase):
    def test_parse(self):
        """
        The auth file skips comments and blanks; names match whatever their case.
        """
        hashed = accounts.hash_password("pw")
        path = temp_file(self, "# users\n\nAlice:%s\nbob:%s\n" % (hashed, hashed))
        auth = accounts.AuthFile(path)
        self.assertIn("alice", auth)
        self.assertIn("BOB", auth)
        self.assertEqual(auth.hashes["alice"][0], "Alice")

    def test_errors_name_the_line(self):
        """
        A bad auth file is refused with an error that names the line.
        """
        hashed = accounts.hash_password("pw")
        for text, error in [
            ("alice %s\n" % hashed, ":1: not name:hash"),
            ("ok:%s\nbad name:%s\n" % (hashed, hashed), ":2: "),
            ("guest-1:%s\n" % hashed, ":1: "),
            ("a:%s\nA:%s\n" % (hashed, hashed), ":2: A is there twice"),
            ("a:nothash\n", ":1: not a scrypt"),
        ]:
            path = temp_file(self, text)
            e = self.assertRaises(accounts.AuthFileError, accounts.AuthFile, path)
            self.assertIn(error, str(e))
        e = self.assertRaises(accounts.AuthFileError, accounts.AuthFile, "/nonexistent/x")
        self.assertIn("cannot read", str(e))

    def test_checker(self):
        """
        The checker logs a name in with its password, in any case, and nothing else.
        """
        path = temp_file(self, "alice:%s\n" % accounts.hash_password("pw"))
        portal = accounts.portal(accounts.AuthFile(path), run=now)
        self.assertEqual(self.successResultOf(accounts.login(portal, "ALICE", "pw")), "alice")
        for name, password in [("alice", "wrong"), ("nobody", "pw")]:
            failure = self.failureResultOf(accounts.login(portal, name, password))
            self.assertEqual(failure.getErrorMessage(), "wrong name or password")


class PasswdTests(SynchronousTestCase):
    def run_passwd(self, *argv, stdin="", answers=()):
        out, err = io.StringIO(), io.StringIO()
        answers = list(answers)
        status = passwd.main(list(argv), stdin=io.StringIO(stdin),
                             ask=lambda prompt: answers.pop(0), out=out, err=err)
        return status, out.getvalue(), err.getvalue()

    def test_add_and_change(self):
        """
        passwd adds an account to a new 0600 file and changes a password.
        """
        path = os.path.join(temp_dir(self), "users")
        status, out, _ = self.run_passwd(path, "alice", answers=["pw1", "pw1"])
        self.assertEqual((status, out), (0, "added alice in %s\n" % (path,)))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        status, out, _ = self.run_passwd("--stdin", path, "bob", stdin="pw2\n")
        self.assertEqual(status, 0)
        status, out, _ = self.run_passwd("--stdin", path, "ALICE", stdin="pw3\n")
        self.assertIn("changed the password of ALICE", out)
        auth = accounts.AuthFile(path)
        self.assertEqual(sorted(auth.hashes), ["alice", "bob"])
        self.assertTrue(accounts.verify("pw3", auth.hashes["alice"][1]))
        self.assertTrue(accounts.verify("pw2", auth.hashes["bob"][1]))

    def test_refusals(self):
        """
        passwd refuses differing or empty passwords, bad names and bad files.
        """
        path = os.path.join(temp_dir(self), "users")
        status, _, err = self.run_passwd(path, "alice", answers=["a", "b"])
        self.assertEqual((status, err), (1, "twisted-chat-passwd: the passwords differ\n"))
        status, _, err = self.run_passwd("--stdin", path, "alice", stdin="\n")
        self.assertIn("the password is empty", err)
        status, _, err = self.run_passwd(path, "bad name")
        self.assertEqual(status, 2)
        self.assertFalse(os.path.exists(path))
        broken = temp_file(self, "junk\n")
        status, _, err = self.run_passwd("--stdin", broken, "alice", stdin="pw\n")
        self.assertEqual(status, 1)
        self.assertIn(":1: not name:hash", err)


class LoginTests(ServerMixin, SynchronousTestCase):
    """
    The server with accounts, on a Clock (hashes checked at once).
    """

    def setUp(self):
        path = temp_file(self, "alice:%s\nbob:%s\n" % (
            accounts.hash_password("pw-a"), accounts.hash_password("pw-b")))
        self.portal = accounts.portal(accounts.AuthFile(path), run=now)
        super().setUp()

    def make_factory(self, **kwargs):
        """
        The mixin's factory, with these accounts (plaintext login allowed).
        """
        kwargs.setdefault("allow_plaintext_login", True)
        return super().make_factory(portal=self.portal, **kwargs)

    def login(self, protocol, name, password):
        self.send(protocol, type="login", name=name, password=password)

    def test_welcome_asks_for_login(self):
        """
        With accounts, the welcome asks for a login, and waiting does not join.
        """
        protocol, transport = self.connect(join=False)
        self.assertTrue(self.received(transport)[0]["login"])
        self.clock.advance(5)  # no joining by waiting
        self.assertNotIn(protocol, self.factory.room)

    def test_login(self):
        """
        A login joins under the account's name, which cannot be changed.
        """
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.login(protocol, "ALICE", "pw-a")
        self.assertEqual(self.received(transport), [
            {"type": "logged_in", "name": "alice"},
            {"type": "join", "name": "alice", "seq": 1},
        ])
        self.send(protocol, type="nick", name="carol")
        self.assertEqual(self.received(transport)[0]["code"], wire.BAD_NICK)

    def test_wrong_password_may_try_again(self):
        """
        A wrong password is refused without closing; a retry may succeed.
        """
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.login(protocol, "alice", "nope")
        self.assertEqual(self.received(transport)[0]["code"], wire.AUTH_FAILED)
        self.assertFalse(transport.disconnecting)
        self.login(protocol, "alice", "pw-a")
        self.assertEqual(self.received(transport)[0]["type"], "logged_in")

    def test_anything_before_login(self):
        """
        Any other frame before the login is refused and closes.
        """
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.send(protocol, type="message", text="hi")
        self.assertEqual(self.received(transport)[0]["code"], wire.AUTH_FAILED)
        self.assertTrue(transport.disconnecting)

    def test_rate_limited_per_address(self):
        """
        Five attempts at once from an address, then one every 10 s.
        """
        first, t1 = self.connect(40001, join=False, host="10.0.0.1")
        second, t2 = self.connect(40002, join=False, host="10.0.0.1")
        other, t3 = self.connect(40003, join=False, host="10.0.0.2")
        for protocol in (first, second, other):
            protocol.transport.clear()
        for _ in range(3):
            self.login(first, "alice", "nope")
        for _ in range(2):
            self.login(second, "alice", "nope")
        self.login(second, "alice", "pw-a")
        refused = self.received(t2)[-1]
        self.assertEqual((refused["code"], refused["retry_after"]), (wire.RATE_LIMITED, 10.0))
        self.login(other, "bob", "pw-b")
        self.assertEqual(self.received(t3)[0]["type"], "logged_in")
        self.clock.advance(10)
        self.login(second, "alice", "pw-a")
        self.assertEqual(self.received(t2)[0]["type"], "logged_in")

    def test_plaintext_refused(self):
        """
        A login without TLS is refused unless plaintext login is allowed.
        """
        self.factory = ChatServerFactory(clock=self.clock, portal=self.portal)
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.login(protocol, "alice", "pw-a")
        error = self.received(transport)[0]
        self.assertEqual(error["code"], wire.AUTH_FAILED)
        self.assertIn("TLS", error["message"])
        self.assertTrue(transport.disconnecting)

    def test_already_logged_in(self):
        """
        An account logged in on one connection cannot log in on another.
        """
        first, _ = self.connect(40001, join=False)
        self.login(first, "alice", "pw-a")
        second, transport = self.connect(40002, join=False)
        transport.clear()
        self.login(second, "alice", "pw-a")
        self.assertEqual(self.received(transport)[0]["code"], wire.NICK_TAKEN)

    def test_resume_instead_of_login(self):
        """
        A logged-in session may be resumed without logging in again.
        """
        protocol, transport = self.connect(join=False)
        session = self.received(transport)[0]["session"]
        self.login(protocol, "alice", "pw-a")
        self.lose(protocol)
        again, transport = self.connect(40001, join=False)
        transport.clear()
        self.send(again, type="resume", session=session, last_seq=1)
        self.assertEqual(self.received(transport)[-1], {
            "type": "resumed", "replayed": 1, "name": "alice"})

    def test_login_without_accounts(self):
        """
        A server without accounts answers a login with unknown_type.
        """
        self.factory = ChatServerFactory(clock=self.clock)
        protocol, transport = self.connect()
        transport.clear()
        self.login(protocol, "alice", "pw-a")
        self.assertEqual(self.received(transport)[0]["code"], wire.UNKNOWN_TYPE)


class LoginUnderWayTests(ServerMixin, SynchronousTestCase):
    """
    While a login's check runs (in a thread, in production), the connection
    waits in the login state.
    """

    def setUp(self):
        path = temp_file(self, "alice:%s\n" % (accounts.hash_password("pw-a"),))
        self.checks = []

        def later(f, *args):
            d = defer.Deferred()
            self.checks.append((d, f, args))
            return d

        self.portal = accounts.portal(accounts.AuthFile(path), run=later)
        super().setUp()

    def make_factory(self, **kwargs):
        return super().make_factory(
            portal=self.portal, allow_plaintext_login=True, **kwargs)

    def finish_check(self):
        d, f, args = self.checks.pop(0)
        d.callback(f(*args))

    def test_resume_while_logging_in(self):
        """
        A resume sent while a login is being checked is refused, and the
        login then joins as usual.
        """
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.send(protocol, type="login", name="alice", password="pw-a")
        self.send(protocol, type="resume", session="x" * 10, last_seq=0, id="r")
        error = self.received(transport)[-1]
        self.assertEqual((error["code"], error["id"]), (wire.BAD_FRAME, "r"))
        self.assertEqual(error["message"], "a login is under way")
        self.finish_check()
        self.assertEqual(
            [m["type"] for m in self.received(transport)], ["logged_in", "join"])
        self.assertIn(protocol, self.factory.room)
