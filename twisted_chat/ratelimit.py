# -*- test-case-name: tests.unit.test_ratelimit -*-
"""
Token buckets: the server's flood control and the client's pacing use the
same arithmetic, so a client that paces itself is never refused.
"""


class TokenBucket:
    """
    A bucket of up to C{burst} tokens that refills at C{rate} tokens a
    second; every accepted action takes one token.

    @ivar rate: tokens per second; 0 means no limit.
    @ivar burst: the most tokens the bucket holds.
    """

    def __init__(self, rate, burst, clock):
        """
        @param clock: an L{IReactorTime}; the bucket starts full at its
            current time.
        """
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._stamp = clock.seconds()

    def _refill(self):
        now = self.clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait(self):
        """
        Seconds until a token is available: 0 if one is there now.
        """
        if not self.rate:
            return 0.0
        self._refill()
        if self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self.rate

    def spend(self):
        """
        Take a token if there is one; never refuse (an action that must go
        through, but should still count).
        """
        if self.rate:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1

    def take(self):
        """
        Take a token if there is one.

        @return: 0 if a token was taken, else the seconds until there is one
            (and nothing was taken).
        """
        delay = self.wait()
        if delay == 0 and self.rate:
            self._tokens -= 1
        return delay
