"""
Tests for L{twisted_chat.room}: names, seq, broadcast, with fake members.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat import wire
from twisted_chat.room import IChatClient, IRoom, IRoomStore, MemoryStore, Room
from tests.helpers.fakes import FakeClient


class BrokenClient(FakeClient):
    """
    A member whose sends fail.
    """

    def deliver(self, seq, data, room=None):
        raise OSError("broken pipe")


class RoomTests(SynchronousTestCase):
    """
    L{Room}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.room = Room(self.clock)

    def join(self, *names):
        members = []
        for name in names:
            member = FakeClient(name)
            self.room.join(member, self.room.seq)
            members.append(member)
        for member in members:
            member.events()
        return members

    def test_fake_client_provides_interface(self):
        """
        The test double is a real IChatClient.
        """
        self.assertTrue(verifyObject(IChatClient, FakeClient("a")))

    def test_guest_names(self):
        """
        Guests are numbered guest-1, guest-2, ...
        """
        self.assertEqual(
            [self.room.new_guest_name() for _ in range(3)],
            ["guest-1", "guest-2", "guest-3"],
        )

    def test_join_broadcast_to_all(self):
        """
        join goes to every member, the newcomer included, with seq 1, 2, ...
        """
        alice = FakeClient("alice")
        self.room.join(alice, self.room.seq)
        self.assertEqual(alice.events(), [{"type": "join", "name": "alice", "seq": 1}])
        bob = FakeClient("bob")
        self.room.join(bob, self.room.seq)
        expected = [{"type": "join", "name": "bob", "seq": 2}]
        self.assertEqual(alice.events(), expected)
        self.assertEqual(bob.events(), expected)
        self.assertEqual(self.room.seq, 2)
        self.assertEqual(len(self.room), 2)

    def test_message(self):
        """
        A message carries seq, sender, text and the clock's time.
        """
        alice, bob = self.join("alice", "bob")
        self.room.message(alice, "hi")
        expected = [
            {"type": "message", "seq": 3, "from": "alice", "text": "hi", "time": 1000.0}
        ]
        self.assertEqual(alice.events(), expected)
        self.assertEqual(bob.events(), expected)

    def test_encoded_once(self):
        """
        Every member is sent the very same bytes object.
        """
        members = self.join("a", "b", "c")
        self.room.message(members[0], "x")
        self.assertEqual(len({id(member.frames[0]) for member in members}), 1)

    def test_seq_gap_free_across_kinds(self):
        """
        seq rises by exactly one per broadcast, whatever its kind.
        """
        alice, bob = self.join("alice", "bob")
        self.room.message(alice, "1")
        self.room.rename(bob, "robert")
        self.room.leave(alice, wire.REASON_QUIT)
        carol = FakeClient("carol")
        self.room.join(carol, self.room.seq)
        seqs = [event["seq"] for event in bob.events()]
        self.assertEqual(seqs, [3, 4, 5, 6])

    def test_rename(self):
        """
        rename changes the member's name and broadcasts nick.
        """
        alice, bob = self.join("guest-1", "bob")
        self.room.rename(alice, "alice")
        self.assertEqual(alice.name, "alice")
        self.assertEqual(
            bob.events(), [{"type": "nick", "old": "guest-1", "new": "alice", "seq": 3}]
        )
        self.assertEqual(self.successResultOf(self.room.names()), ["alice", "bob"])

    def test_rename_taken_ignoring_case(self):
        """
        A name another member holds, in any case, is nick_taken.
        """
        alice, bob = self.join("alice", "bob")
        error = self.failureResultOf(
            self.room.rename(bob, "ALICE"), wire.ProtocolError).value
        self.assertEqual(error.code, wire.NICK_TAKEN)
        self.assertEqual(bob.name, "bob")
        self.assertEqual(bob.events(), [])

    def test_rename_own_name_new_case(self):
        """
        A member may change the case of its own name.
        """
        (alice,) = self.join("alice")
        self.room.rename(alice, "Alice")
        self.assertEqual(self.successResultOf(self.room.names()), ["Alice"])

    def test_rename_bad(self):
        """
        rename refuses invalid and reserved names.
        """
        (alice,) = self.join("alice")
        for name in ["guest-9", "no spaces", ""]:
            error = self.failureResultOf(
            self.room.rename(alice, name), wire.ProtocolError).value
            self.assertEqual(error.code, wire.BAD_NICK)
        self.assertEqual(alice.name, "alice")

    def test_names_sorted(self):
        """
        names() is sorted.
        """
        self.join("carol", "alice", "bob")
        self.assertEqual(self.successResultOf(self.room.names()), ["alice", "bob", "carol"])

    def test_leave(self):
        """
        leave removes the member and tells the others why.
        """
        alice, bob = self.join("alice", "bob")
        self.room.leave(alice, wire.REASON_TIMEOUT)
        self.assertEqual(
            bob.events(),
            [{"type": "leave", "name": "alice", "reason": "timeout", "seq": 3}],
        )
        self.assertEqual(alice.events(), [])
        self.assertNotIn(alice, self.room)

    def test_leave_with_message(self):
        """
        A quit message travels in the leave event.
        """
        alice, bob = self.join("alice", "bob")
        self.room.leave(alice, wire.REASON_QUIT, "bye")
        self.assertEqual(bob.events()[0]["message"], "bye")

    def test_leave_twice(self):
        """
        Leaving twice, or as a non-member, broadcasts nothing.
        """
        alice, bob = self.join("alice", "bob")
        self.room.leave(alice, wire.REASON_EOF)
        bob.events()
        self.room.leave(alice, wire.REASON_RESET)
        self.room.leave(FakeClient("zed"), wire.REASON_EOF)
        self.assertEqual(bob.events(), [])
        self.assertEqual(self.room.seq, 3)

    def test_close(self):
        """
        Once the room is closing, leaves are not broadcast.
        """
        alice, bob = self.join("alice", "bob")
        self.room.close()
        self.room.leave(alice, wire.REASON_QUIT)
        self.assertEqual(bob.events(), [])
        self.assertEqual(len(self.room), 1)

    def test_backlog_keeps_exact_frames(self):
        """
        The backlog holds the frames exactly as sent, the newest K only.
        """
        self.room = Room(self.clock, backlog=3)
        (alice,) = self.join("alice")
        for text in "abcde":
            self.room.message(alice, text)
        self.assertEqual(list(self.room.backlog.frames), alice.frames[-3:])
        self.assertEqual(self.room.oldest_seq, 4)

    def test_replay(self):
        """
        replay gives the (seq, frame) pairs after a seq, or None once the
        backlog no longer reaches back, or for a seq never reached.
        """
        self.room = Room(self.clock, backlog=3)
        (alice,) = self.join("alice")
        for text in "abcde":
            self.room.message(alice, text)
        self.assertEqual([seq for seq, _ in self.room.replay(3)], [4, 5, 6])
        self.assertEqual(self.room.replay(5), [(6, alice.frames[-1])])
        self.assertEqual(self.room.replay(6), [])
        self.assertIsNone(self.room.replay(2))
        self.assertIsNone(self.room.replay(7))
        self.assertIsNone(self.room.replay(-1))

    def test_join_catches_up(self):
        """
        join first sends what the newcomer missed since the seq it saw.
        """
        (alice,) = self.join("alice")
        self.room.message(alice, "x")
        bob = FakeClient("bob")
        self.room.join(bob, 1)
        self.assertEqual([e["type"] for e in bob.events()], ["message", "join"])

    def test_resume_stale(self):
        """
        Resuming a session whose connection still holds the name moves the
        name over, aborts the old connection, and broadcasts nothing.
        """
        alice, bob = self.join("alice", "bob")
        self.room.message(bob, "while away")
        new = FakeClient("guest-9")
        bob.events()
        self.assertEqual(self.successResultOf(self.room.resume(new, alice.session, 2)), 1)
        self.assertEqual(new.name, "alice")
        self.assertEqual(new.session, alice.session)
        self.assertEqual(alice.aborted, wire.REASON_QUIT)
        self.assertEqual(bob.events(), [])
        self.room.leave(alice, wire.REASON_RESET)
        self.assertEqual(bob.events(), [])
        self.assertIn(new, self.room)

    def test_resume_failed(self):
        """
        An unknown session, or one too far back, is resume_failed.
        """
        (alice,) = self.join("alice")
        for token, seq in [("nope", 1), (alice.session, 5)]:
            error = self.failureResultOf(
                self.room.resume(FakeClient("x"), token, seq), wire.ProtocolError).value
            self.assertEqual(error.code, wire.RESUME_FAILED)
            self.assertEqual(error.fields, {"oldest_seq": 1})

    def test_failing_member_does_not_stop_delivery(self):
        """
        A member whose send raises is aborted after the others are served,
        and the failure is logged.
        """
        alice = FakeClient("alice")
        broken = BrokenClient("broken")
        bob = FakeClient("bob")
        for member in [alice, broken, bob]:
            self.room.join(member, self.room.seq)
        alice.events(), bob.events()
        self.flushLoggedErrors(OSError)
        broken.aborted = None
        self.room.message(alice, "still here")
        self.assertEqual(bob.events()[0]["text"], "still here")
        self.assertEqual(alice.events()[0]["text"], "still here")
        self.assertEqual(broken.aborted, wire.REASON_ERROR)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class ExpectTests(SynchronousTestCase):
    """
    Events are kept for a welcomed connection until it joins or resumes,
    whatever the backlog is (L{Room.expect}).
    """

    def setUp(self):
        self.clock = Clock()
        self.room = Room(self.clock, backlog=2)
        self.alice = FakeClient("alice")
        self.room.join(self.alice, 0)

    def say(self, count):
        for i in range(count):
            self.room.message(self.alice, "m%d" % (i,))

    def test_kept_beyond_backlog(self):
        """
        Every event after the welcome's seq reaches the newcomer at its
        join, however many more than the backlog there were, in order.
        """
        bob = FakeClient("bob")
        welcome_seq = self.room.expect(bob)
        self.say(10)
        self.room.join(bob, welcome_seq)
        seqs = [event["seq"] for event in bob.events()]
        self.assertEqual(seqs, list(range(welcome_seq + 1, welcome_seq + 12)))
        self.assertEqual(bob.behind, [])

    def test_released_once_joined(self):
        """
        Once the newcomer has joined, the room keeps only its backlog again.
        """
        bob = FakeClient("bob")
        welcome_seq = self.room.expect(bob)
        self.say(10)
        self.assertEqual(self.room.oldest_seq, welcome_seq + 1)
        self.room.join(bob, welcome_seq)
        self.say(1)
        self.assertEqual(self.room.oldest_seq, self.room.seq - 1)

    def test_released_when_it_leaves(self):
        """
        A connection that goes before joining holds nothing any more.
        """
        bob = FakeClient("bob")
        self.room.expect(bob)
        self.say(10)
        self.room.leave(bob, wire.REASON_EOF)
        self.assertEqual(self.room.oldest_seq, self.room.seq - 1)

    def test_oldest_expected_governs(self):
        """
        With two connections waiting, events are kept from the older
        welcome's seq, and the younger still gets all of its own once the
        older has joined.
        """
        bob, carol = FakeClient("bob"), FakeClient("carol")
        bob_seq = self.room.expect(bob)
        self.say(5)
        carol_seq = self.room.expect(carol)
        self.say(5)
        self.room.join(bob, bob_seq)
        self.say(5)
        self.room.join(carol, carol_seq)
        seqs = [event["seq"] for event in carol.events()]
        self.assertEqual(seqs, list(range(carol_seq + 1, self.room.seq + 1)))

    def test_hold_limit(self):
        """
        Past the hold limit the oldest kept events go, and the newcomer is
        told at its join (as if it had lagged) instead of missing them
        silently.
        """
        self.room.backlog.hold_limit = 300
        bob = FakeClient("bob")
        welcome_seq = self.room.expect(bob)
        self.say(10)
        self.room.join(bob, welcome_seq)
        self.assertEqual(bob.behind, [welcome_seq + 1])
        self.assertEqual([event["type"] for event in bob.events()], ["join"])

    def test_resume_first_kept(self):
        """
        A welcomed connection that resumes a session instead gets every
        event after that session's last seq, the ones since its own welcome
        included, however many.
        """
        bob = FakeClient("bob")
        self.room.join(bob, self.room.seq)
        self.room.leave(bob, wire.REASON_RESET)
        last_seen = self.room.seq
        new = FakeClient("guest-9")
        self.room.expect(new)
        self.say(10)
        self.assertEqual(self.successResultOf(self.room.resume(new, bob.session, last_seen)), 10)
        seqs = [event["seq"] for event in new.events()]
        self.assertEqual(seqs[:10], list(range(last_seen + 1, last_seen + 11)))
        self.say(1)
        self.assertEqual(self.room.oldest_seq, self.room.seq - 1)

    def test_resume_ahead(self):
        """
        A last_seq ahead of the room is resume_failed, and says so.
        """
        error = self.failureResultOf(
            self.room.resume(FakeClient("x"), self.alice.session, self.room.seq + 5),
            wire.ProtocolError).value
        self.assertEqual(error.code, wire.RESUME_FAILED)
        self.assertIn("ahead of the room", error.message)


