"""
Tests for rooms (L{twisted_chat.room.rooms} and the server's room frames):
join, part, messages, who, the rooms list, topics and operators, names and
leaves across rooms, lag and resume in several rooms.  Protocol level, on
L{StringTransport} and a L{Clock}.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers.memory import ServerMixin
from twisted_chat import wire


class RoomsMixin(ServerMixin):
    """
    Helpers for clients that use rooms.
    """

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)
        self.send(self.alice, type="nick", name="alice")
        self.send(self.bob, type="nick", name="bob")
        self.received(self.alice_t), self.received(self.bob_t)

    def join(self, protocol, transport, room):
        """
        Join C{room}; return what the client was sent.
        """
        self.send(protocol, type="join", room=room)
        return self.received(transport)


class JoinTests(RoomsMixin, SynchronousTestCase):
    """
    Entering a room, making it if need be.
    """

    def test_join_makes_the_room(self):
        """
        The first joiner gets joined (seq 0, no topic, one member), then its
        own join event, the room's first.
        """
        self.assertEqual(self.join(self.alice, self.alice_t, "Dev"), [
            {"type": "joined", "room": "Dev", "seq": 0, "topic": "", "members": 1,
             "presence": True},
            {"type": "join", "room": "Dev", "name": "alice", "seq": 1},
        ])
        self.assertEqual(self.received(self.bob_t), [])

    def test_second_joiner(self):
        """
        A second joiner gets joined with the room's last seq and the count
        with it; the room's spelling is its creator's, lookups ignore case.
        """
        self.join(self.alice, self.alice_t, "Dev")
        self.assertEqual(self.join(self.bob, self.bob_t, "dev"), [
            {"type": "joined", "room": "Dev", "seq": 1, "topic": "", "members": 2,
             "presence": True},
            {"type": "join", "room": "Dev", "name": "bob", "seq": 2},
        ])
        self.assertEqual(
            self.received(self.alice_t),
            [{"type": "join", "room": "Dev", "name": "bob", "seq": 2}])

    def test_join_again(self):
        """
        Joining a room one is in is no error: joined again, and no event.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.assertEqual(self.join(self.alice, self.alice_t, "DEV"), [
            {"type": "joined", "room": "dev", "seq": 1, "topic": "", "members": 1,
             "presence": True}])

    def test_seq_per_room(self):
        """
        Each room numbers its own events; the lobby's go on as before.
        """
        lobby_seq = self.factory.room.seq
        self.join(self.alice, self.alice_t, "dev")
        self.send(self.alice, type="message", room="dev", text="in dev")
        self.send(self.bob, type="message", text="in the lobby")
        said = self.received(self.alice_t)
        self.assertEqual(
            [(m.get("room"), m["seq"]) for m in said], [("dev", 2), (None, lobby_seq + 1)])

    def test_bad_room(self):
        """
        A room name that is not one is bad_room.
        """
        for name in ["", "a b", "x" * 33, 7, None]:
            self.send(self.alice, type="join", room=name)
            (error,) = self.received(self.alice_t)
            self.assertEqual(error["code"], wire.BAD_ROOM, name)

    def test_too_many_rooms_per_client(self):
        """
        --max-rooms-per-client counts the lobby.
        """
        self.factory = self.make_factory(max_rooms_per_client=2)
        protocol, transport = self.connect()
        self.join(protocol, transport, "one")
        (error,) = self.join(protocol, transport, "two")
        self.assertEqual((error["code"], error["room"]), (wire.TOO_MANY_ROOMS, "two"))

    def test_too_many_rooms(self):
        """
        --max-rooms counts the lobby; a room one is in can still be joined.
        """
        self.factory = self.make_factory(max_rooms=2)
        protocol, transport = self.connect()
        self.join(protocol, transport, "one")
        (error,) = self.join(protocol, transport, "two")
        self.assertEqual(error["code"], wire.TOO_MANY_ROOMS)
        other, other_t = self.connect(40001)
        self.received(other_t)
        self.assertEqual(self.join(other, other_t, "one")[0]["type"], "joined")


