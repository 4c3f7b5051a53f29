"""
Tests for L{twisted_chat.ratelimit}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    """
    L{TokenBucket}.
    """

    def setUp(self):
        self.clock = Clock()
        self.bucket = TokenBucket(rate=4.0, burst=3, clock=self.clock)

    def test_burst(self):
        """
        A full bucket gives C{burst} tokens at once, then none.
        """
        self.assertEqual([self.bucket.take() for _ in range(3)], [0, 0, 0])
        self.assertEqual(self.bucket.take(), 0.25)

    def test_refill(self):
        """
        Tokens come back at the rate, up to the burst.
        """
        for _ in range(3):
            self.bucket.take()
        self.clock.advance(0.25)
        self.assertEqual(self.bucket.take(), 0)
        self.assertEqual(self.bucket.wait(), 0.25)
        self.clock.advance(100)
        self.assertEqual([self.bucket.take() for _ in range(4)], [0, 0, 0, 0.25])

    def test_refused_takes_nothing(self):
        """
        A refused take does not use up what refills.
        """
        for _ in range(3):
            self.bucket.take()
        for _ in range(10):
            self.bucket.take()
        self.clock.advance(0.25)
        self.assertEqual(self.bucket.take(), 0)

    def test_unlimited(self):
        """
        Rate 0 means no limit.
        """
        bucket = TokenBucket(rate=0, burst=1, clock=self.clock)
        self.assertEqual([bucket.take() for _ in range(100)], [0.0] * 100)

    def test_spend(self):
        """
        spend takes a token when there is one, and is never refused; an
        empty bucket stays empty, not in debt.
        """
        for _ in range(5):
            self.bucket.spend()
        self.assertEqual(self.bucket.take(), 0.25)
        self.clock.advance(0.25)
        self.assertEqual(self.bucket.take(), 0)