class BatchTests(SynchronousTestCase):
    """
    Events broadcast in a batch go out together, once per member.
    """

    def setUp(self):
        self.clock = Clock()
        self.room = Room(self.clock)
        self.alice, self.bob = FakeClient("alice"), FakeClient("bob")
        self.room.join(self.alice, 0)
        self.room.join(self.bob, 1)
        self.alice.frames, self.bob.frames = [], []

    def test_one_write_per_batch(self):
        """
        Three events in a batch reach each member as one write of their
        frames back to back, in order.
        """
        with self.room.batch():
            for text in "abc":
                self.room.message(self.alice, text)
            self.assertEqual(self.bob.frames, [])
        self.assertEqual(len(self.bob.frames), 1)
        self.assertIs(self.bob.frames[0], self.alice.frames[0])
        self.assertEqual([e["text"] for e in self.bob.events()], ["a", "b", "c"])

    def test_nested_batches(self):
        """
        Batches nest: only the outermost sends, once.
        """
        with self.room.batch():
            self.room.message(self.alice, "a")
            with self.room.batch():
                self.room.message(self.alice, "b")
            self.assertEqual(self.bob.frames, [])
        self.assertEqual(len(self.bob.frames), 1)
        self.assertEqual([e["text"] for e in self.bob.events()], ["a", "b"])

    def test_batch_sends_when_block_raises(self):
        """
        An exception in the block does not keep its events back, and is
        not swallowed.
        """
        with self.assertRaises(ZeroDivisionError):
            with self.room.batch():
                self.room.message(self.alice, "a")
                1 / 0
        self.assertEqual([e["text"] for e in self.bob.events()], ["a"])
        self.room.message(self.alice, "b")
        self.assertEqual([e["text"] for e in self.bob.events()][-1], "b")

    def test_backlog_per_event(self):
        """
        The backlog still keeps each event's frame on its own.
        """
        with self.room.batch():
            for text in "abc":
                self.room.message(self.alice, text)
        self.assertEqual([seq for seq, _ in self.room.replay(2)], [3, 4, 5])

    def test_deliver_gets_first_seq(self):
        """
        deliver is told the seq of the first event in the write.
        """
        seen = []
        self.bob.deliver = lambda seq, data, room: seen.append(seq)
        with self.room.batch():
            self.room.message(self.alice, "a")
            self.room.message(self.alice, "b")
        self.assertEqual(seen, [3])

    def test_join_mid_batch(self):
        """
        A member joining in the middle of a batch gets the events before its
        join exactly once: the members' batch is sent first.
        """
        with self.room.batch():
            self.room.message(self.alice, "before")
            carol = FakeClient("carol")
            self.room.join(carol, 2)
            self.room.message(self.alice, "after")
        self.assertEqual([e.get("text", e["type"]) for e in carol.events()], ["before", "join", "after"])
        self.assertEqual([e.get("text", e["type"]) for e in self.bob.events()], ["before", "join", "after"])

    def test_leave_mid_batch(self):
        """
        A member leaving in the middle of a batch is sent nothing more (its
        connection is ending); the others get the batch and the leave.
        """
        with self.room.batch():
            self.room.message(self.bob, "before")
            self.room.leave(self.alice, wire.REASON_QUIT)
        self.assertEqual(self.alice.events(), [])
        self.assertEqual([e["type"] for e in self.bob.events()], ["message", "leave"])

    def test_flush_to_one(self):
        """
        flush_to sends one member the pending events now, and the batch
        then sends it only what came after.
        """
        with self.room.batch():
            self.room.message(self.alice, "a")
            self.room.flush_to(self.bob)
            self.assertEqual([e["text"] for e in self.bob.events()], ["a"])
            self.assertEqual(self.alice.frames, [])
            self.room.message(self.alice, "b")
        self.assertEqual([e["text"] for e in self.bob.events()], ["b"])
        self.assertEqual([e["text"] for e in self.alice.events()], ["a", "b"])

    def test_caught_up_member_not_written_again(self):
        """
        A member that was sent the whole batch early gets no write (not
        even an empty one) when the batch goes out.
        """
        with self.room.batch():
            self.room.message(self.alice, "a")
            self.room.flush_to(self.bob)
            writes = list(self.bob.frames)
        self.assertEqual(self.bob.frames, writes)
        self.assertNotIn(b"", self.bob.frames)

    def test_presence_waits(self):
        """
        With coalesce, join and leave wait up to PRESENCE_DELAY to go out
        together; a message sends everything at once.
        """
        from twisted_chat.room import PRESENCE_DELAY

        self.room.coalesce = True
        carol = FakeClient("carol")
        self.room.join(carol, self.room.seq)
        self.clock.advance(0)
        self.assertEqual(self.bob.frames, [])
        self.clock.advance(PRESENCE_DELAY)
        self.assertEqual([e["type"] for e in self.bob.events()], ["join"])
        dave = FakeClient("dave")
        self.room.join(dave, self.room.seq)
        self.room.message(self.alice, "now")
        self.clock.advance(0)
        self.assertEqual([e["type"] for e in self.bob.events()], ["join", "message"])
        self.assertEqual([e["type"] for e in dave.events()], ["join", "message"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_join_surge(self):
        """
        A surge of arrivals costs each member a few writes, not one per
        arrival, and everyone still sees every join exactly once, in order.
        """
        from twisted_chat.room import PRESENCE_DELAY

        self.room.coalesce = True
        newcomers = []
        for i in range(100):
            client = FakeClient("n%d" % (i,))
            self.room.join(client, self.room.seq)
            newcomers.append(client)
            self.clock.advance(PRESENCE_DELAY / 10)
        self.clock.advance(PRESENCE_DELAY)
        self.assertLessEqual(len(self.bob.frames), 11)
        self.assertEqual([e["name"] for e in self.bob.events()], ["n%d" % i for i in range(100)])
        for i, client in enumerate(newcomers):
            names = [e["name"] for e in client.events()]
            self.assertEqual(names, ["n%d" % j for j in range(i, 100)])

    def test_coalesce(self):
        """
        With coalesce, batches are sent at the end of the reactor iteration.
        """
        self.room.coalesce = True
        with self.room.batch():
            self.room.message(self.alice, "a")
        self.room.message(self.alice, "b")
        self.assertEqual(self.bob.frames, [])
        self.clock.advance(0)
        self.assertEqual(len(self.bob.frames), 1)
        self.assertEqual([e["text"] for e in self.bob.events()], ["a", "b"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PresenceTests(SynchronousTestCase):
    """
    Large rooms: join and leave only up to the presence limit.
    """

    def test_no_presence_above_limit(self):
        """
        join and leave are broadcast while the room has at most
        presence_limit members, and not beyond.
        """
        room = Room(Clock(), presence_limit=2)
        alice, bob, carol = FakeClient("alice"), FakeClient("bob"), FakeClient("carol")
        for member in (alice, bob, carol):
            room.join(member, room.seq)
        self.assertEqual([e["name"] for e in alice.events()], ["alice", "bob"])
        self.assertEqual(self.successResultOf(room.names()), ["alice", "bob", "carol"])
        room.leave(carol, wire.REASON_QUIT)
        self.assertEqual(alice.events(), [])
        room.leave(bob, wire.REASON_QUIT)
        self.assertEqual([e["type"] for e in alice.events()], ["leave"])


class _LaterStore(MemoryStore):
    """
    A store that, like Redis, answers resumes and renames only when the
    test says so (L{answer}).
    """

    def __init__(self):
        super().__init__()
        self.waiting = []

    def _later(self, answer):
        d = defer.Deferred()
        self.waiting.append((d, answer))
        return d

    def resume(self, member, token):
        return self._later(lambda: MemoryStore.resume(self, member, token))

    def rename(self, member, new_name):
        return self._later(lambda: MemoryStore.rename(self, member, new_name))

    def answer(self):
        """
        Answer the oldest waiting call, as the memory store would have.
        """
        d, answer = self.waiting.pop(0)
        answer().chainDeferred(d)


class ContractTests(SynchronousTestCase):
    """
    L{Room} keeps the contract of L{IRoom} over any L{IRoomStore}, also one
    that answers later.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = _LaterStore()
        self.room = Room(self.clock, store=self.store)

    def test_interfaces(self):
        """
        The room provides IRoom and the memory store IRoomStore.
        """
        self.assertTrue(verifyObject(IRoom, self.room))
        self.assertTrue(verifyObject(IRoomStore, self.room.store))
        self.assertTrue(verifyObject(IRoomStore, Room(self.clock).store))

    def test_operations_return_deferreds(self):
        """
        Every operation returns a Deferred, whatever the store.
        """
        alice = FakeClient("alice")
        for room in (Room(self.clock), self.room):
            results = [
                room.join(alice, room.seq),
                room.message(alice, "hi"),
                room.names(),
                room.rename(alice, "ann"),
                room.resume(FakeClient("x"), "unknown", 0),
                room.leave(alice, wire.REASON_QUIT),
            ]
            for result in results:
                self.assertIsInstance(result, defer.Deferred)
                result.addErrback(lambda failure: None)

    def test_events_while_resume_waits(self):
        """
        Events that happen while the store answers a resume follow the
        replay, each once, in order; the resumed count is every event sent
        before the client became a member again.
        """
        alice, bob = FakeClient("alice"), FakeClient("bob")
        self.room.join(alice, 0)
        self.room.join(bob, self.room.seq)
        self.room.message(bob, "before")
        self.room.leave(alice, wire.REASON_RESET)
        new = FakeClient("guest-7")
        self.room.expect(new)
        d = self.room.resume(new, alice.session, 2)
        self.room.message(bob, "while asking")
        self.store.answer()
        self.assertEqual(self.successResultOf(d), 4)
        events = new.events()
        self.assertEqual([e["seq"] for e in events], [3, 4, 5, 6])
        self.assertEqual(events[-1], {"type": "join", "name": "alice", "seq": 6})
        self.room.message(bob, "after")
        self.assertEqual([e["seq"] for e in new.events()], [7])

    def test_resume_answered_after_leave(self):
        """
        A connection lost while the store answered its resume leaves the
        room again from here: the others are told, and it is no member.
        """
        alice, bob = FakeClient("alice"), FakeClient("bob")
        self.room.join(alice, 0)
        self.room.join(bob, self.room.seq)
        self.room.leave(alice, wire.REASON_RESET)
        bob.events()
        new = FakeClient("guest-7")
        self.room.expect(new)
        d = self.room.resume(new, alice.session, self.room.seq)
        self.room.leave(new, wire.REASON_RESET)
        self.store.answer()
        self.assertEqual(self.successResultOf(d), 0)
        self.assertNotIn(new, self.room)
        self.assertEqual(
            [(e["type"], e["name"]) for e in bob.events()],
            [("join", "alice"), ("leave", "alice")])
        self.assertEqual(self.successResultOf(self.room.names()), ["bob"])

    def test_rename_answered_after_leave(self):
        """
        A rename the store answers after the member left fails, and the
        room does not hold the member under either name.
        """
        alice = FakeClient("alice")
        self.room.join(alice, 0)
        d = self.room.rename(alice, "ann")
        self.room.leave(alice, wire.REASON_QUIT)
        self.store.answer()
        self.assertEqual(
            self.failureResultOf(d, wire.ProtocolError).value.code, wire.UNAVAILABLE)
        self.assertFalse(self.room.holds("ann"))
        self.assertFalse(self.room.holds("alice"))