class MessageTests(RoomsMixin, SynchronousTestCase):
    """
    Messages to a room go to its members only.
    """

    def test_message_to_room(self):
        """
        A room's message reaches its members, with the room; not the
        others.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        carol, carol_t = self.connect(40002)
        self.received(self.alice_t), self.received(carol_t)
        self.send(self.bob, type="message", room="DEV", text="hi")
        (said,) = self.received(self.alice_t)
        self.assertEqual(
            {k: said[k] for k in ("type", "room", "from", "text", "seq")},
            {"type": "message", "room": "dev", "from": "bob", "text": "hi", "seq": 3})
        self.assertEqual(self.received(carol_t), [])

    def test_not_in_room(self):
        """
        A message to a room one is not in is not_in_room, whether or not the
        room exists.
        """
        self.join(self.bob, self.bob_t, "dev")
        for name in ["dev", "nowhere"]:
            self.send(self.alice, type="message", room=name, text="x", id=1)
            (error,) = self.received(self.alice_t)
            self.assertEqual(
                (error["code"], error["room"], error["id"]), (wire.NOT_IN_ROOM, name, 1))


class PartTests(RoomsMixin, SynchronousTestCase):
    """
    Leaving one room.
    """

    def test_part(self):
        """
        Everyone in the room, the leaver too (as its last event of the
        room), gets leave with reason part and the message.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.received(self.alice_t)
        self.send(self.bob, type="part", room="dev", message="bye")
        leave = {"type": "leave", "room": "dev", "name": "bob", "reason": "part",
                 "message": "bye", "seq": 3}
        self.assertEqual(self.received(self.bob_t), [leave])
        self.assertEqual(self.received(self.alice_t), [leave])
        self.send(self.alice, type="message", room="dev", text="still here")
        self.assertEqual(self.received(self.bob_t), [])

    def test_parted_without_presence(self):
        """
        In a room too large for presence the leaver gets parted, with the
        room's last seq it was sent.
        """
        self.factory = self.make_factory(presence_limit=0)
        protocol, transport = self.connect()
        self.join(protocol, transport, "big")
        self.send(protocol, type="message", room="big", text="x")
        self.received(transport)
        self.send(protocol, type="part", room="big")
        self.assertEqual(
            self.received(transport), [{"type": "parted", "room": "big", "seq": 1}])

    def test_part_lobby(self):
        """
        The lobby can be left: messages without a room are then
        not_in_room, and joining it again works.
        """
        self.send(self.alice, type="part")
        self.assertEqual(self.received(self.alice_t)[0]["reason"], "part")
        self.send(self.alice, type="message", text="x")
        (error,) = self.received(self.alice_t)
        self.assertEqual(error["code"], wire.NOT_IN_ROOM)
        self.assertNotIn("room", error)
        self.send(self.alice, type="join")
        self.assertEqual(
            [m["type"] for m in self.received(self.alice_t)], ["joined", "join"])

    def test_part_not_in_room(self):
        """
        Leaving a room one is not in is not_in_room.
        """
        self.send(self.alice, type="part", room="dev")
        self.assertEqual(self.received(self.alice_t)[0]["code"], wire.NOT_IN_ROOM)

    def test_empty_room_forgotten(self):
        """
        A room that empties is forgotten, but made again it goes on from
        its last seq; its topic and operators are gone.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.send(self.alice, type="topic", room="dev", topic="t")
        self.send(self.alice, type="part", room="dev")
        self.send(self.bob, type="who", room="dev")
        self.assertEqual(self.received(self.bob_t)[-1]["code"], wire.NO_SUCH_ROOM)
        joined = self.join(self.bob, self.bob_t, "dev")[0]
        self.assertEqual((joined["seq"], joined["topic"]), (3, ""))


class ForgottenRoomsTests(RoomsMixin, SynchronousTestCase):
    """
    What the server keeps of rooms that emptied is bounded.
    """

    def test_last_seqs_bounded(self):
        """
        Only the last --max-rooms forgotten rooms keep their seq; an older
        one made again starts from 0, a newer one goes on.
        """
        self.factory = self.make_factory(max_rooms=3)
        protocol, transport = self.connect()
        for name in ["r1", "r2", "r3", "r4"]:
            self.join(protocol, transport, name)
            self.send(protocol, type="part", room=name)
        self.received(transport)
        self.assertEqual(self.join(protocol, transport, "r1")[0]["seq"], 0)
        self.assertEqual(self.join(protocol, transport, "r4")[0]["seq"], 2)


class WhoAndRoomsTests(RoomsMixin, SynchronousTestCase):
    """
    who of a room, and the list of rooms.
    """

    def test_who_room(self):
        """
        who of any room lists its members and operators; of a missing room
        it is no_such_room; without a room it is the lobby, as before.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        carol, carol_t = self.connect(40002)
        self.received(carol_t)
        self.send(carol, type="who", room="dev")
        self.assertEqual(self.received(carol_t), [
            {"type": "who", "room": "dev", "names": ["alice", "bob"], "ops": ["alice"]}])
        self.send(carol, type="who", room="none")
        (error,) = self.received(carol_t)
        self.assertEqual((error["code"], error["room"]), (wire.NO_SUCH_ROOM, "none"))
        self.send(carol, type="who")
        self.assertEqual(self.received(carol_t), [
            {"type": "who", "names": ["alice", "bob", carol.name]}])

    def test_rooms(self):
        """
        The rooms, sorted ignoring case, with their members and topic; match
        is a prefix, ignoring case.
        """
        self.join(self.alice, self.alice_t, "beta")
        self.join(self.alice, self.alice_t, "Alpha")
        self.join(self.bob, self.bob_t, "alpha")
        self.received(self.alice_t)
        self.send(self.alice, type="rooms")
        (listed,) = self.received(self.alice_t)
        self.assertEqual(listed["rooms"], [
            {"room": "Alpha", "members": 2, "topic": ""},
            {"room": "beta", "members": 1, "topic": ""},
            {"room": "lobby", "members": 2, "topic": ""},
        ])
        self.send(self.alice, type="rooms", match="AL")
        self.assertEqual([r["room"] for r in self.received(self.alice_t)[0]["rooms"]],
                         ["Alpha"])

    def test_rooms_paged(self):
        """
        A long list comes in frames that fit max_frame, all but the last
        with more.
        """
        self.factory = self.make_factory(max_frame=1024, max_text=100, join_burst=60)
        protocol, transport = self.connect()
        for i in range(60):
            self.join(protocol, transport, "room-with-a-long-name-%02d" % (i,))
        self.send(protocol, type="rooms")
        pages = self.received(transport)
        self.assertGreater(len(pages), 1)
        self.assertTrue(all(p.get("more") for p in pages[:-1]))
        self.assertNotIn("more", pages[-1])
        self.assertEqual(sum(len(p["rooms"]) for p in pages), 61)
        for page in pages:
            self.assertLessEqual(len(wire.encode(page)), 1024)


