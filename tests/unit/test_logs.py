"""
Tests for L{twisted_chat.logs.LineBudget}.
"""

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.logs import LineBudget


class LineBudgetTests(SynchronousTestCase):
    """
    At most so many routine lines a second; the rest counted and summed up.
    """

    def setUp(self):
        self.clock = Clock()
        self.budget = LineBudget(self.clock, 3)

    def summaries(self, events):
        return [e for e in events if "more lines not logged" in e["log_format"]]

    def test_within_budget(self):
        """
        Up to the budget, every line is allowed and nothing is summed up.
        """
        with capturedLogs() as events:
            self.assertEqual([self.budget.allow("connected") for _ in range(3)], [True] * 3)
            self.clock.advance(1)
            self.assertTrue(self.budget.allow("connected"))
            self.clock.advance(5)
        self.assertEqual(self.summaries(events), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_over_budget_summed_up(self):
        """
        Lines over the budget are refused, counted by kind, and summed up
        in one line at the end of the second; then lines are allowed again.
        """
        with capturedLogs() as events:
            allowed = [self.budget.allow("connected") for _ in range(6)]
            allowed += [self.budget.allow("left: timeout") for _ in range(2)]
            self.assertEqual(allowed, [True] * 3 + [False] * 5)
            self.clock.advance(0.5)
            self.assertEqual(self.summaries(events), [])
            self.clock.advance(0.5)
            (summary,) = self.summaries(events)
            self.assertEqual(summary["count"], 5)
            self.assertEqual(summary["limit"], 3)
            self.assertEqual(summary["kinds"], "3 connected, 2 left: timeout")
            self.assertTrue(self.budget.allow("connected"))

    def test_no_limit(self):
        """
        A budget of 0 allows every line and never sums up.
        """
        budget = LineBudget(self.clock, 0)
        with capturedLogs() as events:
            self.assertTrue(all(budget.allow("connected") for _ in range(1000)))
            budget.sum_up()
        self.assertEqual(self.summaries(events), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sum_up_now(self):
        """
        sum_up (the server stopping) logs what is held at once and leaves
        no timer behind.
        """
        for _ in range(4):
            self.budget.allow("connected")
        with capturedLogs() as events:
            self.budget.sum_up()
        self.assertEqual(self.summaries(events)[0]["kinds"], "1 connected")
        self.assertEqual(self.clock.getDelayedCalls(), [])
