"""
Tests for L{twisted_chat.server}: the protocol on a L{StringTransport} and a
L{Clock}, one frame type and error code at a time.
"""

import struct
from random import Random

from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat import wire
from twisted_chat.room import IChatClient
from twisted_chat.server import paginate_names
from tests.helpers.memory import ServerMixin, frame, parse_frames


class WelcomeTests(ServerMixin, SynchronousTestCase):
    """
    What a client is sent when it connects, and when it joins.
    """

    def test_welcome(self):
        """
        The first frame is welcome with the server's settings and a session
        token; nothing else is sent while the connection is pending.
        """
        protocol, transport = self.connect(join=False)
        (welcome,) = self.received(transport)
        session = welcome.pop("session")
        self.assertEqual(
            welcome,
            {
                "type": "welcome",
                "protocol": 1,
                "name": "guest-1",
                "heartbeat_interval": 10.0,
                "timeout": 30.0,
                "max_frame": 65536,
                "max_text": 4096,
                "seq": 0,
                "backlog": 1024,
                "sendq": 1048576,
                "rate": {"burst": 20, "per_second": 5.0},
                "presence": True,
                "resume_window": 1.0,
                "dseq": 0,
            },
        )
        self.assertIsInstance(session, str)
        self.assertGreaterEqual(len(session), 22)
        self.assertEqual(protocol.name, "guest-1")

    def test_first_frame_joins(self):
        """
        The first frame makes the client join: the room, the client
        included, is told before the frame is answered.
        """
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.send(protocol, type="heartbeat")
        join, ack = self.received(transport)
        self.assertEqual(join, {"type": "join", "seq": 1, "name": "guest-1"})
        self.assertEqual(ack["type"], "heartbeat_ack")

    def test_silent_client_joins_after_hold(self):
        """
        A client that says nothing joins after the join hold.
        """
        (_, first), = self.connect_many(1)
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.clock.advance(self.factory.join_hold - 2**-10)
        self.assertEqual(self.received(first), [])
        self.clock.advance(2**-10)
        expected = [{"type": "join", "seq": 2, "name": "guest-2"}]
        self.assertEqual(self.received(first), expected)
        self.assertEqual(self.received(transport), expected)

    def test_welcome_seq_is_last_event(self):
        """
        welcome's seq is the last broadcast seq; the client's own join is
        the next one.
        """
        (first, _), = self.connect_many(1)
        self.send(first, type="message", text="hi")
        _, transport = self.connect()
        welcome, join, _ = self.received(transport)
        self.assertEqual(welcome["seq"], 2)
        self.assertEqual(join["seq"], 3)
        self.assertEqual(welcome["name"], "guest-2")

    def test_nothing_missed_while_pending(self):
        """
        Events broadcast while a client is pending are sent to it, in order,
        before its join: no gap after its welcome's seq.
        """
        (member, _), = self.connect_many(1)
        protocol, transport = self.connect(join=False)
        self.send(member, type="message", text="one")
        self.send(member, type="message", text="two")
        self.send(protocol, type="heartbeat")
        messages = self.received(transport)
        self.assertEqual(
            [(m["type"], m.get("seq")) for m in messages],
            [("welcome", 1), ("message", 2), ("message", 3), ("join", 4), ("heartbeat_ack", None)],
        )

    def test_burst_beyond_backlog_while_pending(self):
        """
        More events than the backlog holds, broadcast while a client is
        pending, all reach it in order when it joins: its stream has no gap
        after its welcome's seq, whatever --backlog is.
        """
        self.factory = self.make_factory(backlog=8)
        (member, _), = self.connect_many(1)
        protocol, transport = self.connect(join=False)
        for i in range(18):
            self.send(member, type="message", text="m%d" % (i,))
        self.clock.advance(self.factory.join_hold)
        messages = self.received(transport)
        welcome_seq = messages[0]["seq"]
        self.assertEqual(
            [m.get("seq") for m in messages[1:]],
            list(range(welcome_seq + 1, welcome_seq + 20)),
        )
        self.assertEqual(
            [m.get("text") for m in messages[1:19]], ["m%d" % (i,) for i in range(18)])
        self.assertEqual(messages[-1], {"type": "join", "seq": welcome_seq + 19,
                                        "name": protocol.name})

    def test_too_much_while_pending_is_told(self):
        """
        If what a pending client is owed outgrows what the server holds for
        one client (--sendq), it is told it lagged, from the first event it
        was not sent: never a silent gap.
        """
        self.factory = self.make_factory(backlog=2)
        self.factory.room.backlog.hold_limit = 500
        (member, _), = self.connect_many(1)
        protocol, transport = self.connect(join=False)
        for i in range(18):
            self.send(member, type="message", text="m%d" % (i,))
        self.send(protocol, type="heartbeat")
        welcome, lagged = self.received(transport)[:2]
        self.assertEqual(lagged, {"type": "lagged", "missed_from": welcome["seq"] + 1})

    def test_hold_limit_is_sendq(self):
        """
        What the room holds for a pending client beyond its backlog is
        bounded by --sendq, the most the server holds for any one client.
        """
        self.factory = self.make_factory(sendq=123456)
        self.assertEqual(self.factory.room.backlog.hold_limit, 123456)

    def test_pending_leaves_silently(self):
        """
        A connection that closes before joining was never announced, so
        nobody is told it left.
        """
        (_, first), = self.connect_many(1)
        protocol, _ = self.connect(join=False)
        self.lose(protocol)
        self.clock.advance(self.factory.join_hold)
        self.assertEqual(self.received(first), [])
        # Only the member's expiry timer is left: the pending connection's
        # timer and join hold went with it.
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(len(self.factory.connections), 1)

    def test_join_seen_by_others(self):
        """
        Members already present see the join.
        """
        (_, first), = self.connect_many(1)
        self.connect()
        self.assertEqual(self.received(first), [{"type": "join", "seq": 2, "name": "guest-2"}])

    def test_presence_announced(self):
        """
        welcome says whether the room is small enough for join and leave to
        be broadcast.
        """
        self.factory = self.make_factory(presence_limit=1)
        _, first = self.connect()
        self.assertTrue(self.received(first)[0]["presence"])
        _, second = self.connect()
        self.assertFalse(self.received(second)[0]["presence"])

    def test_sessions_differ(self):
        """
        Every connection gets its own session token.
        """
        tokens = {self.connect()[0].session for _ in range(20)}
        self.assertEqual(len(tokens), 20)

    def test_settings_announced(self):
        """
        welcome announces the factory's own settings.
        """
        self.factory = self.make_factory(
            heartbeat_interval=2.5, timeout=7.0, max_frame=4096, max_text=100,
            backlog=10, sendq=9999, rate=1.5, burst=3,
        )
        _, transport = self.connect(join=False)
        welcome = self.received(transport)[0]
        self.assertEqual(
            (welcome["heartbeat_interval"], welcome["timeout"]), (2.5, 7.0)
        )
        self.assertEqual((welcome["max_frame"], welcome["max_text"]), (4096, 100))
        self.assertEqual((welcome["backlog"], welcome["sendq"]), (10, 9999))
        self.assertEqual(welcome["rate"], {"burst": 3, "per_second": 1.5})

    def test_provides_chat_client(self):
        """
        The protocol is an IChatClient for the room.
        """
        protocol, _ = self.connect()
        self.assertTrue(verifyObject(IChatClient, protocol))