class TopicAndOpTests(RoomsMixin, SynchronousTestCase):
    """
    Topics, set by operators; operators after the last one leaves.
    """

    def test_topic(self):
        """
        An operator sets the topic: an event of the room, and joined and
        the rooms list show it.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.send(self.alice, type="topic", room="dev", topic="rooms!")
        self.assertEqual(self.received(self.alice_t), [
            {"type": "topic", "room": "dev", "by": "alice", "topic": "rooms!", "seq": 2}])
        self.assertEqual(self.join(self.bob, self.bob_t, "dev")[0]["topic"], "rooms!")

    def test_topic_refusals(self):
        """
        Not an operator: not_op; too long: text_too_long; not in the room:
        not_in_room; the lobby has no operators.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        for room, topic, code in [
            ("dev", "mine", wire.NOT_OP),
            ("dev", "x" * 257, wire.TEXT_TOO_LONG),
            ("elsewhere", "x", wire.NOT_IN_ROOM),
            ("lobby", "x", wire.NOT_OP),
        ]:
            self.send(self.bob, type="topic", room=room, topic=topic)
            (error,) = self.received(self.bob_t)
            self.assertEqual(error["code"], code)

    def test_operator_succession(self):
        """
        When the last operator leaves a room that still has members, the
        longest-present one becomes operator (by null); a rename does not
        change who that is.
        """
        carol, carol_t = self.connect(40002)
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.join(carol, carol_t, "dev")
        self.send(self.bob, type="nick", name="zed")
        self.received(carol_t)
        self.send(self.alice, type="part", room="dev")
        events = self.received(carol_t)
        self.assertEqual(events[-1], {
            "type": "op", "room": "dev", "name": "zed", "by": None, "seq": 6})
        self.send(self.bob, type="topic", room="dev", topic="mine now")
        self.assertEqual(self.received(self.bob_t)[-1]["type"], "topic")


