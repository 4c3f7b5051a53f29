"""
Tests for twisted-chat; run them all with C{python -m twisted.trial tests}
or C{python -m pytest tests}.

- tests/unit/: the fast tests (in memory, on a L{Clock}); alone with
  C{python -m twisted.trial tests.unit} or C{python -m pytest tests/unit}.
- tests/system/: the slow tests (real sockets, child processes, long
  randomized runs), and tests/test_cluster.py (a real redis-server).
- tests/helpers/: what they share.
"""