class MessageTests(ServerMixin, SynchronousTestCase):
    """
    heartbeat, message, nick, who and quit.
    """

    def setUp(self):
        super().setUp()
        self.clock.advance(1700000000)
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)

    def test_heartbeat_ack(self):
        """
        A heartbeat is answered, to the sender only, with its ts and the
        server's time.
        """
        self.send(self.alice, type="heartbeat", ts=12.5)
        self.assertEqual(
            self.received(self.alice_t),
            [{"type": "heartbeat_ack", "ts": 12.5, "now": 1700000000.0}],
        )
        self.assertEqual(self.received(self.bob_t), [])

    def test_heartbeat_without_ts(self):
        """
        Without ts, the ack has none.
        """
        self.send(self.alice, type="heartbeat")
        self.assertEqual(
            self.received(self.alice_t), [{"type": "heartbeat_ack", "now": 1700000000.0}]
        )

    def test_heartbeat_bad_ts(self):
        """
        A ts that is not a number is a bad frame.
        """
        self.send(self.alice, type="heartbeat", ts="noon")
        (error,) = self.received(self.alice_t)
        self.assertEqual((error["type"], error["code"]), ("error", "bad_frame"))

    def test_message_to_everyone(self):
        """
        A message goes to every client, the sender included, with seq, sender
        and time.
        """
        self.send(self.alice, type="message", text="hello")
        expected = [
            {
                "type": "message",
                "seq": 3,
                "from": "guest-1",
                "text": "hello",
                "time": 1700000000.0,
            }
        ]
        self.assertEqual(self.received(self.alice_t), expected)
        self.assertEqual(self.received(self.bob_t), expected)

    def test_message_longest(self):
        """
        A message of exactly max_text characters is accepted.
        """
        self.send(self.alice, type="message", text="\u00e9" * 4096)
        self.assertEqual(self.received(self.bob_t)[0]["text"], "\u00e9" * 4096)

    def test_message_too_long(self):
        """
        One character more is text_too_long, for the sender only, and is not
        broadcast.
        """
        self.send(self.alice, type="message", text="x" * 4097)
        (error,) = self.received(self.alice_t)
        self.assertEqual(error["code"], "text_too_long")
        self.assertEqual(self.received(self.bob_t), [])
        self.assertEqual(self.factory.room.seq, 2)

    def test_message_without_text(self):
        """
        A message with no, empty or non-string text is a bad frame.
        """
        for fields in [{}, {"text": ""}, {"text": 5}, {"text": None}]:
            self.send(self.alice, type="message", **fields)
            (error,) = self.received(self.alice_t)
            self.assertEqual(error["code"], "bad_frame", fields)
        self.assertEqual(self.received(self.bob_t), [])

    def test_unknown_members_ignored(self):
        """
        Members a type does not define are ignored.
        """
        self.send(self.alice, type="message", text="x", colour="red")
        self.assertEqual(self.received(self.bob_t)[0]["text"], "x")
        self.assertNotIn("colour", self.received(self.alice_t)[0])

    def test_nick(self):
        """
        nick renames the sender and tells everyone.
        """
        self.send(self.alice, type="nick", name="alice")
        expected = [{"type": "nick", "seq": 3, "old": "guest-1", "new": "alice"}]
        self.assertEqual(self.received(self.alice_t), expected)
        self.assertEqual(self.received(self.bob_t), expected)
        self.send(self.alice, type="message", text="x")
        self.assertEqual(self.received(self.bob_t)[0]["from"], "alice")

    def test_bad_nick(self):
        """
        An invalid or reserved name is bad_nick, for the sender only.
        """
        for name in ["guest-5", "has space", "", "x" * 33]:
            self.send(self.alice, type="nick", name=name)
            (error,) = self.received(self.alice_t)
            self.assertEqual(error["code"], "bad_nick", name)
        self.assertEqual(self.received(self.bob_t), [])

    def test_nick_not_a_string(self):
        """
        A missing or non-string name is a malformed frame (bad_frame), as
        for every member of the wrong type; bad_nick is for names.
        """
        for message in [{}, {"name": None}, {"name": 5}, {"name": ["x"]}]:
            self.send(self.alice, type="nick", **message)
            (error,) = self.received(self.alice_t)
            self.assertEqual(error["code"], "bad_frame", message)
        self.assertEqual(self.received(self.bob_t), [])

    def test_nick_to_own_name(self):
        """
        A rename to the name the client already has does nothing: no event,
        no seq used, no error.
        """
        self.send(self.alice, type="nick", name="alice")
        self.received(self.alice_t)
        seq = self.factory.room.seq
        self.send(self.alice, type="nick", name="alice")
        self.assertEqual(self.received(self.alice_t), [])
        self.assertEqual(self.factory.room.seq, seq)
        # Another case is another name, and is announced.
        self.send(self.alice, type="nick", name="Alice")
        (nick,) = self.received(self.alice_t)
        self.assertEqual((nick["old"], nick["new"], nick["seq"]), ("alice", "Alice", seq + 1))

    def test_nick_taken(self):
        """
        A name held by another client, in any case, is nick_taken.
        """
        self.send(self.alice, type="nick", name="alice")
        self.received(self.bob_t)
        self.send(self.bob, type="nick", name="Alice")
        (error,) = self.received(self.bob_t)
        self.assertEqual(error["code"], "nick_taken")
        self.assertEqual(self.bob.name, "guest-2")

    def test_who(self):
        """
        who lists every name, sorted, to the sender only.
        """
        self.send(self.bob, type="nick", name="Bob")
        self.send(self.alice, type="nick", name="alice")
        self.received(self.alice_t), self.received(self.bob_t)
        self.send(self.alice, type="who")
        self.assertEqual(
            self.received(self.alice_t), [{"type": "who", "names": ["Bob", "alice"]}]
        )
        self.assertEqual(self.received(self.bob_t), [])

    def test_quit(self):
        """
        quit closes the connection; the others see leave with reason quit
        and the farewell.
        """
        self.send(self.alice, type="quit", message="bye")
        self.assertTrue(self.alice_t.disconnecting)
        self.lose(self.alice)
        self.assertEqual(
            self.received(self.bob_t),
            [{"type": "leave", "seq": 3, "name": "guest-1", "reason": "quit", "message": "bye"}],
        )

    def test_quit_bad_message(self):
        """
        A farewell that is not valid text is dropped; the quit still works.
        """
        self.send(self.alice, type="quit", message=17)
        self.lose(self.alice)
        leave = self.received(self.bob_t)[0]
        self.assertEqual(leave["reason"], "quit")
        self.assertNotIn("message", leave)

    def test_nothing_after_quit(self):
        """
        Frames behind a quit, even in the same read, are ignored.
        """
        self.alice.dataReceived(
            frame(type="quit") + frame(type="message", text="ghost")
        )
        self.assertEqual(self.received(self.bob_t), [])


