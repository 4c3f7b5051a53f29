"""
Child processes and the files they leave: the environment a child Python
gets, a protocol that collects a child's output, its exit status, and
temporary directories that are removed after the test.
"""

import os
import re
import shutil
import tempfile

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol

import twisted_chat
from tests.helpers.waiting import Waiter

#: The checkout (or install) the tests import twisted_chat from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(twisted_chat.__file__)))

#: The arguments that run twistd with this Python.
TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]


def child_env():
    """
    The environment for a child Python: this one, with the code under test
    first on its path (trial runs tests from _trial_temp, so a relative
    path would point elsewhere).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def temp_dir(case, prefix="twisted-chat-test-"):
    """
    A new directory for C{case}, removed with all in it when C{case} cleans
    up, whether it passed or failed.

    Not C{case.mktemp()}: that is relative to the current directory, which
    is _trial_temp under trial but the checkout under pytest, and nothing
    removes it after the test.

    @return: its absolute path.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    case.addCleanup(shutil.rmtree, path)
    return path


def temp_file(case, text, name="users", prefix="twisted-chat-auth-"):
    """
    A file C{name} holding C{text}, in a L{temp_dir} of its own.

    @return: its absolute path.
    """
    path = os.path.join(temp_dir(case, prefix), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def exit_status(reason):
    """
    (exit code, signal) of a child's end reason.
    """
    return getattr(reason, "exitCode", None), getattr(reason, "signal", None)


class ChildProcess(ProcessProtocol, Waiter):
    """
    A child process whose output is collected.

    @ivar ended: fires with the process's end reason
        (L{ProcessDone} or L{ProcessTerminated}).
    """

    def __init__(self):
        Waiter.__init__(self)
        # bytearrays, not bytes: a chatty child's output must not be copied
        # whole on every read.
        self.out = bytearray()
        self.err = bytearray()
        self.ended = defer.Deferred()
        self.running = True

    def outReceived(self, data):
        """
        Collect stdout.  L{ProcessProtocol} API.
        """
        self.out += data
        self.check()

    def errReceived(self, data):
        """
        Collect stderr.  L{ProcessProtocol} API.
        """
        self.err += data
        self.check()

    def wait_for(self, pattern, stream="out"):
        """
        @return: a Deferred that fires with the first match of the regular
            expression C{pattern} (bytes) in stdout or stderr.
        """
        return self.wait_until(lambda: re.search(pattern, getattr(self, stream)))

    def processEnded(self, reason):
        """
        Fire L{ended}.  L{ProcessProtocol} API.
        """
        self.running = False
        self.ended.callback(reason.value)

    def signal(self, number):
        """
        Send the child signal C{number} (or a name such as C{"KILL"}).
        """
        self.transport.signalProcess(number)