class AcrossRoomsTests(RoomsMixin, SynchronousTestCase):
    """
    A user's name and its leaving concern every room it is in.
    """

    def test_nick_in_every_room(self):
        """
        A rename is announced in every room, each with its own seq.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.received(self.alice_t)
        lobby_seq = self.factory.room.seq
        self.send(self.alice, type="nick", name="ann")
        events = self.received(self.bob_t)
        self.assertEqual(
            sorted([(e.get("room"), e["old"], e["new"], e["seq"]) for e in events],
                   key=str),
            sorted([(None, "alice", "ann", lobby_seq + 1), ("dev", "alice", "ann", 3)],
                   key=str))

    def test_name_held_outside_every_room(self):
        """
        A user in no room keeps its name: nobody else can take it.
        """
        self.send(self.alice, type="part")
        self.send(self.bob, type="nick", name="ALICE")
        self.assertEqual(self.received(self.bob_t)[-1]["code"], wire.NICK_TAKEN)

    def test_quit_leaves_every_room(self):
        """
        A connection that ends leaves every room it was in, with the same
        reason.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.received(self.bob_t)
        self.send(self.alice, type="quit")
        self.lose(self.alice)
        leaves = self.received(self.bob_t)
        self.assertEqual(
            sorted(((e.get("room"), e["reason"]) for e in leaves if e["type"] == "leave"),
                   key=str),
            sorted([(None, "quit"), ("dev", "quit")], key=str))


class LagTests(RoomsMixin, SynchronousTestCase):
    """
    A slow reader in several rooms is told, per room, where it stopped, and
    resumes every room exactly.
    """

    def test_lagged_and_resumed_per_room(self):
        """
        lagged says the first seq not sent in each room; a resume with those
        replays every room, each exactly once.
        """
        self.factory = self.make_factory(max_text=2000, sendq_soft=4096, sendq=1 << 20)
        (reader, reader_t), (writer, writer_t) = self.connect_many(2)
        for protocol, transport in ((reader, reader_t), (writer, writer_t)):
            self.join(protocol, transport, "dev")
        self.received(reader_t)
        reader.outbox.queue.pauseProducing()
        text = "x" * 1500
        for i in range(4):
            self.send(writer, type="message", room="dev", text=text)
            self.send(writer, type="message", text=text)
        reader.outbox.queue.resumeProducing()
        got = self.received(reader_t)
        lagged = [m for m in got if m["type"] == "lagged"]
        self.assertEqual(len(lagged), 1)
        seen = {}
        for m in got:
            if m["type"] == "message":
                seen[m.get("room", "lobby")] = m["seq"]
        lobby_from = lagged[0]["missed_from"]
        dev_from = lagged[0]["rooms"]["dev"]
        self.send(reader, type="resume", session=reader.session,
                  last_seq=lobby_from - 1, rooms={"dev": dev_from - 1})
        replay = self.received(reader_t)
        self.assertEqual(replay[-1]["type"], "resumed")
        by_room = {}
        for m in replay[:-1]:
            by_room.setdefault(m.get("room", "lobby"), []).append(m["seq"])
        self.assertEqual(by_room["dev"], list(range(dev_from, self.factory.rooms.get("dev").seq + 1)))
        self.assertEqual(by_room["lobby"], list(range(lobby_from, self.factory.room.seq + 1)))
        self.assertEqual(replay[-1]["rooms"], {"lobby": len(by_room["lobby"]),
                                               "dev": len(by_room["dev"])})
        self.assertNotIn("direct", replay[-1])
        self.assertEqual(replay[-1]["replayed"], len(replay) - 1)
        self.send(writer, type="message", room="dev", text="live")
        self.assertEqual(self.received(reader_t)[0]["text"], "live")


