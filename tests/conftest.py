"""
pytest only: the suite must leave nothing in the temporary directory.

The session points C{tempfile} (and, through TMPDIR, the child processes
the tests start) at a directory of its own.  Whatever is still in it at the
end fails the run, named with the test after which it first appeared, and
is then removed.  trial runs the same tests; README and CI run pytest
first, so this guards both.  Like any conftest.py here, it imports no
reactor.
"""

import gc
import os
import shutil
import tempfile

import pytest

_guard = {}


def pytest_sessionstart(session):
    """
    Give this session a temporary directory of its own.
    """
    path = tempfile.mkdtemp(prefix="twisted-chat-pytest-")
    _guard.update(path=path, seen={}, left=[],
                  previous=(tempfile.tempdir, os.environ.get("TMPDIR")))
    tempfile.tempdir = path
    os.environ["TMPDIR"] = path


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """
    Note which test each new entry of the directory appeared after.
    """
    if "path" in _guard:
        for name in os.listdir(_guard["path"]):
            _guard["seen"].setdefault(name, item.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """
    Fail the run if anything is left in the directory; remove it.
    """
    if "path" not in _guard:
        return
    path = _guard.pop("path")
    tempfile.tempdir, environ = _guard.pop("previous")
    if environ is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = environ
    gc.collect()  # objects that remove their files when collected
    left = sorted(os.listdir(path))
    shutil.rmtree(path)
    if left:
        _guard["left"] = [(name, _guard["seen"].get(name, "?")) for name in left]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """
    Name what the tests left behind.
    """
    if _guard.get("left"):
        terminalreporter.section("temporary files left behind", sep="=", red=True)
        for name, nodeid in _guard["left"]:
            terminalreporter.write_line("%s  (after %s)" % (name, nodeid))
