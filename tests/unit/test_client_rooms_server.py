"""
The stdio client's rooms against the real server, connected in memory on
one clock: what the client relies on, checked end to end.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.client import ChatClient, ChatClientProtocol
from twisted_chat.server import ChatServerFactory


class RoomsInMemoryTests(SynchronousTestCase):
    """
    Clients in rooms through the real server.
    """

    def setUp(self):
        self.clock = Clock()
        self.factory = ChatServerFactory(clock=self.clock, heartbeat_interval=10.0, timeout=30.0)
        self.pumps = []

    def connect(self, nick):
        """
        A client named C{nick}, welcomed and renamed; its stdout lines.
        """
        lines = []
        chat = ChatClient(self.clock, "memory", lines.append, lines.append, nick=nick)
        address = IPv4Address("TCP", "127.0.0.1", 1000 + len(self.pumps))
        _, _, pump = iosim.connectedServerAndClient(
            lambda: self.factory.buildProtocol(address),
            lambda: ChatClientProtocol(self.clock, chat),
        )
        self.pumps.append(pump)
        self.flush()
        return chat, lines

    def flush(self):
        self.clock.advance(0)
        while any([pump.flush() for pump in self.pumps]):
            self.clock.advance(0)

    def type(self, chat, *lines):
        for line in lines:
            chat.line_received(line)
        self.flush()

    def test_join_talk_part(self):
        """
        /join, a line in the room, seen by another member as the current
        room's and by a lobby-only client not at all; /part brings the
        lobby back.
        """
        alice, alice_lines = self.connect("alice")
        bob, bob_lines = self.connect("bob")
        carol, carol_lines = self.connect("carol")
        self.type(alice, "/join dev")
        self.type(bob, "/join dev")
        self.type(alice, "hello dev")
        self.type(carol, "hello lobby")
        self.assertIn("* you joined #dev (1 member)", alice_lines)
        self.assertIn("* you joined #dev (2 members)", bob_lines)
        self.assertIn("> alice: hello dev", bob_lines)
        self.assertIn("#lobby > carol: hello lobby", bob_lines)
        self.assertIn("> carol: hello lobby", carol_lines)
        self.assertFalse([line for line in carol_lines if "dev" in line])
        self.assertEqual(bob.current, "dev")
        self.type(bob, "/part", "back")
        self.assertIn("* current room: #lobby", bob_lines)
        self.assertEqual(carol_lines[-1], "> bob: back")
        self.assertEqual(bob.rooms.keys(), {"lobby"})
        self.assertFalse([line for line in alice_lines + bob_lines if "missed" in line])

    def test_who_rooms_topic(self):
        """
        /who marks the operator, /rooms lists both rooms, /topic sets and
        shows the topic.
        """
        alice, alice_lines = self.connect("alice")
        bob, bob_lines = self.connect("bob")
        self.type(alice, "/join dev", "/topic releases")
        self.type(bob, "/join dev", "/who", "/rooms", "/topic")
        self.assertIn("* topic set by alice: releases", alice_lines)
        self.assertIn("* you joined #dev (2 members); topic: releases", bob_lines)
        self.assertIn("* online: @alice, bob", bob_lines)
        self.assertIn("*   #dev (2 members): releases", bob_lines)
        self.assertIn("*   #lobby (2 members)", bob_lines)
        self.assertEqual(bob_lines[-1], "* topic: releases")
        self.type(bob, "/topic mine")
        # Refused, about the current room: no "#dev: " before the reason.
        self.assertRegex(bob_lines[-1], r"^! [^#]")
        self.assertEqual(bob.outstanding, 0)
        self.type(alice, "/exit")
        self.assertEqual(sorted(bob_lines[-3:]), [
            "* #lobby: alice left (quit)", "* alice left (quit)", "* bob became an operator"])

    def test_batch_with_rooms(self):
        """
        A piped batch with /join and a line in the room ends by itself,
        status 0, once the echo is back.
        """
        alice, alice_lines = self.connect("alice")
        self.type(alice, "/join dev", "in dev", "/part")
        alice.end_of_input()
        self.flush()
        self.assertEqual(self.successResultOf(alice.done), 0)
        self.assertIn("> alice: in dev", alice_lines)

    def test_moderation(self):
        """
        An operator's /op, /kick, /ban and /unban as everybody sees them;
        the kicked client is back in the lobby, and a batch of them (an
        unban of nobody included) ends with nothing outstanding.
        """
        alice, alice_lines = self.connect("alice")
        bob, bob_lines = self.connect("bob")
        carol, carol_lines = self.connect("carol")
        for chat in [alice, bob, carol]:
            self.type(chat, "/join dev")
        self.type(alice, "/op bob", "/kick carol spamming", "/ban carol", "/unban carol",
                  "/unban nobody")
        self.assertEqual(bob_lines[-4:], [
            "* bob was made an operator by alice",
            "* carol left (kicked by alice: spamming)",
            "* carol was banned by alice",
            "* carol was unbanned by alice",
        ])
        self.assertEqual(carol_lines[-2:], [
            "* carol left (kicked by alice: spamming)", "* current room: #lobby"])
        self.assertEqual((carol.current, carol.typing_room), ("lobby", "lobby"))
        self.assertEqual(alice.outstanding, 0)
        self.type(carol, "/join dev", "back")
        self.assertEqual(alice_lines[-1], "> carol: back")