class ModerationTests(RoomsMixin, SynchronousTestCase):
    """
    kick, ban, unban and op: operators only.
    """

    def setUp(self):
        super().setUp()
        self.carol, self.carol_t = self.connect(40002, host="10.0.0.3")
        self.send(self.carol, type="nick", name="carol")
        for protocol, transport in [(self.alice, self.alice_t), (self.bob, self.bob_t),
                                    (self.carol, self.carol_t)]:
            self.join(protocol, transport, "dev")
        for transport in (self.alice_t, self.bob_t, self.carol_t):
            self.received(transport)

    def test_kick(self):
        """
        A kick is a leave with reason kicked, by, and the reason as its
        message; the kicked member gets it too, and nothing after.
        """
        self.send(self.alice, type="kick", room="dev", name="BOB", reason="spam")
        leave = {"type": "leave", "room": "dev", "name": "bob", "reason": "kicked",
                 "by": "alice", "message": "spam", "seq": 4}
        self.assertEqual(self.received(self.bob_t), [leave])
        self.assertEqual(self.received(self.carol_t), [leave])
        self.send(self.bob, type="message", room="dev", text="x")
        self.assertEqual(self.received(self.bob_t)[0]["code"], wire.NOT_IN_ROOM)

    def test_kick_refusals(self):
        """
        Not an operator: not_op; nobody of that name in the room:
        no_such_user; an invalid name: bad_nick.
        """
        for sender, transport, name, code in [
            (self.bob, self.bob_t, "carol", wire.NOT_OP),
            (self.alice, self.alice_t, "nobody", wire.NO_SUCH_USER),
            (self.alice, self.alice_t, "not a name", wire.BAD_NICK),
        ]:
            self.send(sender, type="kick", room="dev", name=name)
            (error,) = self.received(transport)
            self.assertEqual(error["code"], code, name)

    def test_ban(self):
        """
        A ban is an event of the room; it kicks the user, who cannot join
        again, under another name or not, from the same address.
        """
        self.send(self.alice, type="ban", room="dev", name="carol")
        events = self.received(self.bob_t)
        self.assertEqual(events[0], {"type": "ban", "room": "dev", "name": "carol",
                                     "by": "alice", "seq": 4})
        self.assertEqual((events[1]["type"], events[1]["reason"]), ("leave", "kicked"))
        self.send(self.carol, type="join", room="dev")
        self.assertEqual(self.received(self.carol_t)[-1]["code"], wire.BANNED)
        self.send(self.carol, type="nick", name="notcarol")
        self.send(self.carol, type="join", room="dev")
        self.assertEqual(self.received(self.carol_t)[-1]["code"], wire.BANNED)
        elsewhere, transport = self.connect(40009, host="10.0.0.9")
        self.send(elsewhere, type="nick", name="carol2")
        self.received(transport)
        self.assertEqual(self.join(elsewhere, transport, "dev")[0]["type"], "joined")

    def test_unban(self):
        """
        unban lifts the name and the address; unbanning someone not banned
        does nothing.
        """
        self.send(self.alice, type="ban", room="dev", name="carol")
        self.received(self.bob_t)
        self.send(self.alice, type="unban", room="dev", name="carol")
        self.assertEqual(self.received(self.bob_t), [
            {"type": "unban", "room": "dev", "name": "carol", "by": "alice", "seq": 6}])
        self.received(self.carol_t)
        self.assertEqual(self.join(self.carol, self.carol_t, "dev")[0]["type"], "joined")
        self.received(self.alice_t)
        self.send(self.alice, type="unban", room="dev", name="nobody")
        self.assertEqual(self.received(self.alice_t), [])

    def test_op(self):
        """
        An operator makes another member one: an event of the room; the new
        operator may then moderate.
        """
        self.send(self.alice, type="op", room="dev", name="bob")
        self.assertEqual(self.received(self.carol_t), [
            {"type": "op", "room": "dev", "name": "bob", "by": "alice", "seq": 4}])
        self.send(self.bob, type="kick", room="dev", name="carol")
        self.assertEqual(self.received(self.carol_t)[-1]["reason"], "kicked")
        self.send(self.carol, type="op", room="lobby", name="alice")
        self.assertEqual(self.received(self.carol_t)[-1]["code"], wire.NOT_OP)