class RequestIdTests(ServerMixin, SynchronousTestCase):
    """
    A client frame may carry an "id"; the direct reply or error to it
    echoes it, and broadcasts do not carry it.
    """

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)

    def test_heartbeat_ack(self):
        """
        heartbeat_ack echoes the id, after ts and now.
        """
        self.clock.advance(5)
        self.send(self.alice, type="heartbeat", ts=1.5, id="hb-1")
        (ack,) = self.received(self.alice_t)
        self.assertEqual(ack, {"type": "heartbeat_ack", "ts": 1.5, "now": 5.0, "id": "hb-1"})
        self.send(self.alice, type="heartbeat", id=7)
        (ack,) = self.received(self.alice_t)
        self.assertEqual(ack, {"type": "heartbeat_ack", "now": 5.0, "id": 7})

    def test_error(self):
        """
        An error echoes the id of the frame it refuses, so that two requests
        of one kind can be told apart.
        """
        self.send(self.alice, type="nick", name="Taken", id="first")
        self.send(self.bob, type="nick", name="taken", id="second")
        self.send(self.bob, type="nick", name="free", id="third")
        error, nick = self.received(self.bob_t)[1:]
        self.assertEqual((error["code"], error["id"]), ("nick_taken", "second"))
        self.assertEqual(nick, {"type": "nick", "seq": 4, "old": "guest-2", "new": "free"})

    def test_unknown_type(self):
        """
        Even a frame of an unknown type gets its id back with the error.
        """
        self.send(self.alice, type="dance", id=3)
        (error,) = self.received(self.alice_t)
        self.assertEqual((error["code"], error["id"]), ("unknown_type", 3))

    def test_who_pages(self):
        """
        Every page of a who answer carries the id.
        """
        # (150 connections from one address: no --max-per-ip.)
        self.factory = self.make_factory(max_frame=1024, max_text=100, max_per_ip=0)
        pairs = self.connect_many(150)
        protocol, transport = pairs[0]
        request_id = "\u2603" * 64
        protocol.dataReceived(wire.frame(wire.encode({"type": "who", "id": request_id})))
        data = transport.value()
        pages = self.received(transport)
        self.assertGreater(len(pages), 1)
        self.assertEqual({page["id"] for page in pages}, {request_id})
        self.assertEqual(sum(len(page["names"]) for page in pages), 150)
        while data:
            (length,) = wire.PREFIX.unpack_from(data)
            self.assertLessEqual(length, 1024)
            data = data[4 + length:]

    def test_resumed(self):
        """
        resumed echoes the id of the resume.
        """
        self.send(self.alice, type="resume", session=self.alice.session,
                  last_seq=self.factory.room.seq, id="r")
        (resumed,) = self.received(self.alice_t)
        self.assertEqual(resumed["id"], "r")

    def test_rate_limited(self):
        """
        A refusal by flood control echoes the id too.
        """
        for i in range(21):
            self.send(self.alice, type="message", text="x", id=i)
        errors = [m for m in self.received(self.alice_t) if m["type"] == "error"]
        self.assertEqual([(e["code"], e["id"]) for e in errors], [("rate_limited", 20)])

    def test_not_in_broadcasts(self):
        """
        A message's id is not in the event everyone receives.
        """
        self.send(self.alice, type="message", text="hi", id="m")
        (event,) = self.received(self.bob_t)
        self.assertNotIn("id", event)

    def test_bad_id(self):
        """
        An id that is neither a short string nor a whole number is
        bad_frame, without an echo, and the frame is not acted on.
        """
        self.send(self.alice, type="message", text="hi", id=[1])
        (error,) = self.received(self.alice_t)
        self.assertEqual(error["code"], "bad_frame")
        self.assertNotIn("id", error)
        self.assertEqual(self.received(self.bob_t), [])


