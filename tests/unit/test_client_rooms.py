"""
Tests for the stdio client's rooms and direct messages: the commands, what
is sent, what is shown, batch mode, and resumes, against fake server
frames on a L{StringTransport} and a L{Clock}.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.client import (
    DRAIN_TIMEOUT,
    EXIT_OK,
    EXIT_REFUSED,
    ChatClient,
    ChatClientProtocol,
    render,
)
from twisted_chat.client.console import rooms_lines
from twisted_chat.client.rooms import Room, is_name, pick_current, same_room
from tests.helpers.memory import frame, parse_frames

#: A welcome from a server with rooms and direct messages.
WELCOME = {
    "type": "welcome",
    "protocol": 1,
    "session": "s1",
    "name": "me",
    "heartbeat_interval": 10.0,
    "timeout": 30.0,
    "max_frame": 65536,
    "max_text": 4096,
    "seq": 4,
    "dseq": 0,
}


class RoomClientMixin:
    """
    A L{ChatClient} on a L{StringTransport}, fed server frames; its stdout
    and stderr lines in C{self.lines} and C{self.errors}.
    """

    batch = False
    reconnect = False
    nick = None

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.lines = []
        self.errors = []
        self.client = ChatClient(
            self.clock, "h:1", self.lines.append, self.errors.append, nick=self.nick,
            reconnect=self.reconnect, batch=self.batch)
        self.connect()

    def connect(self):
        self.protocol = ChatClientProtocol(self.clock, self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def deliver(self, **message):
        self.protocol.dataReceived(frame(**message))

    def welcome(self, **overrides):
        self.deliver(**dict(WELCOME, **overrides))
        del self.lines[:]

    def sent(self):
        messages = parse_frames(self.transport.value())
        self.transport.clear()
        return messages

    def type(self, *lines):
        for line in lines:
            self.client.line_received(line)

    def lose(self):
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def joined(self, room, seq=0, members=1, topic="", id=None):
        message = dict(type="joined", room=room, seq=seq, members=members, topic=topic,
                       presence=True)
        if id is not None:
            message["id"] = id
        self.deliver(**message)

    def say(self, text, seq, room=None, name="me"):
        message = {"type": "message", "seq": seq, "from": name, "text": text, "time": 0}
        if room is not None:
            message["room"] = room
        self.deliver(**message)

    def join_dev(self):
        """
        /join dev, answered; what was sent and shown is cleared.
        """
        self.type("/join dev")
        self.joined("dev", seq=0, id=1)
        self.sent()
        del self.lines[:]


class HelpersTests(SynchronousTestCase):
    """
    Room names and the choice of the next current room.
    """

    def test_names(self):
        """
        A room name is 1 to 32 of A-Z a-z 0-9 _ -.
        """
        for good in ["dev", "a", "A-b_9", "x" * 32]:
            self.assertTrue(is_name(good), good)
        for bad in ["", "x" * 33, "a b", "#dev", "dév", None, 5]:
            self.assertFalse(is_name(bad), bad)

    def test_same_room(self):
        """
        Room names are compared ignoring case; None is no room.
        """
        self.assertTrue(same_room("Dev", "dEV"))
        self.assertFalse(same_room("dev", "dev2"))
        self.assertFalse(same_room(None, None))

    def test_pick_current(self):
        """
        The lobby if one is in it, else the room joined last, else None.
        """
        self.assertEqual(pick_current(["a", "lobby", "b"]), "lobby")
        self.assertEqual(pick_current(["a", "b"]), "b")
        self.assertIsNone(pick_current([]))

    def test_room_repr(self):
        """
        A Room shows its name and seq.
        """
        self.assertEqual(repr(Room("dev", 3)), "<Room 'dev' seq=3>")


class RoomRenderTests(SynchronousTestCase):
    """
    L{render} with rooms: the current room's lines as before, other rooms'
    with the room's name.
    """

    def test_current_room_unchanged(self):
        """
        Events of the current room (the lobby's with or without "room")
        look as they did before rooms.
        """
        cases = [
            ({"type": "message", "room": "dev", "from": "alice", "text": "hello"},
             "dev", "> alice: hello"),
            ({"type": "message", "room": "lobby", "from": "alice", "text": "hello"},
             "lobby", "> alice: hello"),
            ({"type": "join", "name": "bob"}, "lobby", "* bob joined"),
            ({"type": "join", "room": "Dev", "name": "bob"}, "dev", "* bob joined"),
        ]
        for message, current, line in cases:
            self.assertEqual(render(message, current), line)

    def test_other_rooms(self):
        """
        Another room's events carry its name.
        """
        cases = [
            ({"type": "message", "room": "dev", "from": "alice", "text": "hello"},
             "#dev > alice: hello"),
            ({"type": "join", "room": "dev", "name": "bob"}, "* #dev: bob joined"),
            ({"type": "leave", "room": "dev", "name": "bob", "reason": "part", "message": "bye"},
             "* #dev: bob left (part: bye)"),
            ({"type": "nick", "room": "dev", "old": "a", "new": "b"}, "* #dev: a is now b"),
            ({"type": "error", "room": "dev", "code": "not_op", "message": "not an operator"},
             "! #dev: not an operator"),
        ]
        for message, line in cases:
            self.assertEqual(render(message, "lobby"), line)

    def test_lobby_when_elsewhere(self):
        """
        In another room, the lobby's events (with or without "room") name
        the lobby; errors about no room do not.
        """
        self.assertEqual(
            render({"type": "message", "from": "a", "text": "b"}, "dev"), "#lobby > a: b")
        self.assertEqual(render({"type": "join", "name": "a"}, None), "* #lobby: a joined")
        self.assertEqual(render({"type": "error", "message": "slow down"}, "dev"), "! slow down")

    def test_moderation(self):
        """
        Kicks, bans, unbans, operators and topics have one line each.
        """
        cases = [
            ({"type": "leave", "name": "bob", "reason": "kicked", "by": "alice",
              "message": "spam"}, "* bob left (kicked by alice: spam)"),
            ({"type": "leave", "name": "bob", "reason": "kicked", "by": "alice"},
             "* bob left (kicked by alice)"),
            ({"type": "ban", "name": "bob", "by": "alice"}, "* bob was banned by alice"),
            ({"type": "unban", "name": "bob", "by": "alice"}, "* bob was unbanned by alice"),
            ({"type": "op", "name": "bob", "by": "alice"},
             "* bob was made an operator by alice"),
            ({"type": "op", "name": "bob", "by": None}, "* bob became an operator"),
            ({"type": "topic", "by": "alice", "topic": "releases"},
             "* topic set by alice: releases"),
            ({"type": "topic", "by": "alice", "topic": ""}, "* topic cleared by alice"),
        ]
        for message, line in cases:
            message = dict(message, room="dev", seq=1)
            self.assertEqual(render(message, "dev"), line)
            self.assertEqual(render(message, "lobby"), line[:2] + "#dev: " + line[2:])

    def test_direct(self):
        """
        A direct message received is *from* text; our own copy is
        -> *to* text.
        """
        message = {"type": "direct", "dseq": 1, "from": "alice", "to": "me", "text": "hi"}
        self.assertEqual(render(message, "lobby", "me"), "*alice* hi")
        self.assertEqual(render(message, "dev", "alice"), "-> *me* hi")
        self.assertEqual(render(message, None), "*alice* hi")

    def test_who(self):
        """
        /who's answer marks operators with @, and names a room that is not
        the current one.
        """
        message = {"type": "who", "room": "dev", "names": ["alice", "bob"], "ops": ["alice"]}
        self.assertEqual(render(message, "dev"), "* online: @alice, bob")
        self.assertEqual(render(message, "lobby"), "* in #dev: @alice, bob")
        self.assertEqual(render({"type": "who", "names": ["a"], "ops": [["x"]]}), "* online: a")

    def test_joined_parted(self):
        """
        Our joins and parts name the room, with its members and topic.
        """
        self.assertEqual(
            render({"type": "joined", "room": "dev", "seq": 0, "members": 1, "topic": ""}),
            "* you joined #dev (1 member)")
        self.assertEqual(
            render({"type": "joined", "room": "dev", "seq": 9, "members": 3, "topic": "x"}, "dev"),
            "* you joined #dev (3 members); topic: x")
        self.assertEqual(render({"type": "parted", "room": "dev", "seq": 9}), "* you left #dev")

    def test_shown_topic(self):
        """
        A topic without "by" is what /topic shows.
        """
        self.assertEqual(render({"type": "topic", "room": "dev", "topic": "t"}, "dev"),
                         "* topic: t")
        self.assertEqual(render({"type": "topic", "room": "dev", "topic": ""}, "dev"),
                         "* no topic")

    def test_rooms_list(self):
        """
        /rooms: one line per room, its members and topic; or no rooms.
        """
        self.assertEqual(rooms_lines([
            {"room": "dev", "members": 3, "topic": "code"},
            {"room": "lobby", "members": 1, "topic": ""},
        ]), ["* rooms:", "*   #dev (3 members): code", "*   #lobby (1 member)"])
        self.assertEqual(rooms_lines([]), ["* no rooms"])
        self.assertEqual(rooms_lines([{"members": True}]), ["* rooms:", "*   #? (?)"])

    def test_sanitized(self):
        """
        Room names and topics from the network cannot reach the terminal
        raw.
        """
        self.assertEqual(
            render({"type": "join", "room": "d\x1b[2J", "name": "a"}), "* #d\\x1b[2J: a joined")
        self.assertEqual(
            rooms_lines([{"room": "x", "members": 1, "topic": "\x07"}])[1],
            "*   #x (1 member): \\x07")


class LobbyOnlyTests(RoomClientMixin, SynchronousTestCase):
    """
    A session that never uses rooms sends and shows what it did before,
    on a server with rooms too.
    """

    def test_frames_and_lines(self):
        """
        Plain lines and /who have no room; the lobby's events (now with
        "room") look as before.
        """
        self.welcome()
        self.type("hello", "/who")
        self.assertEqual(self.sent(), [{"type": "message", "text": "hello"}, {"type": "who"}])
        self.say("hello", 5, room="lobby")
        self.deliver(type="join", seq=6, room="lobby", name="bob")
        self.deliver(type="who", room="lobby", names=["me", "bob"], ops=[])
        self.assertEqual(self.lines, ["> me: hello", "* bob joined", "* online: me, bob"])

    def test_resume_frame(self):
        """
        Its resume is today's, with the dseq of the direct messages.
        """
        self.welcome()
        self.deliver(type="lagged", missed_from=5)
        self.assertEqual(
            self.sent(), [{"type": "resume", "session": "s1", "last_seq": 4, "last_dseq": 0}])


class JoinTests(RoomClientMixin, SynchronousTestCase):
    """
    /join and the current room.
    """

    def test_join_sent(self):
        """
        /join sends join with an id; a leading # is allowed.
        """
        self.welcome()
        self.type("/join #dev")
        self.assertEqual(self.sent(), [{"type": "join", "room": "dev", "id": 1}])

    def test_lines_wait_for_joined(self):
        """
        Lines typed after /join go to the room, once the server says we
        are in it.
        """
        self.welcome()
        self.type("/join dev", "hello")
        self.assertEqual(len(self.sent()), 1)
        self.joined("dev", id=1)
        self.assertEqual(self.sent(), [{"type": "message", "text": "hello", "room": "dev"}])
        self.assertEqual(self.lines, ["* you joined #dev (1 member)"])

    def test_joined_without_id(self):
        """
        A joined frame that does not echo the id answers the join of its
        room (any case).
        """
        self.welcome()
        self.type("/join Dev", "hi")
        self.sent()
        self.joined("dev")
        self.assertEqual(self.sent(), [{"type": "message", "text": "hi", "room": "Dev"}])
        self.assertEqual(self.client.current, "dev")

    def test_current_room_display(self):
        """
        Once in dev, dev's lines look as before and the lobby's carry its
        name.
        """
        self.welcome()
        self.join_dev()
        self.say("hi", 1, room="dev", name="bob")
        self.say("hey", 5, room="lobby", name="carol")
        self.deliver(type="join", seq=2, room="dev", name="dave")
        self.assertEqual(self.lines, ["> bob: hi", "#lobby > carol: hey", "* dave joined"])

    def test_seq_per_room(self):
        """
        Each room has its own seq: a gap is reported for its room, and an
        event seen already in one room is dropped there only.
        """
        self.welcome(seq=4)
        self.join_dev()
        self.say("one", 1, room="dev", name="bob")
        self.say("lobby", 5, room="lobby", name="bob")
        self.say("again", 1, room="dev", name="bob")
        self.say("four", 4, room="dev", name="bob")
        self.say("late", 8, room="lobby", name="bob")
        self.assertEqual(self.lines, [
            "> bob: one",
            "#lobby > bob: lobby",
            "! missed events 2..3",
            "> bob: four",
            "! #lobby: missed events 6..7",
            "#lobby > bob: late",
        ])
        self.assertEqual(self.client.missed_events, 4)

    def test_join_again(self):
        """
        Joining a room we are in answers with its seq, reports no gap and
        makes it current again.
        """
        self.welcome()
        self.join_dev()
        self.say("x", 1, room="dev", name="bob")
        self.type("/join lobby")
        self.joined("lobby", seq=4, members=2, id=2)
        self.type("/join dev")
        self.joined("dev", seq=1, members=2, id=3)
        self.assertEqual(self.client.current, "dev")
        self.assertFalse([line for line in self.lines if "missed" in line])

    def test_bad_room_name(self):
        """
        A name that is not a room's, or none, is refused locally.
        """
        self.welcome()
        self.type("/join a b", "/join", "/part #", "/who x!")
        self.assertEqual(self.lines, [
            "! bad room name a b: 1 to 32 of A-Z a-z 0-9 _ -",
            "! usage: /join ROOM",
            "! usage: /part [ROOM]",
            "! bad room name x!: 1 to 32 of A-Z a-z 0-9 _ -",
        ])
        self.assertEqual(self.sent(), [])

    def test_refused(self):
        """
        A refused join is one line; the room does not become current, and
        the lines typed after it are not sent anywhere.
        """
        self.welcome()
        self.type("/join dev", "for dev")
        self.sent()
        self.deliver(type="error", code="banned", room="dev", id=1, message="you are banned")
        self.type("for the lobby")
        self.assertEqual(self.sent(), [{"type": "message", "text": "for the lobby"}])
        self.assertEqual(self.lines, [
            "! #dev: you are banned", "! not sent: you are not in #dev"])
        self.assertEqual(self.client.current, "lobby")

    def test_unsolicited_joined(self):
        """
        A joined we did not ask for (a resume's) adds the room, shown,
        without making it current.
        """
        self.welcome()
        self.joined("ops", seq=7, members=2)
        self.say("x", 8, room="ops", name="bob")
        self.assertEqual(self.lines, ["* you joined #ops (2 members)", "#ops > bob: x"])
        self.assertEqual(sorted(self.client.rooms), ["lobby", "ops"])
        self.assertEqual(self.client.current, "lobby")


class PartTests(RoomClientMixin, SynchronousTestCase):
    """
    /part and which room is current after it.
    """

    def test_part_current_back_to_lobby(self):
        """
        After /part of the current room, the lobby is current again.
        """
        self.welcome()
        self.join_dev()
        self.type("/part", "back")
        self.assertEqual(self.sent(), [
            {"type": "part", "room": "dev", "id": 2}, {"type": "message", "text": "back"}])
        self.deliver(type="leave", seq=1, room="dev", name="me", reason="part")
        self.assertEqual(self.lines, ["* me left (part)", "* current room: #lobby"])
        self.assertEqual(self.client.current, "lobby")
        self.assertNotIn("dev", self.client.rooms)

    def test_part_to_last_joined(self):
        """
        Out of the lobby, the room joined most recently becomes current.
        """
        self.welcome()
        self.type("/join a")
        self.joined("a", id=1)
        self.type("/join b")
        self.joined("b", id=2)
        self.type("/join c")
        self.joined("c", id=3)
        self.type("/part lobby", "/part c", "to b")
        self.deliver(type="parted", room="lobby", seq=4)
        self.deliver(type="parted", room="c", seq=0)
        self.assertEqual(self.client.current, "b")
        self.assertEqual(self.lines[-1], "* current room: #b")
        self.assertEqual(self.sent()[-1], {"type": "message", "text": "to b", "room": "b"})

    def test_rename_in_no_room(self):
        """
        A rename in no room, which no room announces, is known done by the
        heartbeat_ack after it.
        """
        self.welcome()
        self.type("/part")
        self.deliver(type="parted", room="lobby", seq=4)
        self.sent()
        self.type("/nick alice")
        self.assertEqual(self.sent(), [
            {"type": "nick", "name": "alice", "id": 2}, {"type": "heartbeat", "id": 2}])
        self.deliver(type="heartbeat_ack", now=1.0, id=2)
        self.assertEqual(self.client.name, "alice")
        self.assertEqual(self.lines[-1], "* you are now alice")
        self.assertEqual(self.client.outstanding, 0)

    def test_rename_refused_in_no_room(self):
        """
        A refused rename in no room keeps the name; the ack after does not
        change it.
        """
        self.welcome()
        self.type("/part")
        self.deliver(type="parted", room="lobby", seq=4)
        self.type("/nick alice")
        self.deliver(type="error", code="nick_taken", id=2, message="taken")
        self.deliver(type="heartbeat_ack", now=1.0, id=2)
        self.assertEqual(self.client.name, "me")
        self.assertEqual(self.lines[-1], "! taken")

    def test_in_no_room(self):
        """
        In no room, a plain line is not sent; /join makes one.
        """
        self.welcome()
        self.type("/part")
        self.deliver(type="parted", room="lobby", seq=4)
        self.type("hello", "/topic", "/kick bob")
        self.assertEqual(self.lines, [
            "* you left #lobby",
            "* you are in no room now; /join one",
            "! you are in no room; /join one",
            "! you are in no room; /join one",
            "! you are in no room; /join one",
        ])
        self.assertEqual(self.sent(), [{"type": "part", "room": "lobby", "id": 1}])

    def test_part_other_room(self):
        """
        /part of another room leaves the current one current.
        """
        self.welcome()
        self.join_dev()
        self.type("/part lobby")
        self.deliver(type="leave", seq=5, room="lobby", name="me", reason="part")
        self.assertEqual(self.lines, ["* #lobby: me left (part)"])
        self.assertEqual(self.client.current, "dev")

    def test_part_refused(self):
        """
        A refused part (an old server) keeps the room: lines go there again.
        """
        self.welcome()
        self.type("/part")
        self.deliver(type="error", code="unknown_type", id=1, message="unknown message type 'part'")
        self.type("still here")
        self.assertEqual(self.sent()[-1], {"type": "message", "text": "still here"})

    def test_kicked(self):
        """
        Kicked from the current room: shown, and the lobby is current again
        (for what is typed too).
        """
        self.welcome()
        self.join_dev()
        self.deliver(type="leave", seq=1, room="dev", name="me", reason="kicked", by="op1",
                     message="spam")
        self.type("after")
        self.assertEqual(self.lines, [
            "* me left (kicked by op1: spam)", "* current room: #lobby"])
        self.assertEqual(self.sent(), [{"type": "message", "text": "after"}])

    def test_replayed_leave_keeps_room(self):
        """
        Our own leave for a connection's end (replayed after a resume) does
        not end the membership.
        """
        self.welcome()
        self.join_dev()
        self.deliver(type="leave", seq=1, room="dev", name="me", reason="timeout")
        self.assertIn("dev", self.client.rooms)
        self.assertEqual(self.client.current, "dev")


class DirectTests(RoomClientMixin, SynchronousTestCase):
    """
    /msg and direct frames.
    """

    def direct(self, dseq, sender, to, text):
        self.deliver(type="direct", dseq=dseq, to=to, text=text, time=0, **{"from": sender})

    def test_msg(self):
        """
        /msg sends a message with "to"; our copy and a reply are shown.
        """
        self.welcome()
        self.type("/msg bob  hello there")
        self.assertEqual(
            self.sent(), [{"type": "message", "to": "bob", "text": "hello there"}])
        self.direct(1, "me", "bob", "hello there")
        self.direct(2, "bob", "me", "hi")
        self.assertEqual(self.lines, ["-> *bob* hello there", "*bob* hi"])

    def test_dseq(self):
        """
        A gap in dseq is reported; a direct message seen already is
        dropped.
        """
        self.welcome()
        self.direct(1, "bob", "me", "a")
        self.direct(1, "bob", "me", "a")
        self.direct(4, "bob", "me", "d")
        self.assertEqual(self.lines, ["*bob* a", "! missed direct messages 2..3", "*bob* d"])
        self.assertEqual(self.client.last_dseq, 4)

    def test_usage(self):
        """
        /msg needs a name and a text.
        """
        self.welcome()
        self.type("/msg", "/msg bob", "/msg bob   ")
        self.assertEqual(self.lines, ["! usage: /msg NAME TEXT"] * 3)
        self.assertEqual(self.sent(), [])

    def test_server_without_direct(self):
        """
        A server whose welcome has no dseq would send a direct message to
        everybody: it is not sent.
        """
        welcome = dict(WELCOME)
        del welcome["dseq"]
        self.deliver(**welcome)
        del self.lines[:]
        self.type("/msg bob secret")
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.lines, ["! not sent: this server has no direct messages"])

    def test_too_long(self):
        """
        A direct message over max_text is refused locally.
        """
        self.welcome(max_text=5)
        self.type("/msg bob 123456")
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.lines, ["! message too long (6 characters, the limit is 5)"])

    def test_in_no_room(self):
        """
        Direct messages need no room.
        """
        self.welcome()
        self.type("/part")
        self.deliver(type="parted", room="lobby", seq=4)
        self.sent()
        self.type("/msg bob hi")
        self.assertEqual(self.sent(), [{"type": "message", "to": "bob", "text": "hi"}])


class ListTests(RoomClientMixin, SynchronousTestCase):
    """
    /who, /rooms and /topic.
    """

    def test_who_room(self):
        """
        /who goes to the current room, or the one named; pages of several
        rooms are gathered apart.
        """
        self.welcome()
        self.join_dev()
        self.type("/who", "/who lobby", "/who #ops")
        self.assertEqual(self.sent(), [
            {"type": "who", "room": "dev"}, {"type": "who"}, {"type": "who", "room": "ops"}])
        self.deliver(type="who", room="dev", names=["a"], ops=["a"], more=True)
        self.deliver(type="who", room="lobby", names=["me"], ops=[])
        self.deliver(type="who", room="dev", names=["me"], ops=[])
        self.deliver(type="error", code="no_such_room", room="ops", message="no room ops")
        self.assertEqual(self.lines, [
            "* in #lobby: me", "* online: @a, me", "! #ops: no room ops"])

    def test_rooms(self):
        """
        /rooms asks for the list (with a prefix: match), and shows it once
        all pages have come.
        """
        self.welcome()
        self.type("/rooms", "/rooms #de")
        self.assertEqual(self.sent(), [{"type": "rooms"}, {"type": "rooms", "match": "de"}])
        self.deliver(type="rooms", rooms=[{"room": "dev", "members": 2, "topic": ""}], more=True)
        self.assertEqual(self.lines, [])
        self.deliver(type="rooms", rooms=[{"room": "lobby", "members": 5, "topic": "hi"}])
        self.deliver(type="rooms", rooms=[])
        self.assertEqual(self.lines, [
            "* rooms:", "*   #dev (2 members)", "*   #lobby (5 members): hi", "* no rooms"])

    def test_topic_shown(self):
        """
        /topic without text shows the current room's topic: the joined's,
        then the last set.
        """
        self.welcome()
        self.type("/topic", "/join dev", "/topic")
        self.joined("dev", topic="first", id=1)
        self.deliver(type="topic", room="dev", seq=1, by="bob", topic="second")
        self.type("/topic")
        self.assertEqual(self.lines, [
            "* no topic",
            "* you joined #dev (1 member); topic: first",
            "* topic: first",
            "* topic set by bob: second",
            "* topic: second",
        ])
        self.assertEqual(self.sent(), [{"type": "join", "room": "dev", "id": 1}])

    def test_help(self):
        """
        /help lists every command.
        """
        self.welcome()
        self.type("/help")
        for command in ["/join ROOM", "/part [ROOM]", "/rooms [PREFIX]", "/msg NAME TEXT",
                        "/who [ROOM]", "/topic [TEXT]", "/kick NAME [REASON]", "/ban NAME",
                        "/unban NAME", "/op NAME", "/nick NAME", "/exit [TEXT]"]:
            self.assertTrue([line for line in self.lines if line.startswith("*   " + command)],
                            command)


class ModerationTests(RoomClientMixin, SynchronousTestCase):
    """
    /topic TEXT, /kick, /ban, /unban, /op: each is followed by a heartbeat
    with its id, whose answer (or an error) answers it.
    """

    def test_frames(self):
        """
        Each sends its frame for the current room, with an id, and a
        heartbeat with the same id.
        """
        self.welcome()
        self.join_dev()
        self.type("/topic new topic", "/kick bob  too loud", "/kick carol", "/ban bob",
                  "/unban bob", "/op dave")
        self.assertEqual(self.sent(), [
            {"type": "topic", "room": "dev", "topic": "new topic", "id": 2},
            {"type": "heartbeat", "id": 2},
            {"type": "kick", "room": "dev", "name": "bob", "reason": "too loud", "id": 3},
            {"type": "heartbeat", "id": 3},
            {"type": "kick", "room": "dev", "name": "carol", "id": 4},
            {"type": "heartbeat", "id": 4},
            {"type": "ban", "room": "dev", "name": "bob", "id": 5},
            {"type": "heartbeat", "id": 5},
            {"type": "unban", "room": "dev", "name": "bob", "id": 6},
            {"type": "heartbeat", "id": 6},
            {"type": "op", "room": "dev", "name": "dave", "id": 7},
            {"type": "heartbeat", "id": 7},
        ])

    def test_usage(self):
        """
        Each needs a name.
        """
        self.welcome()
        self.type("/kick", "/ban", "/unban a b", "/op")
        self.assertEqual(self.lines, [
            "! usage: /kick NAME [REASON]", "! usage: /ban NAME", "! usage: /unban NAME",
            "! usage: /op NAME"])
        self.assertEqual(self.sent(), [])

    def test_answered(self):
        """
        The heartbeat_ack, or an error, answers a request once.
        """
        self.welcome()
        self.type("/unban bob", "/op bob")
        self.assertEqual(self.client.outstanding, 2)
        self.deliver(type="heartbeat_ack", now=1.0, id=1)
        self.assertEqual(self.client.outstanding, 1)
        self.deliver(type="error", code="not_op", id=2, message="not an operator")
        self.deliver(type="heartbeat_ack", now=1.0, id=2)
        self.deliver(type="heartbeat_ack", now=1.0, id=1)
        self.assertEqual(self.client.outstanding, 0)
        self.assertEqual(self.lines, ["! not an operator"])


class OldServerTests(RoomClientMixin, SynchronousTestCase):
    """
    A server without rooms answers the new requests with unknown_type: one
    line each, and the session goes on in the lobby.
    """

    def setUp(self):
        super().setUp()
        welcome = dict(WELCOME)
        del welcome["dseq"]
        self.deliver(**welcome)
        del self.lines[:]

    def test_join(self):
        """
        /join refused: one line; the next line goes to the lobby, as
        today's frame.
        """
        self.type("/join dev", "for dev", "/rooms")
        self.assertEqual(self.sent(), [{"type": "join", "room": "dev", "id": 1}])
        self.deliver(type="error", code="unknown_type", id=1,
                     message="unknown message type 'join'")
        self.assertEqual(self.sent(), [{"type": "rooms"}])
        self.deliver(type="error", code="unknown_type", message="unknown message type 'rooms'")
        self.type("hello")
        self.assertEqual(self.sent(), [{"type": "message", "text": "hello"}])
        self.assertEqual(self.lines, [
            "! unknown message type 'join'",
            "! not sent: you are not in #dev",
            "! unknown message type 'rooms'",
        ])

    def test_resume_frame(self):
        """
        The resume to a server without direct messages has no last_dseq.
        """
        self.deliver(type="lagged", missed_from=5)
        self.assertEqual(self.sent(), [{"type": "resume", "session": "s1", "last_seq": 4}])


class RoomBatchTests(RoomClientMixin, SynchronousTestCase):
    """
    Piped input with rooms and direct messages: the client waits for the
    answers to all of it.
    """

    batch = True
    nick = "me"

    def test_join_and_msg(self):
        """
        --name, /join, a line, /msg: the name is asked for first, each is
        answered, then the client quits with status 0.
        """
        self.type("/join dev", "hello", "/msg bob hi")
        self.client.end_of_input()
        self.deliver(**dict(WELCOME, name="guest-1"))
        self.assertEqual(self.sent(), [
            {"type": "nick", "name": "me", "id": 1}, {"type": "join", "room": "dev", "id": 2}])
        self.deliver(type="nick", seq=5, room="lobby", old="guest-1", new="me")
        self.joined("dev", seq=3, members=2, id=2)
        self.assertEqual(self.sent(), [
            {"type": "message", "text": "hello", "room": "dev"},
            {"type": "message", "to": "bob", "text": "hi"}])
        self.say("hello", 4, room="dev")
        self.assertEqual(self.sent(), [])
        self.deliver(type="direct", dseq=1, to="bob", text="hi", time=0, **{"from": "me"})
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertEqual(self.lines[1:], [
            "* you are guest-1; type /help for help",
            "* guest-1 is now me",
            "* you joined #dev (2 members)",
            "> me: hello",
            "-> *bob* hi",
        ])
        self.assertEqual(self.errors, [])
        self.assertEqual(self.successResultOf(self.client.done), EXIT_OK)

    def test_part_answered(self):
        """
        A part is answered by our leave, or by parted.
        """
        self.type("/join dev", "/part dev", "/part lobby")
        self.client.end_of_input()
        self.welcome()
        self.joined("dev", id=1)
        self.deliver(type="leave", seq=1, room="dev", name="me", reason="part")
        self.assertFalse(self.transport.disconnecting)
        self.deliver(type="parted", room="lobby", seq=4)
        self.assertEqual(self.sent()[-1], {"type": "quit"})

    def test_refused_join(self):
        """
        A refused join fails the batch; the lines for its room are not sent
        anywhere, and are reported on stderr in their turn.
        """
        self.type("/join dev", "secret plans", "/part")
        self.client.end_of_input()
        self.welcome()
        self.sent()
        self.deliver(type="error", code="banned", room="dev", id=1, message="banned")
        self.assertEqual(self.sent(), [{"type": "part", "room": "dev", "id": 2}])
        self.deliver(type="error", code="not_in_room", room="dev", id=2, message="not in dev")
        self.assertEqual(self.sent(), [{"type": "quit"}])
        self.lose()
        self.assertEqual(self.errors, [
            "! #dev: banned", "! not sent: you are not in #dev", "! #dev: not in dev"])
        self.assertEqual(self.successResultOf(self.client.done), EXIT_REFUSED)

    def test_moderation_waited_for(self):
        """
        A batch with /unban ends once its heartbeat is answered, even if
        nothing else answers it.
        """
        self.type("/unban bob")
        self.client.end_of_input()
        self.welcome()
        self.sent()
        self.clock.advance(DRAIN_TIMEOUT - 1)
        self.assertFalse(self.transport.disconnecting)
        self.deliver(type="heartbeat_ack", now=1.0, id=1)
        self.assertEqual(self.sent(), [{"type": "quit"}])

    def test_topic_in_turn(self):
        """
        /topic without text, after /topic TEXT, shows the new topic.
        """
        self.type("/topic fresh", "/topic")
        self.client.end_of_input()
        self.welcome()
        self.sent()
        self.deliver(type="topic", room="lobby", seq=5, by="me", topic="fresh")
        self.assertEqual(self.lines, ["* topic set by me: fresh"])
        self.deliver(type="heartbeat_ack", now=1.0, id=1)
        self.assertEqual(self.lines[-1], "* topic: fresh")
        self.assertEqual(self.sent(), [{"type": "quit"}])


class RoomResumeTests(RoomClientMixin, SynchronousTestCase):
    """
    --reconnect and lagged with rooms and direct messages: the resume asks
    for every room and the direct stream, and what cannot be replayed is
    reported.
    """

    reconnect = True

    def setUp(self):
        super().setUp()
        self.welcome(seq=4)
        self.join_dev()
        self.say("d1", 1, room="dev", name="bob")
        self.deliver(type="direct", dseq=1, to="me", text="psst", time=0, **{"from": "bob"})
        del self.lines[:]

    def reconnect_with(self, **welcome):
        self.lose()
        self.connect()
        self.deliver(**dict(WELCOME, session="s2", seq=9, dseq=0, name="guest-9", **welcome))

    def test_resume_frame(self):
        """
        The resume names the lobby's seq, every other room's, and the
        direct stream's dseq.
        """
        self.reconnect_with()
        self.assertEqual(self.sent(), [{
            "type": "resume", "session": "s1", "last_seq": 4, "rooms": {"dev": 1},
            "last_dseq": 1}])

    def test_replayed(self):
        """
        The replay of each room and of the direct messages is shown, then
        the reconnection.
        """
        self.reconnect_with()
        self.say("d2", 2, room="dev", name="bob")
        self.say("l5", 5, room="lobby", name="bob")
        self.deliver(type="direct", dseq=2, to="me", text="again", time=0, **{"from": "bob"})
        self.deliver(type="resumed", replayed=3, name="me", rooms={"dev": 1, "lobby": 1},
                     direct=1)
        self.assertEqual(self.lines[1:], [
            "> bob: d2", "#lobby > bob: l5", "*bob* again",
            "* reconnected, 3 missed events replayed"])

    def test_room_not_replayed(self):
        """
        A room the server cannot replay: its joined gives the current seq,
        and the gap is reported; the direct stream's likewise.
        """
        self.reconnect_with()
        self.deliver(type="error", code="resume_failed", room="dev", oldest_seq=5,
                     message="too old")
        self.joined("dev", seq=9, members=3)
        self.deliver(type="error", code="resume_failed", direct=True, oldest_dseq=4,
                     message="too old")
        self.deliver(type="direct", dseq=4, to="me", text="kept", time=0, **{"from": "bob"})
        self.deliver(type="resumed", replayed=1, name="me", rooms={}, direct=1)
        self.say("d10", 10, room="dev", name="bob")
        self.assertEqual(self.lines[1:], [
            "! missed events 2..9",
            "! missed direct messages 2..3",
            "*bob* kept",
            "* reconnected, 1 missed events replayed",
            "> bob: d10",
        ])
        self.assertEqual(self.client.session, "s1")
        self.assertEqual(self.client.last_dseq, 4)
        self.assertEqual(self.client.missed_events, 10)

    def test_rejoin_refused(self):
        """
        A room the resume cannot put us back in (banned meanwhile) is
        gone: said on stderr in batch mode without failing the batch, and
        the lobby is current again.
        """
        self.client.console.batch = True
        self.reconnect_with()
        self.deliver(type="error", code="banned", room="dev", message="you are banned")
        self.deliver(type="resumed", replayed=0, name="me")
        self.assertEqual(self.errors, ["! you are banned"])
        self.assertEqual(self.lines[-2:], [
            "* current room: #lobby", "* reconnected, 0 missed events replayed"])
        self.assertEqual(self.client.console.failed_lines, 0)
        self.assertNotIn("dev", self.client.rooms)
        self.sent()
        self.type("here")
        self.assertEqual(self.sent(), [{"type": "message", "text": "here"}])

    def test_direct_not_replayed_without_oldest(self):
        """
        A direct stream that cannot be replayed, without oldest_dseq, is
        still reported.
        """
        self.reconnect_with()
        self.deliver(type="error", code="resume_failed", direct=True, message="gone")
        self.assertEqual(
            self.lines[-1], "! some direct messages were missed (the server could not replay them)")

    def test_lagged(self):
        """
        After lagged the resume asks for every room too.
        """
        self.deliver(type="lagged", missed_from=5, rooms={"dev": 2})
        self.assertEqual(self.sent(), [{
            "type": "resume", "session": "s1", "last_seq": 4, "rooms": {"dev": 1},
            "last_dseq": 1}])

    def test_unconfirmed_to_its_room(self):
        """
        A message to dev sent but never echoed goes again to dev after the
        resume.
        """
        self.type("lost in dev")
        self.sent()
        self.reconnect_with()
        self.sent()
        self.deliver(type="resumed", replayed=0, name="me")
        self.assertEqual(self.sent(), [{"type": "message", "text": "lost in dev", "room": "dev"}])

    def test_join_in_flight(self):
        """
        A join the lost connection never answered is sent again; the lines
        after it still wait for it.
        """
        self.type("/join ops", "for ops")
        self.sent()
        self.reconnect_with()
        self.sent()
        self.deliver(type="resumed", replayed=0, name="me")
        self.assertEqual(self.sent(), [{"type": "join", "room": "ops", "id": 3}])
        self.joined("ops", id=3)
        self.assertEqual(self.sent(), [{"type": "message", "text": "for ops", "room": "ops"}])
        self.assertEqual(self.client.current, "ops")

    def test_join_in_flight_done(self):
        """
        A join the server did before the connection was lost is answered
        by the resume's joined, and not sent again.
        """
        self.type("/join ops")
        self.reconnect_with()
        self.sent()
        self.joined("ops", seq=2, members=2)
        self.deliver(type="resumed", replayed=0, name="me")
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.client.current, "ops")

    def test_session_lost(self):
        """
        The server no longer has the session: the rooms are joined again
        (after the name), and what was missed in each is reported.
        """
        self.client.nick = "me"
        self.reconnect_with()
        self.sent()
        self.deliver(type="error", code="resume_failed", message="unknown session")
        self.assertEqual(self.sent(), [
            {"type": "nick", "name": "me", "id": 2}, {"type": "join", "room": "dev", "id": 3}])
        self.deliver(type="nick", seq=10, room="lobby", old="guest-9", new="me")
        self.joined("dev", seq=6, members=2, id=3)
        self.assertEqual(self.lines[1:], [
            "* reconnected as a new session (the server no longer had ours)",
            "! #lobby: missed events 5..9",
            "* #lobby: guest-9 is now me",
            "! missed events 2..6",
            "* you joined #dev (2 members)",
        ])
        self.assertEqual(self.client.current, "dev")
        self.assertEqual((self.client.session, self.client.last_dseq), ("s2", 0))

    def test_session_lost_out_of_lobby(self):
        """
        A session that had left the lobby leaves the new one's lobby too.
        """
        self.type("/part lobby")
        self.deliver(type="parted", room="lobby", seq=4)
        self.reconnect_with()
        self.sent()
        self.deliver(type="error", code="resume_failed", message="unknown session")
        self.assertEqual(self.sent(), [
            {"type": "join", "room": "dev", "id": 3}])
        self.joined("dev", seq=1, id=3)
        self.assertEqual(self.sent(), [{"type": "part", "room": "lobby", "id": 4}])

    def test_session_lost_room_refused(self):
        """
        After a lost session, a room that cannot be joined again is gone:
        the lobby is current.
        """
        self.reconnect_with()
        self.sent()
        self.deliver(type="error", code="resume_failed", message="unknown session")
        self.deliver(type="error", code="banned", room="dev", id=2, message="banned")
        self.assertEqual(self.lines[-1], "* current room: #lobby")
        self.type("where")
        self.assertEqual(self.sent()[-1], {"type": "message", "text": "where"})


class StatusRoomsTests(RoomClientMixin, SynchronousTestCase):
    """
    /status lists the rooms once there are others than the lobby.
    """

    def test_rooms_line(self):
        """
        The rooms, their seqs and the current one.
        """
        self.welcome(seq=4)
        self.type("/status")
        self.assertFalse([line for line in self.lines if line.startswith("* rooms")])
        self.join_dev()
        self.type("/status")
        self.assertEqual(self.lines[-1], "* rooms: #lobby (seq 4), #dev (seq 0); current: #dev")