class DirectTests(RoomsMixin, SynchronousTestCase):
    """
    Direct messages: to one user, each session with its own dseq.
    """

    def test_direct(self):
        """
        Receiver and sender both get the frame, each with its own session's
        dseq, the same time, and the registered spelling of the name.
        """
        self.clock.advance(5)
        self.send(self.alice, type="message", to="BOB", text="psst")
        self.send(self.alice, type="message", to="bob", text="again")
        self.send(self.bob, type="message", to="alice", text="yes?")
        mine = {"from": "alice", "to": "bob", "time": 5.0}
        self.assertEqual(self.received(self.bob_t), [
            dict(mine, type="direct", dseq=1, text="psst"),
            dict(mine, type="direct", dseq=2, text="again"),
            {"type": "direct", "dseq": 3, "from": "bob", "to": "alice", "text": "yes?",
             "time": 5.0},
        ])
        self.assertEqual([m["dseq"] for m in self.received(self.alice_t)], [1, 2, 3])

    def test_to_oneself(self):
        """
        A message to oneself is one frame.
        """
        self.send(self.alice, type="message", to="alice", text="note")
        (note,) = self.received(self.alice_t)
        self.assertEqual((note["type"], note["dseq"]), ("direct", 1))

    def test_refusals(self):
        """
        Nobody online of that name: no_such_user; both to and room:
        bad_frame; a room need not be shared.
        """
        self.send(self.alice, type="message", to="nobody", text="x")
        self.assertEqual(self.received(self.alice_t)[0]["code"], wire.NO_SUCH_USER)
        self.send(self.alice, type="message", to="bob", room="lobby", text="x")
        self.assertEqual(self.received(self.alice_t)[0]["code"], wire.BAD_FRAME)
        self.send(self.bob, type="part")
        self.received(self.bob_t)
        self.send(self.alice, type="message", to="bob", text="still there?")
        self.assertEqual(self.received(self.bob_t)[0]["text"], "still there?")

    def test_flood_counts(self):
        """
        Direct messages are rate-limited like messages.
        """
        self.factory = self.make_factory(rate=1, burst=2)
        (one, one_t), (two, two_t) = self.connect_many(2)
        for _ in range(3):
            self.send(one, type="message", to=two.name, text="x")
        codes = [m.get("code") for m in self.received(one_t)]
        self.assertEqual(codes, [None, None, wire.RATE_LIMITED])


class NewConnectionResumeTests(RoomsMixin, SynchronousTestCase):
    """
    A resume on a new connection brings back every room and the direct
    stream.
    """

    def setUp(self):
        super().setUp()
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.send(self.bob, type="message", to="alice", text="d1")
        self.seen = {"lobby": self.factory.room.seq, "dev": self.factory.rooms.get("dev").seq}
        self.received(self.alice_t), self.received(self.bob_t)
        self.send(self.bob, type="message", room="dev", text="missed in dev")
        self.send(self.bob, type="message", to="alice", text="missed direct")
        self.received(self.bob_t)

    def resume(self, **fields):
        protocol, transport = self.connect(40005, join=False)
        self.received(transport)
        message = dict(type="resume", session=self.alice.session,
                       last_seq=self.seen["lobby"], rooms={"dev": self.seen["dev"]},
                       last_dseq=1)
        message.update(fields)
        self.send(protocol, **message)
        return protocol, self.received(transport)

    def test_takeover(self):
        """
        Taking over a stale connection replays each room and the direct
        stream, without a leave or a join, and the session stays operator.
        """
        protocol, got = self.resume()
        self.assertEqual(
            [(m["type"], m.get("room"), m.get("text")) for m in got], [
                ("message", "dev", "missed in dev"),
                ("direct", None, "missed direct"),
                ("resumed", None, None)])
        self.assertEqual(got[-1]["rooms"], {"lobby": 0, "dev": 1})
        self.assertEqual((got[-1]["direct"], got[-1]["replayed"]), (1, 2))
        self.assertEqual(self.received(self.bob_t), [])
        self.send(protocol, type="topic", room="dev", topic="still op")
        self.assertEqual(self.received(self.bob_t)[-1]["type"], "topic")

    def test_after_leaving(self):
        """
        A session whose connection had left rejoins its rooms (announced),
        replaying each; it is no longer an operator; dseq goes on.
        """
        self.lose(self.alice)
        self.received(self.bob_t)
        protocol, got = self.resume()
        # Missed: its own leaves, and in dev the message and bob's becoming
        # operator.
        self.assertEqual(got[-1]["rooms"], {"lobby": 1, "dev": 3})
        kinds = [(m["type"], m.get("room")) for m in got]
        self.assertIn(("message", "dev"), kinds)
        self.assertIn(("direct", None), kinds)
        joins = [m for m in self.received(self.bob_t) if m["type"] == "join"]
        self.assertEqual(sorted(str(m.get("room")) for m in joins), ["None", "dev"])
        self.received(protocol.transport)
        self.send(self.bob, type="message", to="alice", text="d3")
        self.assertEqual(
            [m["dseq"] for m in self.received(protocol.transport) if m["type"] == "direct"],
            [3])
        self.send(protocol, type="topic", room="dev", topic="mine?")
        self.assertEqual(self.received(protocol.transport)[-1]["code"], wire.NOT_OP)

    def test_takeover_outside_the_lobby(self):
        """
        Taking over a stale connection that had left the lobby: the resume
        has the session's name and rooms, the stale connection is closed,
        and nobody sees the name leave.
        """
        self.send(self.alice, type="part", room="lobby")
        self.received(self.bob_t)
        protocol, got = self.resume()
        self.assertEqual(got[-1]["type"], "resumed")
        self.assertEqual(got[-1]["name"], "alice")
        self.assertTrue(self.alice_t.disconnecting)
        self.assertEqual([m for m in self.received(self.bob_t) if m["type"] == "leave"], [])
        self.send(self.bob, type="message", room="dev", text="for alice")
        self.assertIn("for alice", [m.get("text") for m in self.received(protocol.transport)])

    def test_room_not_kept(self):
        """
        A room whose backlog no longer reaches says so and joined follows;
        the direct stream likewise, then what it keeps.
        """
        protocol, got = self.resume(rooms={"dev": 99}, last_dseq=50)
        errors = [m for m in got if m["type"] == "error"]
        self.assertEqual([(e.get("room"), e.get("direct")) for e in errors],
                         [("dev", None), (None, True)])
        self.assertEqual(got[got.index(errors[0]) + 1]["type"], "joined")
        self.assertEqual(got[-1]["type"], "resumed")