class ErrorTests(ServerMixin, SynchronousTestCase):
    """
    Bad frames get an error, to the sender only; the sender stays connected
    except after frame_too_large.
    """

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)

    def assertError(self, data, code):
        self.alice.dataReceived(data)
        (error,) = self.received(self.alice_t)
        self.assertEqual(error["type"], "error")
        self.assertEqual(error["code"], code)
        self.assertIsInstance(error["message"], str)
        self.assertEqual(self.received(self.bob_t), [])
        return error

    def assertStillServed(self):
        self.assertFalse(self.alice_t.disconnecting)
        self.send(self.alice, type="message", text="still here")
        self.assertEqual(self.received(self.bob_t)[0]["text"], "still here")

    def test_not_utf8(self):
        """
        A payload that is not UTF-8 is bad_frame.
        """
        self.assertError(wire.frame(b'{"type":"who","x":"\xc3"}'), "bad_frame")
        self.assertStillServed()

    def test_not_json(self):
        """
        A payload that is not JSON is bad_frame.
        """
        self.assertError(wire.frame(b"hello"), "bad_frame")
        self.assertStillServed()

    def test_not_object(self):
        """
        JSON that is not an object is bad_frame.
        """
        self.assertError(wire.frame(b'["message","x"]'), "bad_frame")
        self.assertStillServed()

    def test_no_type(self):
        """
        An object without a string type is bad_frame.
        """
        self.assertError(wire.frame(b'{"text":"x"}'), "bad_frame")
        self.assertError(wire.frame(b'{"type":42}'), "bad_frame")
        self.assertStillServed()

    def test_empty_frame(self):
        """
        A frame of length 0 is bad_frame.
        """
        self.assertError(b"\x00\x00\x00\x00", "bad_frame")
        self.assertStillServed()

    def test_unknown_type(self):
        """
        An unknown type is unknown_type; a long one is quoted only in part.
        """
        error = self.assertError(frame(type="dance"), "unknown_type")
        self.assertIn("dance", error["message"])
        error = self.assertError(frame(type="z" * 5000), "unknown_type")
        self.assertLess(len(error["message"]), 100)
        self.assertStillServed()

    def test_server_types_are_unknown_from_clients(self):
        """
        Types only the server sends, and names of Python attributes, are
        unknown_type.
        """
        for kind in ["welcome", "joined", "leave", "error", "__class__", "send"]:
            self.assertError(frame(type=kind), "unknown_type")
        self.assertStillServed()

    def test_frame_too_large(self):
        """
        A length prefix over max_frame gets frame_too_large, closes the
        connection, and the others see leave with reason error.
        """
        self.assertError(struct.pack("!I", 65537) + b"{", "frame_too_large")
        self.assertTrue(self.alice_t.disconnecting)
        self.alice.dataReceived(b"more garbage" * 100)
        self.assertEqual(self.alice_t.value(), b"")
        self.lose(self.alice, ConnectionAborted)
        self.assertEqual(
            self.received(self.bob_t),
            [{"type": "leave", "seq": 3, "name": "guest-1", "reason": "error"}],
        )

    def test_frame_of_max_frame(self):
        """
        A frame of exactly max_frame bytes is accepted.
        """
        head = b'{"type":"heartbeat","pad":"'
        payload = head + b"x" * (65536 - len(head) - 2) + b'"}'
        self.assertEqual(len(payload), 65536)
        self.alice.dataReceived(wire.frame(payload))
        self.assertEqual(self.received(self.alice_t)[0]["type"], "heartbeat_ack")

    def test_byte_at_a_time(self):
        """
        A frame that arrives one byte at a time is handled once, whole.
        """
        data = frame(type="message", text="slowly") + frame(type="who")
        for i in range(len(data)):
            self.alice.dataReceived(data[i : i + 1])
        messages = self.received(self.alice_t)
        self.assertEqual([m["type"] for m in messages], ["message", "who"])
        self.assertEqual(messages[0]["text"], "slowly")

    def test_many_frames_in_one_read(self):
        """
        Several frames in one read are all handled, in order.
        """
        self.alice.dataReceived(
            frame(type="message", text="1")
            + frame(type="bogus")
            + frame(type="message", text="2")
        )
        messages = self.received(self.alice_t)
        self.assertEqual(
            [m.get("text", m.get("code")) for m in messages], ["1", "unknown_type", "2"]
        )


