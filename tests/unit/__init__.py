"""
The fast tests: no real sockets, no child processes worth waiting for, no
real time (a L{Clock}, L{StringTransport}s, fakes).  Run them alone with
C{python -m twisted.trial tests.unit} or C{python -m pytest tests/unit}.
"""
