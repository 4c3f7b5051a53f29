"""
The old home of the loopback helpers, kept only for tests/cluster.py and
tests/test_cluster.py; the helpers live in L{tests.helpers.loopback} and
L{tests.helpers.processes}.  Delete this module once those two import from
there.
"""

from tests.helpers.loopback import LoopbackMixin, RawClient
from tests.helpers.processes import ChildProcess, exit_status

__all__ = ["ChildProcess", "LoopbackMixin", "RawClient", "exit_status"]
