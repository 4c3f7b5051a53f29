# -*- test-case-name: tests.unit.test_accounts,tests.system.test_accounts -*-
"""
Add a user to an auth file, or change a password:
C{python -m twisted_chat.passwd FILE NAME} (also C{twisted-chat-passwd}).

The password is asked twice on the terminal, or read from one line of
standard input with C{--stdin}.  The file is created if needed, readable by
its owner only, and replaced atomically.
"""

import getpass
import os
import sys
import tempfile

from twisted.python import usage

from twisted_chat import wire
from twisted_chat.accounts import AuthFile, AuthFileError, hash_password


class Options(usage.Options):
    synopsis = "Usage: python -m twisted_chat.passwd [options] FILE NAME"
    longdesc = "Add NAME to the auth file FILE (for twistd chat --auth-file), or change its password."
    optParameters = [
        ["scheme", None, "scrypt", "The hash: scrypt (standard library) or bcrypt "
         "(needs the bcrypt package)."],
    ]
    optFlags = [["stdin", None, "Read the password from one line of standard input."]]

    def parseArgs(self, path, name):
        self["path"] = path
        self["name"] = name

    def postOptions(self):
        if self["scheme"] not in ("scrypt", "bcrypt"):
            raise usage.UsageError("--scheme must be scrypt or bcrypt")
        try:
            wire.check_nick(self["name"])
        except wire.ProtocolError as e:
            raise usage.UsageError(e.message)


def read_password(from_stdin, stdin=sys.stdin, ask=getpass.getpass):
    """
    The new password: from one line of C{stdin}, or asked twice.

    @raise ValueError: empty, or the two entries differ.
    """
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = ask("New password: ")
        if ask("Again: ") != password:
            raise ValueError("the passwords differ")
    if not password:
        raise ValueError("the password is empty")
    return password


def set_password(path, name, hashed):
    """
    Put C{name:hashed} into the file at C{path}, replacing the line of the
    same name (in any case); create the file if needed.

    @return: whether the name was already there.
    """
    lines = []
    if os.path.exists(path):
        AuthFile(path)  # refuse to rewrite a file we could not read back
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    key, found = name.lower(), False
    for i, line in enumerate(lines):
        if line.strip().partition(":")[0].lower() == key and not line.lstrip().startswith("#"):
            lines[i] = "%s:%s" % (name, hashed)
            found = True
    if not found:
        lines.append("%s:%s" % (name, hashed))
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".passwd-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return found


def main(argv=None, stdin=sys.stdin, ask=getpass.getpass, out=sys.stdout, err=sys.stderr):
    """
    @return: the exit status.
    """
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        err.write("twisted-chat-passwd: %s\n%s\n" % (e, options.synopsis))
        return 2
    try:
        password = read_password(options["stdin"], stdin, ask)
        hashed = hash_password(password, options["scheme"])
        found = set_password(options["path"], options["name"], hashed)
    except ImportError:
        err.write("twisted-chat-passwd: bcrypt needs the bcrypt package "
                  "(pip install 'twisted-chat[accounts]')\n")
        return 1
    except (ValueError, OSError, AuthFileError) as e:
        err.write("twisted-chat-passwd: %s\n" % (e,))
        return 1
    out.write("%s %s in %s\n" % (
        "changed the password of" if found else "added", options["name"], options["path"]))
    return 0


def run():
    sys.exit(main())


if __name__ == "__main__":
    run()
