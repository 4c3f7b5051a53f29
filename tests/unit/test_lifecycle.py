"""
Tests for L{twisted_chat.lifecycle}: the states of a connection and the
moves between them.
"""

from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import lifecycle
from twisted_chat.lifecycle import (
    CLOSING,
    JOINED,
    LOGIN,
    NEW,
    PENDING,
    RESUMING,
    BadMove,
    move,
)


class MoveTests(SynchronousTestCase):
    """
    L{move}.
    """

    def walk(self, *states):
        state = NEW
        for new in states:
            state = move(state, new)
        return state

    def test_guest_paths(self):
        """
        A guest joins from pending, at once or through a resume.
        """
        self.assertEqual(self.walk(PENDING, JOINED, CLOSING), CLOSING)
        self.assertEqual(self.walk(PENDING, RESUMING, JOINED), JOINED)

    def test_login_paths(self):
        """
        With accounts, a refused resume goes back to login.
        """
        self.assertEqual(self.walk(LOGIN, RESUMING, LOGIN, JOINED), JOINED)

    def test_refused_connection(self):
        """
        A refused connection closes without being welcomed.
        """
        self.assertEqual(self.walk(CLOSING), CLOSING)

    def test_bad_moves(self):
        """
        Moves the drawing does not have are refused.
        """
        for path, bad in [
            ((PENDING, JOINED), RESUMING),
            ((PENDING, JOINED), PENDING),
            ((CLOSING,), JOINED),
            ((), JOINED),
            ((PENDING, JOINED, CLOSING), CLOSING),
        ]:
            state = self.walk(*path)
            error = self.assertRaises(BadMove, move, state, bad)
            self.assertIn("cannot go from %s to %s" % (state, bad), str(error))

    def test_every_state_has_moves(self):
        """
        The table names every state, and only those.
        """
        states = {NEW, PENDING, LOGIN, RESUMING, JOINED, CLOSING}
        self.assertEqual(set(lifecycle.MOVES), states)
        for targets in lifecycle.MOVES.values():
            self.assertLessEqual(set(targets), states - {NEW})
