"""
Waiting on the real reactor: for a condition on collected output, for a
condition polled on a timer, or for a while.
"""

from twisted.internet import defer, reactor, task


class Waiter:
    """
    Deferreds that fire when a condition on collected output becomes true.

    Whatever collects the output calls L{check} after each change.
    """

    def __init__(self):
        self._waiting = []

    def wait_until(self, condition):
        """
        @return: a Deferred firing with C{condition()}'s first true value.
        """
        value = condition()
        if value:
            return defer.succeed(value)
        d = defer.Deferred()
        self._waiting.append((condition, d))
        return d

    def check(self):
        """
        Fire the Deferreds whose condition is now true.
        """
        for entry in list(self._waiting):
            condition, d = entry
            value = condition()
            if value:
                self._waiting.remove(entry)
                d.callback(value)


def poll(predicate, timeout=10.0, interval=0.05):
    """
    For a condition nothing announces (state in another process, say).

    @return: a Deferred that fires once C{predicate()} is true; it fails
        after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout

    def check():
        if predicate():
            return True
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met within %s s" % (timeout,))
        return task.deferLater(reactor, interval, check)

    return defer.maybeDeferred(check)


def sleep(seconds):
    """
    @return: a Deferred that fires after C{seconds} on the reactor.
    """
    return task.deferLater(reactor, seconds, lambda: None)