class ExpiryTests(ServerMixin, SynchronousTestCase):
    """
    The per-connection expiry timer.
    """

    # A power of two, so that adding it up is exact.
    epsilon = 2**-10

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)
        # bob only watches; his own timer would expire him as well.
        self.bob.setTimeout(None)

    def assertAlive(self):
        self.assertFalse(self.alice_t.disconnecting)

    def assertExpired(self):
        self.assertTrue(self.alice_t.disconnecting)
        self.lose(self.alice, ConnectionAborted)
        leaves = [m for m in self.received(self.bob_t) if m["type"] == "leave"]
        self.assertEqual(
            leaves,
            [{"type": "leave", "seq": self.factory.room.seq, "name": "guest-1", "reason": "timeout"}],
        )

    def test_expires_at_timeout(self):
        """
        A silent client is aborted exactly timeout seconds after connecting,
        not before, and the others are told it left with reason timeout.
        """
        self.clock.advance(self.server_timeout - self.epsilon)
        self.assertAlive()
        self.clock.advance(self.epsilon)
        self.assertExpired()

    def test_any_frame_resets(self):
        """
        Every kind of frame, even a bad one, restarts the countdown.
        """
        frames = [
            frame(type="heartbeat"),
            frame(type="message", text="x"),
            frame(type="who"),
            frame(type="nonsense"),
            wire.frame(b"not json"),
        ]
        for data in frames:
            self.clock.advance(self.server_timeout - self.epsilon)
            self.alice.dataReceived(data)
            self.assertAlive()
        self.clock.advance(self.server_timeout - self.epsilon)
        self.assertAlive()
        self.clock.advance(self.epsilon)
        self.assertExpired()

    def test_never_sends_anything(self):
        """
        A connection that never sends a single frame is expired by the same
        timer, timeout seconds after it connected.
        """
        protocol, transport = self.connect(join=False)
        self.clock.advance(self.server_timeout - self.epsilon)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(self.epsilon)
        self.assertTrue(transport.disconnected)
        self.lose(protocol, ConnectionAborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_partial_frame_does_not_reset(self):
        """
        Only a whole frame counts: a trickle of bytes that never completes
        one does not keep the connection alive.
        """
        # (Here the idle timer alone: the frame's own, shorter deadline is
        # tested in tests/unit/test_abuse.py.)
        self.factory.frame_timeout = self.server_timeout
        data = frame(type="heartbeat")
        for i in range(len(data) - 1):
            self.clock.advance(1)
            self.alice.dataReceived(data[i : i + 1])
        self.clock.advance(self.server_timeout - (len(data) - 1))
        self.assertExpired()

    def test_other_clients_unaffected(self):
        """
        A client that sends heartbeats stays while a silent one expires.
        """
        self.bob.setTimeout(self.server_timeout)
        for _ in range(4):
            self.clock.advance(self.interval)
            self.send(self.bob, type="heartbeat")
        self.assertTrue(self.alice_t.disconnecting)
        self.assertFalse(self.bob_t.disconnecting)

    def test_expiry_logged(self):
        """
        The log says who expired and after how long.
        """
        with capturedLogs() as events:
            self.clock.advance(self.server_timeout)
        (event,) = [e for e in events if "expired" in e["log_format"]]
        self.assertIn("{timeout} s without a frame", event["log_format"])
        self.assertEqual(event["name"], "guest-1")
        self.assertEqual(event["peer"], "127.0.0.1:40000")
        self.assertEqual(event["timeout"], 30.0)

    def test_timer_cancelled_whatever_the_end(self):
        """
        However a connection ends, its timer is cancelled.
        """
        self.clock = Clock()
        self.factory = self.make_factory()
        endings = [
            lambda p: self.lose(p, ConnectionDone),
            lambda p: self.lose(p, ConnectionLost),
            lambda p: (self.send(p, type="quit"), self.lose(p)),
            lambda p: (p.dataReceived(b"\xff\xff\xff\xff"), self.lose(p, ConnectionAborted)),
            lambda p: (self.clock.advance(self.server_timeout), self.lose(p, ConnectionAborted)),
        ]
        for end in endings:
            protocol, _ = self.connect()
            self.assertEqual(len(self.clock.getDelayedCalls()), 1)
            end(protocol)
            self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.factory.connections), 0)
        self.assertEqual(len(self.factory.room), 0)


