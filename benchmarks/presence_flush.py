"""
The cost of hurrying a coalesced flush on a busy reactor: 10,000 timers in
the reactor's heap (one per connection, as the server's TimeoutMixin makes),
then, in one reactor turn, 1000 rooms each get a presence event (whose
flush may wait 10 ms) followed by an urgent one (a message: flush now).

Usage: PYTHONPATH=. python benchmarks/presence_flush.py

Moving a just-made DelayedCall sooner (reset) made the reactor search its
whole heap for a call that is not in it yet: 1.6 s of CPU for this turn;
cancelling it and making a new one: 0.03 s (docs/performance.rst).
"""

import time

from twisted.internet import reactor
from zope.interface import implementer

from twisted_chat.room import IChatClient, Room

TIMERS = 10000
ROOMS = 1000


@implementer(IChatClient)
class Member:
    """
    A member that throws away what it is sent.
    """

    def __init__(self, name):
        self.name = name
        self.session = "s-" + name

    def deliver(self, seq, data, room):
        pass

    def deliver_direct(self, data):
        pass

    def abort(self, reason):
        pass

    def fell_behind(self, seq, room):
        pass


def main():
    timers = [reactor.callLater(3600, lambda: None) for _ in range(TIMERS)]
    rooms = []

    def setup():
        for i in range(ROOMS):
            room = Room(reactor, coalesce=True, name="r%d" % (i,))
            room.join(Member("a%d" % (i,)), 0)
            rooms.append(room)

    def burst():
        start = time.process_time()
        for i, room in enumerate(rooms):
            member = Member("b%d" % (i,))
            room.join(member, room.seq)
            room.message(member, "hi")
        print("%d rooms, presence then urgent, %d timers: %.3f s CPU" % (
            ROOMS, TIMERS, time.process_time() - start))
        reactor.callLater(0.05, stop)

    def stop():
        for timer in timers:
            timer.cancel()
        reactor.stop()

    reactor.callWhenRunning(setup)
    reactor.callLater(0.1, burst)
    reactor.run()


if __name__ == "__main__":
    main()
