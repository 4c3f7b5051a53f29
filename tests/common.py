"""
The old home of the shared helpers, kept only for tests/cluster.py and
tests/test_cluster.py; the helpers live in L{tests.helpers}.  Delete this
module once those two import from there.
"""

from tests.helpers.processes import temp_dir

__all__ = ["temp_dir"]
