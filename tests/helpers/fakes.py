"""
Fakes for the parts a unit under test talks to.
"""

from zope.interface import implementer

from twisted_chat.room import IChatClient
from tests.helpers.memory import parse_frames


@implementer(IChatClient)
class FakeClient:
    """
    A room member that records what it is sent.
    """

    def __init__(self, name):
        self.name = name
        self.session = "session-" + name
        self.frames = []
        self.aborted = None
        self.behind = []
        self.parts = []

    def deliver(self, seq, data, room=None):
        """
        Record the frame C{data}.
        """
        self.frames.append(data)

    def deliver_direct(self, data):
        """
        Record the frames of direct messages.
        """
        self.frames.append(data)

    def abort(self, reason):
        """
        Record why the room dropped this member.
        """
        self.aborted = reason

    def fell_behind(self, seq, room=None):
        """
        Record that this member fell behind at C{seq}.
        """
        self.behind.append(seq)

    def parted(self, room, seq):
        """
        Record that this member was told it is out of C{room} at C{seq}.
        """
        self.parts.append((room.name, seq))

    def events(self):
        """
        The messages delivered since last asked; forgets them.
        """
        messages = parse_frames(b"".join(self.frames))
        del self.frames[:]
        return messages