class LeaveReasonTests(ServerMixin, SynchronousTestCase):
    """
    The reason in a leave event says how the connection ended.
    """

    def leave_reason(self, end):
        ((alice, _), (bob, bob_t)) = self.connect_many(2)
        self.others = (bob, bob_t)
        end(alice)
        (leave,) = self.received(bob_t)
        self.assertEqual(leave["type"], "leave")
        return leave["reason"]

    def test_eof(self):
        """
        A clean close without quit is eof.
        """
        self.assertEqual(self.leave_reason(lambda p: self.lose(p, ConnectionDone)), "eof")

    def test_reset(self):
        """
        A connection lost with an error is reset.
        """
        self.assertEqual(self.leave_reason(lambda p: self.lose(p, ConnectionLost)), "reset")

    def test_quit(self):
        """
        A client that said quit left for reason quit.
        """
        def end(p):
            self.send(p, type="quit")
            self.lose(p)

        self.assertEqual(self.leave_reason(end), "quit")

    def test_timeout(self):
        """
        A silent client left for reason timeout.
        """
        def end(p):
            # The other client keeps talking; this one says nothing.
            for _ in range(3):
                self.clock.advance(self.server_timeout / 3)
                self.send(self.others[0], type="heartbeat")
            self.received(self.others[1])
            self.lose(p, ConnectionAborted)

        self.assertEqual(self.leave_reason(end), "timeout")

    def test_error(self):
        """
        A client dropped for a protocol violation left for reason error.
        """
        def end(p):
            p.dataReceived(struct.pack("!I", 10**9))
            self.lose(p, ConnectionDone)

        self.assertEqual(self.leave_reason(end), "error")


class OrderingTests(ServerMixin, SynchronousTestCase):
    """
    One seq over all broadcast events, seen in the same order everywhere.
    """

    def test_everyone_sees_the_same_gap_free_sequence(self):
        """
        Interleaved messages, nicks, joins and leaves reach every client
        with seq rising by exactly one, identically for all who were there.
        """
        pairs = self.connect_many(4)
        protocols = [p for p, _ in pairs]
        self.send(protocols[0], type="message", text="a")
        self.send(protocols[1], type="nick", name="bee")
        self.send(protocols[2], type="message", text="c")
        late, late_t = self.connect()
        self.send(late, type="message", text="late")
        self.send(protocols[3], type="quit")
        self.lose(protocols[3])
        self.send(protocols[0], type="who")
        self.send(protocols[1], type="message", text="end")

        def events(transport):
            return [m for m in self.received(transport) if m["type"] != "welcome" and "seq" in m]

        streams = [events(t) for _, t in pairs[:3]]
        for stream in streams:
            seqs = [m["seq"] for m in stream]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(streams[0], streams[1])
        self.assertEqual(streams[1], streams[2])
        late_stream = events(late_t)
        self.assertEqual(late_stream, streams[0][-len(late_stream) :])
        self.assertEqual(streams[0][-1]["seq"], self.factory.room.seq)


