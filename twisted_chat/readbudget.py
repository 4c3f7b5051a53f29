# -*- test-case-name: tests.unit.test_abuse -*-
"""
The server-wide budget of bytes held in incoming frames that are not
complete yet: L{ReadBudget}.  No I/O; the protocol reports what each
connection holds after each read, and drops those the budget names.
"""

from operator import itemgetter

from twisted_chat.settings import READ_BUDGET_LOW, TRIM_AFTER


class ReadBudget:
    """
    Bytes held in unfinished frames, by holder and in all: which holders to
    drop when the total is over the limit, and when a burst has ended.

    @ivar limit: the most bytes held at once (C{--read-budget}).
    @ivar total: the bytes held now.
    """

    def __init__(self, limit, burst_ended=lambda peak: None):
        """
        @param burst_ended: called with the peak when the total falls back
            under a quarter of L{TRIM_AFTER} after a peak of at least that:
            freed memory may then be given back to the system.
        """
        self.limit = limit
        self.total = 0
        self._held = {}
        self._peak = 0
        self._burst_ended = burst_ended

    def __len__(self):
        """
        How many holders hold bytes.
        """
        return len(self._held)

    def held_by(self, holder):
        """
        The bytes C{holder} holds, as last reported.
        """
        return self._held.get(holder, 0)

    def hold(self, holder, held):
        """
        C{holder} now holds C{held} bytes.

        @return: the holders to drop, as (holder, bytes it held) pairs, the
            largest first: none while the total is within the limit; past
            it, as many as bring the total down to L{READ_BUDGET_LOW} of the
            limit.  Those are forgotten: their bytes no longer count.
        """
        before = self._held.get(holder, 0)
        if held:
            self._held[holder] = held
        elif before:
            del self._held[holder]
        total = self.total = self.total + held - before
        if total > self._peak:
            self._peak = total
        if total > self.limit:
            return self._shed()
        if held < before:
            self._check_burst()
        return ()

    def release(self, holder):
        """
        C{holder} holds nothing any more (its connection is closing).
        """
        self.hold(holder, 0)

    def _shed(self):
        """
        Forget the largest holders until the total is down to
        L{READ_BUDGET_LOW} of the limit.
        """
        low = self.limit * READ_BUDGET_LOW
        shed = []
        for holder, held in sorted(self._held.items(), key=itemgetter(1), reverse=True):
            if self.total <= low:
                break
            del self._held[holder]
            self.total -= held
            shed.append((holder, held))
        return shed

    def _check_burst(self):
        """
        Say when a burst has ended: the total is back under a quarter of
        L{TRIM_AFTER}, after a peak of at least that.
        """
        peak = self._peak
        if peak >= TRIM_AFTER and self.total < TRIM_AFTER // 4:
            self._peak = self.total
            self._burst_ended(peak)
