"""
A helper for the L{IDelayedCall}s that protocols keep in attributes.
"""


def cancelled(call):
    """
    Cancel C{call} if it is still pending.

    @return: L{None}, to store back into the attribute that held the call:
        C{self._timer = cancelled(self._timer)}.
    """
    if call is not None and call.active():
        call.cancel()
    return None