class WhoPagingTests(ServerMixin, SynchronousTestCase):
    """
    who replies never exceed max_frame.
    """

    def test_paginate(self):
        """
        Pages hold every name once, in order, and each fits the frame.
        """
        names = ["n%04d" % i for i in range(500)]
        pages = paginate_names(names, 1024)
        self.assertGreater(len(pages), 1)
        self.assertEqual([n for page in pages for n in page], names)
        for page in pages:
            self.assertLessEqual(
                len(wire.encode({"type": "who", "names": page, "more": True})), 1024
            )

    def test_paginate_empty(self):
        """
        An empty room is one empty page.
        """
        self.assertEqual(paginate_names([], 1024), [[]])

    def test_who_in_pages(self):
        """
        A room too big for one frame is listed over several, all but the last
        marked more.
        """
        # (150 connections from one address: no --max-per-ip.)
        self.factory = self.make_factory(max_frame=1024, max_text=100, max_per_ip=0)
        pairs = self.connect_many(150)
        protocol, transport = pairs[0]
        self.send(protocol, type="who")
        pages = self.received(transport)
        self.assertGreater(len(pages), 1)
        self.assertEqual([p.get("more", False) for p in pages], [True] * (len(pages) - 1) + [False])
        names = [n for p in pages for n in p["names"]]
        self.assertEqual(names, self.successResultOf(self.factory.room.names()))
        self.assertEqual(len(names), 150)
        self.assertLessEqual(max(len(wire.encode(p)) for p in pages), 1024)


class LoggingTests(ServerMixin, SynchronousTestCase):
    """
    What the server's log says.
    """

    def test_log_lines(self):
        """
        Connections, renames and leaves are logged with name and address;
        with --verbose messages are too, their text sanitized.
        """
        self.factory = self.make_factory(verbose=True)
        with capturedLogs() as events:
            protocol, _ = self.connect(port=5555)
            self.send(protocol, type="message", text="hi\x1b[2J")
            self.send(protocol, type="nick", name="alice")
            self.send(protocol, type="quit")
            self.lose(protocol)
        formats = [(e["log_format"], e.get("name"), e.get("peer")) for e in events]
        self.assertIn(("{name} ({peer}) connected", "guest-1", "127.0.0.1:5555"), formats)
        self.assertIn(("{old} ({peer}) is now {name}", "alice", "127.0.0.1:5555"), formats)
        self.assertIn(("{name} ({peer}) left: {reason}", "alice", "127.0.0.1:5555"), formats)
        (message,) = [e for e in events if e["log_format"] == "{name} ({peer}) says: {text}"]
        self.assertEqual(message["text"], "hi\\x1b[2J")

    def test_connection_lines_within_budget(self):
        """
        Lines about clients connecting and leaving keep within --log-rate a
        second, the rest summed up; --verbose logs them all; a stopping
        server sums up at once.
        """
        for verbose, logged in [(False, 2), (True, 5)]:
            self.factory = self.make_factory(log_rate=2, verbose=verbose)
            with capturedLogs() as events:
                for port in range(5):
                    self.connect(port=port)
                self.factory.stopFactory()
            formats = [e["log_format"] for e in events]
            self.assertEqual(formats.count("{name} ({peer}) connected"), logged)
            summaries = [e for e in events if "more lines not logged" in e["log_format"]]
            if verbose:
                self.assertEqual(summaries, [])
            else:
                self.assertEqual(summaries[0]["kinds"], "3 connected")

    def test_messages_logged_only_when_verbose(self):
        """
        Without --verbose, chat messages are not logged (or formatted).
        """
        protocol, _ = self.connect()
        with capturedLogs() as events:
            self.send(protocol, type="message", text="quiet")
        self.assertEqual([e for e in events if "says" in e["log_format"]], [])

    def test_heartbeats_logged_only_when_verbose(self):
        """
        Heartbeats are logged with --verbose and not without.
        """
        for verbose, count in [(False, 0), (True, 1)]:
            self.factory = self.make_factory(verbose=verbose)
            protocol, _ = self.connect()
            with capturedLogs() as events:
                self.send(protocol, type="heartbeat")
            self.assertEqual(
                len([e for e in events if "heartbeat" in e["log_format"]]), count
            )