class ChurnTests(RoomsMixin, SynchronousTestCase):
    """
    Name changes and joins are limited per session, so one client cannot
    make a room's members receive events without bound.
    """

    def test_nick_churn(self):
        """
        60 renames in a burst: five are broadcast (--nick-rate 5 per 20 s;
        the setUp's rename was the first), the rest refused with
        retry_after and never broadcast; later, renames are allowed again.
        """
        for i in range(60):
            self.send(self.alice, type="nick", name="n%d" % (i,))
        renames = [m for m in self.received(self.bob_t) if m["type"] == "nick"]
        self.assertEqual(len(renames), 4)
        refused = [m for m in self.received(self.alice_t) if m.get("code")]
        self.assertEqual(len(refused), 56)
        self.assertEqual({m["code"] for m in refused}, {wire.RATE_LIMITED})
        self.assertEqual(refused[0]["retry_after"], 4.0)
        self.clock.advance(4)
        self.send(self.alice, type="nick", name="later")
        self.assertEqual(self.received(self.bob_t)[-1]["new"], "later")

    def test_join_part_churn(self):
        """
        60 part/join cycles of one room: a couple of dozen events, then the
        joins are refused with retry_after; the room is left alone after.
        """
        self.join(self.alice, self.alice_t, "dev")
        self.join(self.bob, self.bob_t, "dev")
        self.received(self.bob_t)
        for _ in range(60):
            self.send(self.alice, type="part", room="dev")
            self.send(self.alice, type="join", room="dev")
        events = [m for m in self.received(self.bob_t) if m.get("room") == "dev"]
        self.assertLessEqual(len(events), 26)
        self.assertGreaterEqual(len(events), 20)
        refusals = [m for m in self.received(self.alice_t) if m.get("code") == wire.RATE_LIMITED]
        self.assertTrue(refusals)
        self.assertEqual(refusals[0]["room"], "dev")
        self.assertGreater(refusals[0]["retry_after"], 0)

    def test_refused_join_makes_no_room(self):
        """
        A join refused for its rate makes no room: flooding joins of new
        names leaves the server with the rooms that were joined, none
        empty.
        """
        for i in range(40):
            self.send(self.alice, type="join", room="r%d" % (i,))
        joined = [m for m in self.received(self.alice_t) if m["type"] == "joined"]
        self.assertLess(len(joined), 40)
        self.send(self.alice, type="rooms")
        listed = self.received(self.alice_t)[0]["rooms"]
        self.assertEqual(len(listed), len(joined) + 1)
        self.assertNotIn(0, [entry["members"] for entry in listed])

    def test_twenty_rooms_at_start(self):
        """
        Joining twenty rooms at once, as an IRC client does at start-up, is
        never refused.
        """
        for i in range(20):
            self.assertEqual(self.join(self.alice, self.alice_t, "r%d" % (i,))[0]["type"],
                             "joined")
