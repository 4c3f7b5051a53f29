# -*- test-case-name: tests.unit.test_logs -*-
"""
The server's log: observers for C{twistd --logger}, and L{LineBudget}.

C{twistd --logger twisted_chat.logs.json} writes one JSON object a line to
standard output (twisted.logger's JSON format, without the RFC 7464 record
separator), for log shippers.  Every event about a client carries the
same fields, C{name} and C{peer}, besides its C{log_format}.
"""

import sys
from collections import Counter

from twisted.logger import Logger, jsonFileLogObserver


def json():
    """
    An observer writing JSON lines to standard output.
    """
    return jsonFileLogObserver(sys.stdout, recordSeparator="")


class LineBudget:
    """
    At most C{per_second} routine lines a second (a client connected, a
    client left); the rest are counted by kind and summed up in one line
    when the second is over.

    Formatting a log line costs the server more than accepting the
    connection it is about: without a budget, 10,000 clients connecting at
    once spend a third of the server's time in the log, and give an
    operator 10,000 lines to read.  At ordinary rates every line is logged.
    """

    log = Logger()

    def __init__(self, clock, per_second):
        """
        @param clock: an L{IReactorTime}.
        @param per_second: lines allowed a second; 0 allows every line.
        """
        self.clock = clock
        self.per_second = per_second
        self._window_end = None
        self._used = 0
        self._held = Counter()
        self._summary = None

    def allow(self, kind):
        """
        Whether a line of C{kind} may be logged now; if not, it is counted.
        """
        if not self.per_second:
            return True
        now = self.clock.seconds()
        if self._window_end is None or now >= self._window_end:
            self._window_end = now + 1.0
            self._used = 0
        if self._used < self.per_second:
            self._used += 1
            return True
        self._held[kind] += 1
        if self._summary is None:
            self._summary = self.clock.callLater(self._window_end - now, self.sum_up)
        return False

    def sum_up(self):
        """
        Log the lines held back, as one line; the server calls it when it
        stops.
        """
        if self._summary is not None and self._summary.active():
            self._summary.cancel()
        self._summary = None
        held, self._held = self._held, Counter()
        if held:
            self.log.info(
                "{count} more lines not logged (over {limit} a second, --log-rate): {kinds}",
                count=sum(held.values()),
                limit=self.per_second,
                kinds=", ".join("%d %s" % (n, kind) for kind, n in sorted(held.items())),
            )