class ShutdownTests(ServerMixin, SynchronousTestCase):
    """
    L{ChatServerFactory.shutdown}: the graceful stop.
    """

    def test_no_connections(self):
        """
        With nobody connected, shutdown is done at once.
        """
        self.successResultOf(self.factory.shutdown())

    def test_shutdown_frame_then_close(self):
        """
        Every client is sent shutdown, with its own reconnect_after between
        1 and 5 s, and closed; nobody is sent leave events; the Deferred
        fires once all are gone.
        """
        # Seeded: five delays drawn at random to the millisecond collide
        # one run in four hundred.
        self.factory = self.make_factory(random=Random(2))
        pairs = self.connect_many(5)
        d = self.factory.shutdown("maintenance")
        delays = []
        for _, transport in pairs:
            (shutdown,) = parse_frames(transport.value())
            delays.append(shutdown.pop("reconnect_after"))
            self.assertEqual(shutdown, {"type": "shutdown", "message": "maintenance"})
            self.assertTrue(transport.disconnecting)
        self.assertTrue(all(1 <= delay <= 5 for delay in delays))
        self.assertEqual(len(set(delays)), 5)
        self.assertNoResult(d)
        for protocol, _ in pairs[:4]:
            self.lose(protocol)
        self.assertNoResult(d)
        self.lose(pairs[4][0])
        self.successResultOf(d)
        for _, transport in pairs:
            self.assertEqual(len(parse_frames(transport.value())), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_newcomers(self):
        """
        A connection made during the shutdown is refused.
        """
        self.connect_many(1)
        self.factory.shutdown()
        protocol, transport = self.connect(join=False)
        (error,) = self.received(transport)
        self.assertEqual(error["code"], "server_full")
        self.assertTrue(transport.disconnecting)

    def test_queued_frames_flushed_first(self):
        """
        A client whose transport is full gets its queued frames, then the
        shutdown, before the connection closes.
        """
        ((reader, reader_t), (talker, _)) = self.connect_many(2)
        reader_t.producer.pauseProducing()
        self.send(talker, type="message", text="queued")
        self.factory.shutdown()
        self.assertEqual(reader_t.value(), b"")
        self.assertFalse(reader_t.disconnecting)
        reader_t.producer.resumeProducing()
        self.assertEqual(
            [m["type"] for m in self.received(reader_t)], ["message", "shutdown"]
        )
        self.assertTrue(reader_t.disconnecting)

    def test_stragglers_aborted(self):
        """
        A connection that has not closed after the grace period is aborted.
        """
        ((fast, _), (slow, slow_t)) = self.connect_many(2)
        d = self.factory.shutdown(grace=2.0)
        self.lose(fast)
        self.clock.advance(1.9)
        self.assertFalse(slow_t.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(slow_t.disconnected)
        self.assertNoResult(d)
        self.lose(slow, ConnectionAborted)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_abort_all(self):
        """
        abort_all (a second signal) ends the grace period at once.
        """
        ((protocol, transport),) = self.connect_many(1)
        d = self.factory.shutdown(grace=60.0)
        self.factory.abort_all()
        self.assertTrue(transport.disconnected)
        self.lose(protocol, ConnectionAborted)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ClosingTests(ServerMixin, SynchronousTestCase):
    """
    Input after the server decided to close.
    """

    def test_quit_then_oversized_frame(self):
        """
        A quit followed in the same read by an oversized length prefix
        closes once, quietly.
        """
        ((alice, alice_t),) = self.connect_many(1)
        alice.dataReceived(frame(type="quit") + b"\xff\xff\xff\xff")
        self.assertTrue(alice_t.disconnecting)
        self.assertEqual(self.received(alice_t), [])


class TrickleTests(ServerMixin, SynchronousTestCase):
    """
    A large frame arriving in many small pieces costs linear, not
    quadratic, work.
    """

    def test_large_frame_byte_by_byte(self):
        """
        A 60 KB message sent a byte at a time is framed once, whole, and
        the receiver's buffer is not rebuilt on every byte.
        """
        from twisted.protocols.basic import Int32StringReceiver

        ((alice, alice_t), (_, bob_t)) = self.connect_many(2)
        calls = []
        original = Int32StringReceiver.dataReceived

        def counting(protocol, data):
            calls.append(len(data))
            return original(protocol, data)

        self.patch(Int32StringReceiver, "dataReceived", counting)
        text = "\u00e9" * 4000
        data = frame(type="message", text=text) + frame(type="who")
        for i in range(len(data)):
            alice.dataReceived(data[i : i + 1])
        self.assertEqual(self.received(bob_t)[0]["text"], text)
        self.assertEqual([m["type"] for m in self.received(alice_t)], ["message", "who"])
        self.assertLess(len(calls), 100)

    def test_too_large_still_refused(self):
        """
        A frame over max_frame is still refused at its length prefix.
        """
        ((alice, alice_t),) = self.connect_many(1)
        alice.dataReceived(struct.pack("!I", 70000))
        self.assertEqual(self.received(alice_t)[0]["code"], "frame_too_large")


class FellBehindTests(ServerMixin, SynchronousTestCase):
    """
    A cluster node that fell behind its stream tells its clients.
    """

    def test_lagged_until_resume(self):
        """
        After one lagged frame nothing more is sent until a resume, even a failed one.
        """
        protocol, transport = self.connect()
        transport.clear()
        lobby = self.factory.room
        protocol.fell_behind(7, lobby)
        protocol.fell_behind(8, lobby)
        self.assertEqual(self.received(transport), [{"type": "lagged", "missed_from": 7}])
        protocol.deliver(9, frame(type="message", seq=9), lobby)
        self.assertEqual(self.received(transport), [])
        # Its resume fails (the node has no such events) but ends the lag.
        self.send(protocol, type="resume", session=protocol.session, last_seq=6)
        self.assertEqual(self.received(transport)[0]["code"], wire.RESUME_FAILED)
        protocol.deliver(10, frame(type="message", seq=10), lobby)
        self.assertEqual(self.received(transport), [{"type": "message", "seq": 10}])
