"""
Tests for what keeps one peer from hurting the others, and keeps accepted
events from being lost: resume with replay, slow readers, flood control and
connection limits.  Protocol level, on L{StringTransport} and a L{Clock}.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers.memory import ServerMixin, frame, parse_frames
from twisted_chat import wire
from twisted_chat.room import MemoryStore


class ResumeTests(ServerMixin, SynchronousTestCase):
    """
    A client that lost its connection resumes its session on a new one.
    """

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)
        self.send(self.alice, type="nick", name="alice")
        self.send(self.bob, type="message", text="before")
        self.last_seen = self.factory.room.seq
        self.received(self.alice_t), self.received(self.bob_t)
        # Alice's connection goes dead without the server noticing; the room
        # goes on.
        for i in range(3):
            self.send(self.bob, type="message", text="missed %d" % (i,))

    def resume(self, session=None, last_seq=None):
        protocol, transport = self.connect(join=False)
        transport.clear()
        self.send(
            protocol,
            type="resume",
            session=self.alice.session if session is None else session,
            last_seq=self.last_seen if last_seq is None else last_seq,
        )
        return protocol, transport

    def test_replays_exact_bytes(self):
        """
        The missed events are replayed exactly as they were first sent, then
        resumed says how many.
        """
        sent_to_bob = self.bob_t.value()
        protocol, transport = self.resume()
        data = transport.value()
        self.assertTrue(data.startswith(sent_to_bob))
        messages = parse_frames(data)
        self.assertEqual([m.get("text") for m in messages[:3]], ["missed 0", "missed 1", "missed 2"])
        self.assertEqual(messages[3], {"type": "resumed", "replayed": 3, "name": "alice"})

    def test_takes_over_stale_connection(self):
        """
        The stale connection still holding the name is aborted, and the
        room sees neither a leave nor a join.
        """
        self.bob_t.clear()
        protocol, _ = self.resume()
        self.assertTrue(self.alice_t.disconnected)
        self.lose(self.alice, ConnectionAborted)
        self.assertEqual(self.received(self.bob_t), [])
        self.assertEqual(protocol.name, "alice")
        self.assertEqual(
            self.successResultOf(self.factory.room.names()), ["alice", "guest-2"])
        self.send(protocol, type="message", text="back")
        self.assertEqual(self.received(self.bob_t)[0]["from"], "alice")

    def test_after_leave(self):
        """
        If the old connection has already left, the name is taken back and
        the room sees it join.
        """
        self.lose(self.alice, ConnectionDone)
        self.bob_t.clear()
        protocol, transport = self.resume()
        self.assertEqual(
            self.received(self.bob_t),
            [{"type": "join", "seq": self.factory.room.seq, "name": "alice"}],
        )
        replayed = [m for m in self.received(transport) if m["type"] != "join"]
        self.assertEqual(replayed[-1], {"type": "resumed", "replayed": 4, "name": "alice"})
        self.assertEqual(replayed[-2]["type"], "leave")

    def test_after_leave_name_taken(self):
        """
        If someone took the name meanwhile, the resumed client keeps its
        guest name.
        """
        self.lose(self.alice, ConnectionDone)
        self.send(self.bob, type="nick", name="alice")
        protocol, transport = self.resume()
        self.assertEqual(protocol.name, "guest-3")
        self.assertEqual(self.received(transport)[-1]["name"], "guest-3")

    def test_unknown_session(self):
        """
        An unknown session gets resume_failed with the oldest seq kept, and
        the client joins as the new session its welcome announced.
        """
        self.bob_t.clear()
        protocol, transport = self.resume(session="no-such-session")
        error, join = self.received(transport)
        self.assertEqual(error["code"], "resume_failed")
        self.assertEqual(error["oldest_seq"], 1)
        self.assertEqual(join["name"], "guest-3")
        self.assertEqual(self.received(self.bob_t), [join])
        self.assertNotEqual(protocol.session, self.alice.session)

    def test_too_old(self):
        """
        A resume from before the backlog fails with oldest_seq.
        """
        self.factory = self.make_factory(backlog=3)
        (old, _), (other, _) = self.connect_many(2)
        for i in range(6):
            self.send(other, type="message", text=str(i))
        protocol, transport = self.connect(join=False)
        transport.clear()
        oldest = self.factory.room.seq - 2
        self.send(protocol, type="resume", session=old.session, last_seq=oldest - 2)
        error = self.received(transport)[0]
        self.assertEqual(error["code"], "resume_failed")
        self.assertEqual(error["oldest_seq"], oldest)
        # From just before the oldest event kept, it works.
        protocol, transport = self.connect(join=False)
        transport.clear()
        oldest = self.factory.room.oldest_seq
        self.send(protocol, type="resume", session=old.session, last_seq=oldest - 1)
        self.assertEqual(self.received(transport)[-1]["type"], "resumed")

    def test_future_seq(self):
        """
        A last_seq the server never reached cannot be resumed, and the error
        says that, not that events were dropped.
        """
        seq = self.factory.room.seq
        _, transport = self.resume(last_seq=seq + 413)
        error = self.received(transport)[0]
        self.assertEqual(error["code"], "resume_failed")
        self.assertEqual(
            error["message"],
            "last_seq %d is ahead of the room, whose last event is %d" % (seq + 413, seq))

    def test_burst_beyond_backlog_before_resume(self):
        """
        A resume as the first frame replays every event after its last_seq,
        those broadcast after the new connection's welcome included, even
        when they are more than the backlog holds.
        """
        self.factory = self.make_factory(backlog=4)
        (old, _), (other, _) = self.connect_many(2)
        last_seen = self.factory.room.seq
        protocol, transport = self.connect(join=False)
        transport.clear()
        for i in range(12):
            self.send(other, type="message", text=str(i))
        self.send(protocol, type="resume", session=old.session, last_seq=last_seen)
        messages = self.received(transport)
        self.assertEqual([m["seq"] for m in messages[:-1]],
                         list(range(last_seen + 1, last_seen + 13)))
        self.assertEqual(messages[-1]["replayed"], 12)

    def test_own_session_replays_nothing_sent(self):
        """
        A connection that resumes its own session while keeping up is sent
        nothing again, whatever last_seq it gives: never the same event
        twice.
        """
        self.bob_t.clear()
        self.send(self.bob, type="resume", session=self.bob.session, last_seq=1)
        self.assertEqual(
            self.received(self.bob_t), [{"type": "resumed", "replayed": 0, "name": "guest-2"}])

    def test_nothing_missed(self):
        """
        Resuming at the current seq replays nothing.
        """
        _, transport = self.resume(last_seq=self.factory.room.seq)
        self.assertEqual(
            self.received(transport), [{"type": "resumed", "replayed": 0, "name": "alice"}]
        )

    def test_malformed(self):
        """
        A malformed resume is a bad frame; the client joins afresh.
        """
        for fields in [{"session": 5, "last_seq": 1}, {"session": "x", "last_seq": -1},
                       {"session": "x", "last_seq": "1"}, {"session": "x" * 65, "last_seq": 1},
                       {"last_seq": 1}]:
            protocol, transport = self.connect(join=False)
            transport.clear()
            self.send(protocol, type="resume", **fields)
            error, join = self.received(transport)
            self.assertEqual((error["code"], join["type"]), ("bad_frame", "join"), fields)

    def test_later_resume_of_other_session_refused(self):
        """
        Once joined, a connection may resume only its own session.
        """
        self.send(self.bob, type="resume", session=self.alice.session, last_seq=1)
        error = self.received(self.bob_t)[-1]
        self.assertEqual(error["code"], "resume_failed")
        self.assertFalse(self.alice_t.disconnected)

    def test_sessions_bounded(self):
        """
        Sessions of connections long gone are forgotten: the table does not
        grow with every connection ever made.
        """
        self.factory = self.make_factory(backlog=10)
        for _ in range(200):
            protocol, _ = self.connect()
            self.lose(protocol)
        # Private: no public call counts the sessions the store remembers.
        self.assertLessEqual(len(self.factory.room.store._sessions), 12)
        self.assertEqual(len(self.factory.room.backlog), 10)


class _AskingStore(MemoryStore):
    """
    A store that, like Redis, answers a resume or a rename later.
    """

    def resume(self, client, token):
        self.resumed = (client, token)
        self.asked = defer.Deferred()
        return self.asked

    def rename(self, client, new_name):
        self.renamed = (client, new_name)
        self.asked = defer.Deferred()
        return self.asked


class ResumeAnsweredLaterTests(ServerMixin, SynchronousTestCase):
    """
    A resume the room answers later, on a connection lost meanwhile.
    """

    def make_factory(self, **kwargs):
        return super().make_factory(store=_AskingStore(), **kwargs)

    def answer_resume(self):
        """
        Let the memory store answer the resume the test store was asked.
        """
        store = self.factory.room.store
        MemoryStore.resume(store, *store.resumed).chainDeferred(store.asked)

    def answer_rename(self):
        """
        Let the memory store answer the rename the test store was asked.
        """
        store = self.factory.room.store
        MemoryStore.rename(store, *store.renamed).chainDeferred(store.asked)

    def test_frames_wait_for_the_answer(self):
        """
        Frames sent right behind a resume wait, unread, until the room has
        answered it: they then act under the resumed name, after resumed.
        """
        ((alice, alice_t), (bob, bob_t)) = self.connect_many(2)
        self.send(alice, type="nick", name="alice")
        self.answer_rename()
        self.lose(alice)
        self.received(bob_t)
        protocol, transport = self.connect(join=False)
        transport.clear()
        protocol.dataReceived(
            frame(type="resume", session=alice.session, last_seq=self.factory.room.seq)
            + frame(type="message", text="after resuming"))
        self.assertEqual(self.received(transport), [])
        self.assertEqual(self.received(bob_t), [])
        self.answer_resume()
        self.assertEqual(
            [m["type"] for m in self.received(transport)], ["join", "resumed", "message"])
        said = self.received(bob_t)
        self.assertEqual([m["type"] for m in said], ["join", "message"])
        self.assertEqual(said[-1]["from"], "alice")

    def test_frames_wait_for_a_refusal(self):
        """
        A refused resume joins the connection as its new session, and the
        frames that waited are then handled.
        """
        protocol, transport = self.connect(join=False)
        welcome = self.received(transport)[0]
        protocol.dataReceived(
            frame(type="resume", session="gone", last_seq=0) + frame(type="who", id=7))
        self.assertEqual(self.received(transport), [])
        self.factory.room.store.asked.errback(
            wire.ProtocolError(wire.RESUME_FAILED, "unknown session", oldest_seq=1))
        messages = self.received(transport)
        self.assertEqual(
            [m["type"] for m in messages], ["error", "join", "who"])
        self.assertEqual(messages[-1], {"type": "who", "names": [welcome["name"]], "id": 7})

    def test_frames_wait_for_a_rename(self):
        """
        A message sent right behind a nick goes out under the new name: it
        waits, unread, until the store has answered the rename.
        """
        ((alice, alice_t), (bob, bob_t)) = self.connect_many(2)
        alice.dataReceived(
            frame(type="nick", name="alice") + frame(type="message", text="hi"))
        self.assertEqual(self.received(bob_t), [])
        self.answer_rename()
        said = self.received(bob_t)
        self.assertEqual([m["type"] for m in said], ["nick", "message"])
        self.assertEqual(said[-1]["from"], "alice")

    def test_refused_after_lost(self):
        """
        A refusal that comes after the connection was lost does not join
        that dead connection to the room.
        """
        (member, member_t), = self.connect_many(1)
        protocol, _ = self.connect(join=False)
        self.send(protocol, type="resume", session="gone", last_seq=0)
        self.lose(protocol)
        self.factory.room.store.asked.errback(
            wire.ProtocolError(wire.RESUME_FAILED, "unknown session", oldest_seq=1))
        self.assertNotIn(protocol, self.factory.room)
        self.assertEqual(self.received(member_t), [])


class SlowReaderTests(ServerMixin, SynchronousTestCase):
    """
    A client that does not read costs the server a bounded amount, and
    cannot slow the others.
    """

    soft = 4096
    hard = 16384

    def setUp(self):
        super().setUp()
        self.factory = self.make_factory(
            max_frame=1024, max_text=100, sendq_soft=self.soft, sendq=self.hard, rate=0
        )
        ((self.reader, self.reader_t), (self.talker, self.talker_t)) = self.connect_many(2)
        # The reader's socket buffer is full: its transport pauses us.
        self.reader_t.producer.pauseProducing()

    def talk(self, count, text="x" * 100):
        for _ in range(count):
            self.send(self.talker, type="message", text=text)

    def test_queued_in_order(self):
        """
        While the transport is paused frames wait, and are written in order
        once it resumes.
        """
        self.talk(3)
        self.assertEqual(self.reader_t.value(), b"")
        self.assertEqual(len(self.reader.outbox.queue), 3)
        self.reader_t.producer.resumeProducing()
        self.assertEqual([m["seq"] for m in self.received(self.reader_t)], [3, 4, 5])
        self.assertEqual(self.reader.outbox.queue.size, 0)

    def test_lagged_at_soft_limit(self):
        """
        Past the soft limit the reader is sent one lagged frame instead of
        events; what waits for it stays under the soft limit plus that
        frame, whatever the others send.
        """
        self.talk(500)
        self.assertLess(self.reader.outbox.queue.size, self.soft + 100)
        self.reader_t.producer.resumeProducing()
        messages = self.received(self.reader_t)
        lagged = messages[-1]
        self.assertEqual(lagged["type"], "lagged")
        self.assertEqual(lagged["missed_from"], messages[-2]["seq"] + 1)
        # The talker was served in full all along.
        self.assertEqual(len(self.received(self.talker_t)), 500)

    def test_catch_up_with_resume(self):
        """
        A lagged client that has drained resumes on the same connection:
        the missed events are replayed, and live events flow again.
        """
        self.talk(100)
        self.reader_t.producer.resumeProducing()
        missed_from = self.received(self.reader_t)[-1]["missed_from"]
        self.talk(1)
        self.assertEqual(self.received(self.reader_t), [])
        self.send(self.reader, type="resume", session=self.reader.session, last_seq=missed_from - 1)
        messages = self.received(self.reader_t)
        self.assertEqual(messages[0]["seq"], missed_from)
        self.assertEqual(messages[-2]["seq"], self.factory.room.seq)
        self.assertEqual(messages[-1]["type"], "resumed")
        self.talk(1)
        self.assertEqual(self.received(self.reader_t)[0]["seq"], self.factory.room.seq)

    def test_resume_from_earlier_replays_only_unsent(self):
        """
        A lagged client that resumes from before what it was sent gets only
        the events it was not sent, from missed_from on: what was queued for
        it still arrives once, ahead of the replay.
        """
        self.talk(100)
        self.reader_t.producer.resumeProducing()
        messages = self.received(self.reader_t)
        missed_from = messages[-1]["missed_from"]
        self.send(self.reader, type="resume", session=self.reader.session, last_seq=2)
        replay = self.received(self.reader_t)
        self.assertEqual([m["seq"] for m in replay[:-1]],
                         list(range(missed_from, self.factory.room.seq + 1)))
        self.assertEqual(replay[-1]["replayed"], self.factory.room.seq - missed_from + 1)

    def test_hard_limit(self):
        """
        Replies pile up too (a client asking without reading); past the hard
        limit the client is dropped, with leave reason sendq.
        """
        for _ in range(2000):
            self.send(self.reader, type="who")
            if self.reader_t.disconnected:
                break
        self.assertTrue(self.reader_t.disconnected)
        self.lose(self.reader, ConnectionAborted)
        self.assertEqual(self.received(self.talker_t)[-1]["reason"], "sendq")

    def test_lagging_too_long(self):
        """
        A lagged client that has not drained within the timeout is dropped
        with reason sendq, even if it keeps sending heartbeats.
        """
        self.talk(100)
        for _ in range(3):
            self.clock.advance(self.server_timeout / 3)
            self.send(self.reader, type="heartbeat")
            self.send(self.talker, type="heartbeat")
        self.assertTrue(self.reader_t.disconnected)
        self.lose(self.reader, ConnectionAborted)
        self.assertEqual(self.received(self.talker_t)[-1]["reason"], "sendq")

    def test_drained_in_time(self):
        """
        A lagged client that drains within the timeout stays.
        """
        self.talk(100)
        self.clock.advance(self.server_timeout / 2)
        self.reader_t.producer.resumeProducing()
        self.send(self.reader, type="heartbeat")
        self.clock.advance(self.server_timeout * 0.75)
        self.assertFalse(self.reader_t.disconnected)

    def test_close_waits_for_queue(self):
        """
        A closing connection writes what waits for it before it closes.
        """
        self.talk(2)
        self.send(self.reader, type="quit")
        self.assertFalse(self.reader_t.disconnecting)
        self.reader_t.producer.resumeProducing()
        self.assertEqual(len(self.received(self.reader_t)), 2)
        self.assertTrue(self.reader_t.disconnecting)


class FloodTests(ServerMixin, SynchronousTestCase):
    """
    Token buckets per connection.
    """

    def setUp(self):
        super().setUp()
        ((self.alice, self.alice_t), (self.bob, self.bob_t)) = self.connect_many(2)

    def say(self, count):
        for _ in range(count):
            self.send(self.alice, type="message", text="spam")

    def test_burst_then_limited(self):
        """
        A burst of messages passes; the next one is refused with
        rate_limited and retry_after, and not broadcast.
        """
        self.say(20)
        self.assertEqual(len(self.received(self.bob_t)), 20)
        self.received(self.alice_t)
        self.say(1)
        (error,) = self.received(self.alice_t)
        self.assertEqual(error["code"], "rate_limited")
        self.assertAlmostEqual(error["retry_after"], 0.2, places=3)
        self.assertEqual(self.received(self.bob_t), [])

    def test_refills(self):
        """
        The bucket refills at the rate: one message every 1/rate seconds.
        """
        self.say(20)
        self.clock.advance(0.2)
        self.say(1)
        self.assertEqual(len(self.received(self.bob_t)), 21)

    def test_flood_dropped(self):
        """
        A client still over the limit after 3 x burst refused frames is
        dropped with reason flood.
        """
        self.say(20 + 3 * 20)
        last = self.received(self.alice_t)[-1]
        self.assertEqual(last["type"], "error")
        self.assertEqual(last["code"], "flooding")
        self.assertIn("60 frames in a row", last["message"])
        # Its socket took the frame, so the connection is closed after it,
        # not aborted; nothing it sends any more is read, and that frame
        # stays its last, whatever the room says meanwhile.
        self.assertTrue(self.alice_t.disconnecting)
        self.assertFalse(self.alice_t.disconnected)
        self.say(1)
        self.send(self.bob, type="message", text="meanwhile")
        self.assertEqual(self.received(self.bob_t)[-1]["text"], "meanwhile")
        self.assertEqual(self.received(self.alice_t), [])
        self.lose(self.alice)
        self.assertEqual(self.received(self.bob_t)[-1]["reason"], "flood")

    def test_flood_dropped_not_reading(self):
        """
        A flooder whose socket cannot take the last error frame (it does not
        read) is aborted at once, with reason flood.
        """
        self.alice.outbox.queue.pauseProducing()
        self.say(20 + 3 * 20)
        self.assertTrue(self.alice_t.disconnected)
        self.lose(self.alice, ConnectionAborted)
        self.assertEqual(self.received(self.bob_t)[-1]["reason"], "flood")

    def test_moderate_excess_not_dropped(self):
        """
        A client sending at twice the rate is refused half the time but
        never dropped.
        """
        self.say(20)
        for _ in range(200):
            self.clock.advance(0.1)
            self.say(1)
        self.assertFalse(self.alice_t.disconnected)
        self.assertEqual(len(self.received(self.bob_t)), 20 + 100)

    def test_other_frames_looser(self):
        """
        Frames of any type share a bucket ten times looser.
        """
        # The harness's connect already sent one frame.
        for _ in range(199):
            self.send(self.alice, type="heartbeat")
        self.assertEqual({m["type"] for m in self.received(self.alice_t)}, {"heartbeat_ack"})
        self.send(self.alice, type="heartbeat")
        self.assertEqual(self.received(self.alice_t)[0]["code"], "rate_limited")

    def test_rate_zero_is_unlimited(self):
        """
        --rate 0 turns flood control off.
        """
        self.factory = self.make_factory(rate=0)
        ((alice, _), (_, bob_t)) = self.connect_many(2)
        for _ in range(1000):
            self.send(alice, type="message", text="ok")
        self.assertEqual(len(self.received(bob_t)), 1000)


class LimitsTests(ServerMixin, SynchronousTestCase):
    """
    --max-clients and --max-per-ip.
    """

    def assertRefused(self, transport, code):
        (error,) = self.received(transport)
        self.assertEqual((error["type"], error["code"]), ("error", code))
        self.assertTrue(transport.disconnecting)

    def test_server_full(self):
        """
        The connection after max_clients gets server_full and is closed;
        once someone leaves there is room again.
        """
        self.factory = self.make_factory(max_clients=2)
        ((first, _), (_, second_t)) = self.connect_many(2)
        protocol, transport = self.connect(join=False)
        self.assertRefused(transport, "server_full")
        protocol.connectionLost(None)
        self.assertEqual(self.received(second_t), [])
        self.lose(first)
        _, transport = self.connect(join=False)
        self.assertEqual(self.received(transport)[0]["type"], "welcome")

    def test_max_per_ip(self):
        """
        Past max_per_ip connections from one address, the next gets
        too_many_connections; other addresses are not affected.
        """
        self.factory = self.make_factory(max_per_ip=2)
        first, _ = self.connect(host="10.0.0.1")
        self.connect(host="10.0.0.1")
        _, transport = self.connect(host="10.0.0.1", join=False)
        self.assertRefused(transport, "too_many_connections")
        _, transport = self.connect(host="10.0.0.2", join=False)
        self.assertEqual(self.received(transport)[0]["type"], "welcome")
        self.lose(first)
        _, transport = self.connect(host="10.0.0.1", join=False)
        self.assertEqual(self.received(transport)[0]["type"], "welcome")

    def test_many_by_default(self):
        """
        By default one address may open many connections (an office
        behind one NAT): fifty are welcome.
        """
        for _ in range(50):
            _, transport = self.connect(host="10.0.0.9", join=False)
            self.assertEqual(self.received(transport)[0]["type"], "welcome")
