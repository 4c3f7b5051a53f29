# -*- test-case-name: tests.unit.test_accounts,tests.system.test_accounts -*-
"""
Accounts for C{--auth-file}: password hashes, the file, and a
L{twisted.cred} checker and realm.

The file has one C{name:hash} a line (blank lines and C{#} comments are
ignored).  A hash is scrypt, from the standard library::

    $scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>

or bcrypt (C{$2b$...}; the C{bcrypt} package, the C{accounts} extra).
C{python -m twisted_chat.passwd FILE NAME} adds or changes a user.

Checking a password takes tens of milliseconds of CPU by design, so the
checker runs it in the reactor's thread pool (both hashes release the GIL)
and the reactor goes on serving everyone else meanwhile.
"""

import base64
import hashlib
import hmac
import os

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from zope.interface import Interface, implementer

from twisted_chat import wire

#: scrypt's cost: 2**14 iterations of memory 128 * r * 2**ln bytes (16 MiB).
SCRYPT_LN, SCRYPT_R, SCRYPT_P = 14, 8, 1
_SCRYPT_PREFIX = "$scrypt$"


class AuthFileError(Exception):
    """
    The auth file cannot be used; the message says where and why.
    """


def _b64(data):
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password, salt, ln, r, p):
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**ln, r=r, p=p,
        maxmem=256 * 1024 * 1024, dklen=32)


def hash_password(password, scheme="scrypt"):
    """
    A new hash of C{password}, with a random salt.

    @param scheme: C{"scrypt"} or C{"bcrypt"}.
    """
    if scheme == "bcrypt":
        import bcrypt

        return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")
    if scheme != "scrypt":
        raise ValueError("unknown scheme %r (scrypt or bcrypt)" % (scheme,))
    salt = os.urandom(16)
    key = _scrypt(password, salt, SCRYPT_LN, SCRYPT_R, SCRYPT_P)
    return "%sln=%d,r=%d,p=%d$%s$%s" % (
        _SCRYPT_PREFIX, SCRYPT_LN, SCRYPT_R, SCRYPT_P, _b64(salt), _b64(key))


def check_hash(hashed):
    """
    Raise L{ValueError} unless C{hashed} is a hash L{verify} can check.
    """
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        if len(hashed) != 60:
            raise ValueError("a bcrypt hash is 60 characters")
        return
    if not hashed.startswith(_SCRYPT_PREFIX):
        raise ValueError("not a scrypt ($scrypt$...) or bcrypt ($2b$...) hash")
    try:
        ln, r, p, _, _ = _scrypt_parts(hashed)
    except (ValueError, KeyError):
        raise ValueError("a malformed scrypt hash") from None
    if not (1 <= ln <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")


def _scrypt_parts(hashed):
    """
    C{(ln, r, p, salt, key)} of a C{$scrypt$} hash.

    @raise ValueError: or L{KeyError}, if it is malformed.
    """
    params, salt, key = hashed[len(_SCRYPT_PREFIX):].split("$")
    values = dict(item.split("=") for item in params.split(","))
    return int(values["ln"]), int(values["r"]), int(values["p"]), _unb64(salt), _unb64(key)


def verify(password, hashed):
    """
    Whether C{password} matches C{hashed} (checked by L{check_hash}).
    """
    if hashed.startswith("$2"):
        import bcrypt

        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    ln, r, p, salt, key = _scrypt_parts(hashed)
    return hmac.compare_digest(_scrypt(password, salt, ln, r, p), key)


#: What an unknown name is checked against, so that it takes as long as a
#: known one and nobody can tell which names exist by timing.
_DUMMY = None


def _dummy_hash():
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("not a password")
    return _DUMMY


class AuthFile:
    """
    The accounts in an auth file.

    @ivar hashes: lower-case name -> (name as written, hash).
    """

    def __init__(self, path):
        self.path = path
        self.hashes = {}
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise AuthFileError("cannot read %s: %s" % (path, e)) from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, colon, hashed = line.partition(":")
            try:
                if not colon:
                    raise ValueError("not name:hash")
                wire.check_nick(name)
                check_hash(hashed)
            except wire.ProtocolError as e:
                raise AuthFileError("%s:%d: %s" % (path, number, e.message)) from None
            except ValueError as e:
                raise AuthFileError("%s:%d: %s" % (path, number, e)) from None
            if name.lower() in self.hashes:
                raise AuthFileError("%s:%d: %s is there twice" % (path, number, name))
            self.hashes[name.lower()] = (name, hashed)

    def __contains__(self, name):
        return name.lower() in self.hashes


class IChatAccount(Interface):
    """
    What a login gives: the account's name, as the avatar ID.
    """


@implementer(ICredentialsChecker)
class PasswordChecker:
    """
    Checks a name and password against an L{AuthFile}.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, accounts, run=None):
        """
        @param run: C{run(f, *args)} -> Deferred, where to compute hashes;
            the reactor's thread pool by default.
        """
        self.accounts = accounts
        if run is None:
            from twisted.internet import reactor

            def run(f, *args):
                return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

        self.run = run

    def requestAvatarId(self, creds):
        """
        The account's name as written in the file, or an
        L{error.UnauthorizedLogin}.  (L{ICredentialsChecker}.)
        """
        username = creds.username
        if isinstance(username, bytes):
            username = username.decode("utf-8", "replace")
        password = creds.password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        name, hashed = self.accounts.hashes.get(username.lower(), (None, _dummy_hash()))
        d = self.run(verify, password, hashed)

        def checked(ok):
            if ok and name is not None:
                return name
            raise error.UnauthorizedLogin("wrong name or password")

        return d.addCallback(checked)


@implementer(IRealm)
class ChatRealm:
    """
    Logged-in accounts are just their names.
    """

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IChatAccount not in interfaces:
            raise NotImplementedError("only IChatAccount")
        return IChatAccount, avatarId, lambda: None


def portal(accounts, run=None):
    """
    A L{Portal} that logs names in against C{accounts}.
    """
    return Portal(ChatRealm(), [PasswordChecker(accounts, run)])


def login(the_portal, name, password):
    """
    A Deferred of the account's name, failing with L{UnauthorizedLogin}.
    """
    d = defer.maybeDeferred(
        the_portal.login, credentials.UsernamePassword(name, password), None, IChatAccount)
    return d.addCallback(lambda result: result[1])
