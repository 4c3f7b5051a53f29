"""
Several nodes, one room, through a real redis-server (tests/cluster.py
starts one of the test's own, on a free loopback port).
"""

import re

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.cluster import ClusterMixin
from tests.helpers.fakes import FakeClient
from tests.helpers.processes import exit_status
from tests.helpers.waiting import poll
from twisted_chat import wire
from twisted_chat.cluster import RedisAddress
from twisted_chat.room import Room
from twisted_chat.tap import Options


def events(client, kinds=("message", "join", "leave", "nick")):
    return [m for m in client.messages if m["type"] in kinds]


def texts(client):
    return [m["text"] for m in client.messages if m["type"] == "message"]


def send(client, **message):
    client.sendString(wire.encode(message))


def assert_gap_free(case, client):
    seqs = [m["seq"] for m in events(client)]
    case.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "gap or repeat")


class RedisAddressTests(TestCase):
    """
    Where Redis is, from --redis.
    """

    def test_url(self):
        """
        A redis:// URL gives host, port, database and password.
        """
        address = RedisAddress("redis://:secret@example.org:6380/3")
        self.assertEqual(
            (address.host, address.port, address.db, address.password),
            ("example.org", 6380, 3, "secret"),
        )

    def test_defaults(self):
        """
        A redis:// URL without port, database or password means 6379, 0
        and none.
        """
        address = RedisAddress("redis://127.0.0.1")
        self.assertEqual((address.port, address.db, address.password), (6379, 0, None))

    def test_unix(self):
        """
        A unix:// URL gives the socket's path and the database from
        ?db=.
        """
        address = RedisAddress("unix:///run/redis.sock?db=2")
        self.assertEqual((address.path, address.db), ("/run/redis.sock", 2))

    def test_bad(self):
        """
        Another scheme, no host, a database that is not a number or a
        bad port is a ValueError.
        """
        for url in ["http://x", "redis://", "redis://h/x", "redis://h:99999"]:
            self.assertRaises(ValueError, RedisAddress, url)

    def test_option(self):
        """
        --redis takes a URL, and --node-timeout follows --timeout by
        default.
        """
        options = Options()
        options.parseOptions(["--redis", "redis://127.0.0.1:6390/1", "--timeout", "12"])
        self.assertEqual(options["redis"].port, 6390)
        self.assertEqual(options["node-timeout"], 12.0)

    def test_bad_option_is_one_line(self):
        """
        A bad --redis is refused with a one-line message.
        """
        options = Options()
        e = self.assertRaises(Exception, options.parseOptions, ["--redis", "localhost:6379"])
        self.assertIn("is not a redis:// or unix:// URL", str(e))


class LuaScriptTests(TestCase):
    """
    The Lua scripts are package data, read once, at import.
    """

    def test_every_script_loads(self):
        """
        Every scripts/*.lua file in the package is read, none is empty or
        starts with its comment, and each is a script of lua.SCRIPTS (or the
        prelude of those that publish).
        """
        from importlib.resources import files

        from twisted_chat.cluster import lua

        found = {
            entry.name[:-len(".lua")]
            for entry in (files("twisted_chat.cluster") / "scripts").iterdir()
            if entry.name.endswith(".lua")
        }
        self.assertEqual(found, set(lua.SCRIPTS) | {"prelude", "roomlib"})
        for name in sorted(found):
            text = lua.read(name)
            self.assertTrue(text.strip(), name)
            self.assertFalse(text.startswith("--"), name)
        for name, text in lua.SCRIPTS.items():
            # The prelude goes before exactly the scripts that call it, and
            # the rooms' library before those that call its functions.
            own = lua.read(name)
            uses_rooms = any(call in own for call in (
                "room_keys(", "room_named(", "parse_member(", "op_key(", "remove_member("))
            uses_prelude = uses_rooms or any(call in own for call in (
                "need_seq(", "publish(", "join_head("))
            expected = own
            if uses_rooms:
                expected = lua.ROOMLIB + "\n" + expected
            if uses_prelude:
                expected = lua.PRELUDE + "\n" + expected
            self.assertEqual(text, expected, name)

    def test_read_with_importlib_resources(self):
        """
        The loader finds the files with importlib.resources, in the
        twisted_chat.cluster package.
        """
        import importlib.resources

        from twisted_chat.cluster import lua

        asked = []

        def files(package):
            asked.append(package)
            return importlib.resources.files(package)

        self.patch(lua, "files", files)
        self.assertEqual(lua.read("seed"), lua.SEED)
        self.assertEqual(asked, ["twisted_chat.cluster"])


class TwoNodesTests(ClusterMixin, TestCase):
    """
    Clients on two nodes are in one room.
    """

    def setUp(self):
        super().setUp()
        return self.two_nodes()

    @defer.inlineCallbacks
    def test_one_sequence_everywhere(self):
        """
        Everyone sees the same events in the same order, gap-free, whichever
        node they are on and whichever node the sender is on.
        """
        clients = []
        for node in (self.a, self.b, self.a, self.b):
            clients.append((yield self.raw_client(node.port)))
        last_join = clients[-1].messages[0]["name"]
        yield poll(lambda: all(
            any(m.get("name") == last_join for m in events(c, ("join",))) for c in clients))
        for round in range(5):
            for i, client in enumerate(clients):
                send(client, type="message", text="c%d-%d" % (i, round))
        yield poll(lambda: all(len(texts(c)) == 20 for c in clients))
        after = [[m for m in events(c) if m["type"] == "message"] for c in clients]
        for other in after[1:]:
            self.assertEqual(other, after[0])
        for client in clients:
            assert_gap_free(self, client)
        for i in range(4):
            mine = [t for t in texts(clients[0]) if t.startswith("c%d-" % (i,))]
            self.assertEqual(mine, ["c%d-%d" % (i, r) for r in range(5)])

    @defer.inlineCallbacks
    def test_names_are_unique_across_nodes(self):
        """
        A name taken on one node is taken on the other; who lists the room.
        """
        alice = yield self.raw_client(self.a.port)
        other = yield self.raw_client(self.b.port)
        send(alice, type="nick", name="alice")
        yield poll(lambda: any(m.get("new") == "alice" for m in other.messages))
        send(other, type="nick", name="ALICE")
        errors = yield other.wait_for_type("error")
        self.assertEqual(errors[0]["code"], wire.NICK_TAKEN)
        send(other, type="who")
        who = yield other.wait_for_type("who")
        self.assertEqual(who[0]["names"], sorted(["alice", other.messages[0]["name"]]))
        # Once alice is gone, the name is free everywhere.
        alice.transport.loseConnection()
        yield poll(lambda: any(m.get("type") == "leave" for m in other.messages))
        send(other, type="nick", name="ALICE")
        yield poll(lambda: any(m.get("new") == "ALICE" for m in other.messages))

    @defer.inlineCallbacks
    def test_message_right_behind_a_nick(self):
        """
        A message sent right behind a nick (as a piped client does) goes
        out under the new name, although Redis answers the rename later.
        """
        carol = yield self.raw_client(self.b.port)
        other = yield self.raw_client(self.a.port)
        carol.transport.write(
            wire.encode_frame({"type": "nick", "name": "carol"})
            + wire.encode_frame({"type": "message", "text": "first words"}))
        yield poll(lambda: texts(other) == ["first words"])
        said = [m for m in other.messages if m["type"] == "message"]
        self.assertEqual(said[0]["from"], "carol")

    @defer.inlineCallbacks
    def test_guest_names_differ_between_nodes(self):
        """
        Guests on two nodes get different names.
        """
        first = yield self.raw_client(self.a.port)
        second = yield self.raw_client(self.b.port)
        self.assertNotEqual(first.messages[0]["name"], second.messages[0]["name"])

    @defer.inlineCallbacks
    def test_resume_on_the_other_node(self):
        """
        A client whose connection to one node went stale resumes on the
        other: it gets what it missed, keeps its name, and the room sees
        neither a leave nor a join.
        """
        watcher = yield self.raw_client(self.a.port)
        mover = yield self.raw_client(self.a.port)
        send(mover, type="nick", name="mover")
        yield poll(lambda: any(m.get("new") == "mover" for m in watcher.messages))
        welcome = mover.messages[0]
        last_seq = events(mover)[-1]["seq"]
        for i in range(3):
            send(watcher, type="message", text="missed %d" % (i,))
        yield poll(lambda: len(texts(watcher)) == 3)
        # The old connection stays open: the resume takes its place.
        resumed = yield self.raw_client(
            self.b.port,
            first=wire.encode({"type": "resume", "session": welcome["session"],
                               "last_seq": last_seq}))
        answer = yield resumed.wait_for_type("resumed")
        self.assertEqual(answer[0]["name"], "mover")
        self.assertEqual(texts(resumed), ["missed 0", "missed 1", "missed 2"])
        send(watcher, type="message", text="after")
        yield poll(lambda: "after" in texts(resumed))
        mover.transport.loseConnection()
        send(watcher, type="who")
        who = yield watcher.wait_for_type("who")
        self.assertIn("mover", who[0]["names"])
        send(watcher, type="message", text="end")
        yield poll(lambda: "end" in texts(watcher))
        self.assertEqual(
            [m for m in events(watcher, ("join", "leave")) if m["name"] == "mover"], [])

    @defer.inlineCallbacks
    def test_reaped_node_puts_its_users_back(self):
        """
        A node the others took for dead (it could not refresh its liveness
        key in time) finds out at its next refresh and puts its users back;
        the room, which saw them leave, sees them join.
        """
        ann = yield self.raw_client(self.a.port, wire.encode({"type": "nick", "name": "ann"}))
        watcher = yield self.raw_client(self.b.port)
        yield poll(lambda: any(m.get("new") == "ann" for m in watcher.messages))
        yield self.b.room.store.commands.call("DEL", "twisted-chat:node:" + self.a.room.store.node)
        yield self.b.room.store.liveness.refresh()
        yield poll(lambda: [(m["name"], m["reason"]) for m in events(watcher, ("leave",))]
                   == [("ann", "timeout")])
        yield self.a.room.store.liveness.refresh()
        yield poll(lambda: any(m.get("name") == "ann" for m in events(watcher, ("join",))))
        send(watcher, type="who")
        who = yield watcher.wait_for_type("who")
        self.assertIn("ann", who[0]["names"])
        send(ann, type="message", text="still here")
        yield poll(lambda: "still here" in texts(watcher))

    @defer.inlineCallbacks
    def test_unknown_session(self):
        """
        A resume of a session no node knows fails with resume_failed,
        and the client joins as a new session.
        """
        client = yield self.raw_client(
            self.b.port,
            first=wire.encode({"type": "resume", "session": "nope", "last_seq": 0}))
        errors = yield client.wait_for_type("error")
        self.assertEqual(errors[0]["code"], wire.RESUME_FAILED)
        # It joins as the new session its welcome announced.
        yield poll(lambda: events(client, ("join",)))


class PendingTests(ClusterMixin, TestCase):
    """
    On a node of a cluster too, a connection that has not sent its first
    frame is owed every event after its welcome, whatever --backlog is.
    """

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        redis = yield self.start_redis()
        self.a = yield self.start_node(redis, backlog=8)
        self.b = yield self.start_node(redis, backlog=8)
        self.b.join_hold = 30
        self.talker = yield self.raw_client(self.a.port)
        yield self.talker.wait_for_type("join")

    @defer.inlineCallbacks
    def burst(self, after_seq, count=18):
        """
        The talker sends C{count} messages, each once node b has the one
        before (flow control refuses messages while a node is 3/4 of a
        backlog this small behind); node b then keeps only 8 of them.
        """
        for i in range(count):
            send(self.talker, type="message", text="m%d" % (i,))
            yield poll(lambda: len([t for t in texts(self.talker) if t.startswith("m")]) > i)
        yield poll(lambda: self.b.room.seq >= after_seq + count)
        self.assertEqual(len(self.b.room.backlog), 8)

    @defer.inlineCallbacks
    def test_join_after_burst(self):
        """
        18 messages from a client of the other node while this one is
        pending all reach it, then its own join, with no gap.
        """
        quiet = yield self.raw_client(self.b.port, first=None)
        welcome_seq = quiet.messages[0]["seq"]
        yield self.burst(welcome_seq)
        send(quiet, type="heartbeat")
        yield poll(lambda: any(m.get("name") == quiet.messages[0]["name"]
                               for m in events(quiet, ("join",))))
        seqs = [m["seq"] for m in events(quiet)]
        self.assertEqual(seqs, list(range(welcome_seq + 1, seqs[-1] + 1)))
        self.assertEqual(texts(quiet), ["m%d" % (i,) for i in range(18)])

    @defer.inlineCallbacks
    def test_resume_after_burst(self):
        """
        A resume of a session of the other node, sent after a burst larger
        than the backlog that came while the new connection was pending,
        replays all of it (node b asks Redis before it replays).
        """
        mover = yield self.raw_client(self.a.port)
        yield mover.wait_for_type("join")
        last_seq = events(mover)[-1]["seq"]
        quiet = yield self.raw_client(self.b.port, first=None)
        yield self.burst(quiet.messages[0]["seq"])
        send(quiet, type="resume", session=mover.messages[0]["session"], last_seq=last_seq)
        (resumed,) = yield quiet.wait_for_type("resumed")
        self.assertEqual(resumed["replayed"], 18)
        self.assertEqual(texts(quiet), ["m%d" % (i,) for i in range(18)])
        assert_gap_free(self, quiet)


class FlowControlTests(ClusterMixin, TestCase):
    """
    No node loses events to trimming: while one is far behind, chat messages
    are refused with rate_limited.
    """

    @defer.inlineCallbacks
    def test_slow_node_holds_messages_back(self):
        """
        Messages are refused (rate_limited) while a node with a fresh
        position is far behind, and flow again once that position is
        stale.
        """
        redis = yield self.start_redis()
        node = yield self.start_node(redis, backlog=8)
        client = yield self.raw_client(node.port)
        store = node.room.store
        now = yield store.commands.call("TIME")
        # A node that says, right now, that it has read nothing.
        yield store.commands.call("HSET", "twisted-chat:positions", "slow", b"0 " + now[0])
        for i in range(8):
            send(client, type="message", text="m%d" % (i,))
        errors = yield client.wait_for_type("error")
        self.assertEqual(errors[0]["code"], wire.RATE_LIMITED)
        self.assertGreater(errors[0]["retry_after"], 0)
        # A message is refused once the room is more than 6 events (0.75 of
        # the backlog) past the slow node: after the join and m0 to m5.
        yield poll(lambda: len(texts(client)) == 6)
        self.assertEqual(texts(client), ["m%d" % (i,) for i in range(6)])
        # A position nobody has renewed for long does not count.
        stale = b"0 %d" % (int(now[0]) - 60,)
        yield store.commands.call("HSET", "twisted-chat:positions", "slow", stale)
        send(client, type="message", text="through")
        yield poll(lambda: "through" in texts(client))


class RedisOutageTests(ClusterMixin, TestCase):
    """
    Redis goes away and comes back empty.
    """

    @defer.inlineCallbacks
    def test_restart(self):
        """
        While Redis is down, chat messages are refused with unavailable and
        clients stay connected; when it is back, empty, the nodes seed the
        counter where they were and register their users again, and the
        sequence goes on with no gap and no repeat.
        """
        redis = yield self.start_redis()
        a = yield self.start_node(redis)
        b = yield self.start_node(redis)
        ca = yield self.raw_client(a.port)
        cb = yield self.raw_client(b.port)
        send(ca, type="nick", name="ann")
        send(cb, type="nick", name="bob")
        yield poll(lambda: all(
            [m.get("new") for m in events(c, ("nick",))] == ["ann", "bob"]
            or [m.get("new") for m in events(c, ("nick",))] == ["bob", "ann"]
            for c in (ca, cb)))
        send(ca, type="message", text="before")
        yield poll(lambda: all("before" in texts(c) for c in (ca, cb)))

        yield self.kill(redis)
        yield poll(lambda: a.room.store.commands.protocol is None and b.room.store.commands.protocol is None)
        send(ca, type="message", text="lost")
        errors = yield ca.wait_for_type("error")
        self.assertEqual(errors[0]["code"], wire.UNAVAILABLE)
        self.assertTrue(ca.transport.connected)

        redis = yield self.start_redis(redis.port)
        yield poll(lambda: a.room.store.room_count == 2 and b.room.store.room_count == 2, timeout=20)
        send(cb, type="message", text="after")
        send(ca, type="message", text="after too")
        yield poll(lambda: all(len(texts(c)) == 3 for c in (ca, cb)))
        for client in (ca, cb):
            self.assertEqual(sorted(texts(client)), ["after", "after too", "before"])
            self.assertNotIn("lost", texts(client))
            assert_gap_free(self, client)
        send(ca, type="who")
        who = yield ca.wait_for_type("who")
        self.assertEqual(who[0]["names"], ["ann", "bob"])

    @defer.inlineCallbacks
    def test_flushed_while_connected(self):
        """
        Redis emptied under a connected node (FLUSHALL): the next message is
        refused with unavailable, the node seeds the counter again, and the
        sequence goes on with no gap.
        """
        redis = yield self.start_redis()
        node = yield self.start_node(redis)
        client = yield self.raw_client(node.port)
        send(client, type="message", text="before")
        yield poll(lambda: "before" in texts(client))
        yield node.room.store.commands.call("FLUSHALL")
        send(client, type="message", text="refused")
        errors = yield client.wait_for_type("error")
        self.assertEqual(errors[0]["code"], wire.UNAVAILABLE)
        for _ in range(100):
            counter = yield node.room.store.commands.call("GET", "twisted-chat:seq")
            if counter is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        # Seeded at the last event delivered: the join, then "before".
        self.assertEqual(int(counter), 2)
        send(client, type="message", text="after")
        yield poll(lambda: "after" in texts(client))
        self.assertEqual(texts(client), ["before", "after"])
        assert_gap_free(self, client)

    @defer.inlineCallbacks
    def test_presence_during_outage(self):
        """
        Someone who joins while Redis is away is announced once it is back
        (here, back empty), late but not lost, and is in who.
        """
        redis = yield self.start_redis()
        a = yield self.start_node(redis)
        b = yield self.start_node(redis)
        watcher = yield self.raw_client(b.port)
        yield self.kill(redis)
        yield poll(lambda: a.room.store.commands.protocol is None)
        late = yield self.raw_client(a.port, wire.encode({"type": "heartbeat"}))
        name = late.messages[0]["name"]
        yield self.start_redis(redis.port)
        yield poll(lambda: any(m.get("name") == name for m in events(watcher, ("join",))),
                   timeout=20)
        # Both nodes have put their users back (who asks Redis).
        yield poll(lambda: a.room.store.room_count == 2 and b.room.store.room_count == 2, timeout=20)
        send(watcher, type="who")
        who = yield watcher.wait_for_type("who")
        self.assertIn(name, who[0]["names"])

    @defer.inlineCallbacks
    def test_no_clients_before_redis(self):
        """
        A node that has never reached Redis refuses clients with
        unavailable, and takes them once Redis is there.
        """
        port = self.free_port()

        class Absent:
            pass

        absent = Absent()
        absent.port = port
        node = yield self.start_node(absent, wait=False)
        client = yield self.raw_client(node.port, welcome=False)
        yield client.lost
        self.assertEqual(client.messages[0]["code"], wire.UNAVAILABLE)
        yield self.start_redis(port)
        yield node.room.store.when_ready()
        client = yield self.raw_client(node.port)
        self.assertEqual(client.messages[0]["type"], "welcome")


class NodeFailureTests(ClusterMixin, TestCase):
    """
    kill -9 of a node process.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_kill_node(self):
        """
        A reconnecting client of the killed node resumes on another node
        with no gap and keeps its name; a client that does not come back
        leaves, once, with reason timeout, seen the same on every node.

        The node timeout (4 s) is longer than the client's first reconnect
        delay (at most 1.5 s), as in any sane deployment.
        """
        redis = yield self.start_redis()
        b = yield self.start_node(redis, node_timeout=4.0)
        c = yield self.start_node(redis, node_timeout=4.0)
        node, a_port = yield self.node_process(redis)
        watchers = [(yield self.raw_client(b.port)), (yield self.raw_client(c.port))]
        mover = self.spawn_client(
            a_port, "--reconnect", "--name", "mover",
            "--server", "127.0.0.1:%d" % (a_port,), "--server", "127.0.0.1:%d" % (b.port,))
        stayer = yield self.raw_client(a_port, wire.encode({"type": "nick", "name": "stayer"}))
        for name in ("mover", "stayer"):
            yield poll(lambda: all(
                any(m.get("new") == name for m in w.messages) for w in watchers))
        send(watchers[0], type="message", text="one")
        yield mover.wait_for(rb"one")

        yield self.kill(node)
        yield stayer.lost
        for i in range(5):
            send(watchers[1], type="message", text="while moving %d" % (i,))
        yield mover.wait_for(rb"while moving 4")
        yield poll(lambda: all(
            any(m.get("name") == "stayer" for m in events(w, ("leave",))) for w in watchers))
        # Two more reaping rounds: still one leave, on each node.
        yield task.deferLater(reactor, 1.0, lambda: None)
        send(watchers[0], type="message", text="last")
        yield mover.wait_for(rb"last")
        yield poll(lambda: all("last" in texts(w) for w in watchers))
        for w in watchers:
            leaves = events(w, ("leave",))
            self.assertEqual([(m["name"], m["reason"]) for m in leaves], [("stayer", "timeout")])
            assert_gap_free(self, w)
        self.assertEqual(events(watchers[0])[-len(events(watchers[1])):], events(watchers[1]))
        out = mover.out.decode()
        self.assertNotIn("! missed events", out)
        self.assertIn("5 missed events replayed", out)
        self.assertEqual(
            re.findall(r"while moving \d", out), ["while moving %d" % (i,) for i in range(5)])
        send(watchers[0], type="who")
        who = yield watchers[0].wait_for_type("who")
        self.assertIn("mover", who[0]["names"])
        self.assertNotIn("stayer", who[0]["names"])
        mover.transport.closeStdin()
        reason = yield mover.ended
        self.assertEqual(exit_status(reason), (0, None))


class StreamReadingTests(TestCase):
    """
    What a node does with the entries it reads, without Redis.
    """

    def setUp(self):
        from twisted.internet.testing import MemoryReactorClock

        from twisted_chat.cluster import RedisStore

        clock = MemoryReactorClock()
        self.store = RedisStore(clock, RedisAddress("redis://127.0.0.1:1/0"))
        self.room = Room(clock, store=self.store)
        self.member = FakeClient("ann")
        self.room.join(self.member, 0)

    def entry(self, seq):
        payload = wire.encode({"type": "message", "from": "x", "text": str(seq), "seq": seq})
        self.store.deliver_entry(b"%d-0" % (seq,), [b"f", payload])
        return wire.frame(payload)

    def test_interface(self):
        """
        The Redis store keeps the same contract as the memory store.
        """
        from zope.interface.verify import verifyObject

        from twisted_chat.room import IRoomStore

        self.assertTrue(verifyObject(IRoomStore, self.store))

    def test_delivered_in_order(self):
        """
        Entries read in order are delivered, counted in seq and kept
        for replay.
        """
        frames = [self.entry(seq) for seq in (1, 2, 3)]
        self.assertEqual(self.member.frames, frames)
        self.assertEqual(self.room.seq, 3)
        self.assertEqual([data for _, data in self.room.replay(0)], frames)

    def test_old_entry_is_not_delivered_again(self):
        """
        An entry at or below the node's seq is not delivered again.
        """
        self.entry(1)
        self.entry(2)
        self.store.deliver_entry(b"2-0", [b"f", b'{"type":"message","seq":2}'])
        self.assertEqual(len(self.member.frames), 2)
        self.assertEqual(self.room.seq, 2)

    def test_trimmed_events_make_members_lag(self):
        """
        Events trimmed from the stream before the node read them are a hole
        no client can resume across: every member is told it lagged.
        """
        self.entry(1)
        self.entry(5)
        self.assertEqual(self.member.behind, [2])
        self.assertEqual(self.room.replay(1), None)
        self.assertEqual(self.room.seq, 5)


class FakeCommands:
    """
    A node's command link whose answers the test gives, when it likes.
    """

    protocol = object()

    def __init__(self):
        self.calls = []

    def eval(self, script, keys, args):
        d = defer.Deferred()
        self.calls.append((script, d))
        return d


class RemoteResumeTests(TestCase):
    """
    A resume of a session another node had: the node asks Redis, and the
    room goes on while it waits.
    """

    def setUp(self):
        from twisted.internet.testing import MemoryReactorClock

        from twisted_chat import cluster

        self.cluster = cluster
        clock = MemoryReactorClock()
        self.store = cluster.RedisStore(clock, RedisAddress("redis://127.0.0.1:1/0"))
        self.room = Room(clock, backlog=4, store=self.store)
        self.store.commands = FakeCommands()
        self.room.join(FakeClient("ann"), 0)
        for seq in (1, 2, 3):
            self.entry(seq)
        self.new = FakeClient("guest-x1")
        self.room.expect(self.new)
        self.answer = self.room.resume(self.new, "elsewhere", 1)
        (script, self.redis) = self.store.commands.calls[-1]
        self.assertIs(script, cluster.RESUME)

    def entry(self, seq):
        payload = wire.encode({"type": "message", "from": "x", "text": str(seq), "seq": seq})
        self.store.deliver_entry(b"%d-0" % (seq,), [b"f", payload])

    def test_events_while_redis_answers(self):
        """
        Events that age out of the backlog while Redis answers are still
        replayed (they were taken when Redis was asked), and so are those
        that came meanwhile: one run, gap-free, from last_seq + 1.
        """
        for seq in range(4, 11):
            self.entry(seq)
        self.redis.callback([1, b"bob"])
        self.assertEqual(self.successResultOf(self.answer), 9)
        self.assertEqual([m["seq"] for m in self.new.events()], list(range(2, 11)))
        self.assertEqual((self.new.name, self.new.behind), ("bob", []))
        self.assertIn(self.new, self.room)

    def test_too_much_while_redis_answers(self):
        """
        If what came meanwhile outgrows what the node holds for one
        connection, the connection is told it lagged from there: never a
        silent gap.
        """
        self.room.backlog.hold_limit = 100
        for seq in range(4, 11):
            self.entry(seq)
        self.redis.callback([1, b"bob"])
        self.assertEqual([m["seq"] for m in self.new.events()], [2, 3])
        self.assertEqual(self.new.behind, [4])

    def test_lost_while_redis_answers(self):
        """
        A connection lost while Redis answered is not left in the room:
        Redis gave it the session, so it leaves (and frees the name).
        """
        self.room.leave(self.new, wire.REASON_RESET)
        self.redis.callback([1, b"bob"])
        self.successResultOf(self.answer)
        self.assertNotIn(self.new, self.room)
        self.assertEqual(self.new.events(), [])
        self.assertIs(self.store.commands.calls[-1][0], self.cluster.LEAVE)


class LoadTests(ClusterMixin, TestCase):
    """
    The load tool across two nodes: one room under load.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_load_over_two_nodes(self):
        """
        Connections spread over two nodes (bench load --ports) all see one
        gap-free sequence, with every sender's messages in order.
        """
        import json
        import os

        from tests.helpers.processes import exit_status as status
        from tests.helpers.processes import temp_dir

        redis = yield self.start_redis()
        a = yield self.start_node(redis)
        b = yield self.start_node(redis)
        for node in (a, b):
            node.joined = 0

            def counting(client, after_seq, node=node, join=node.room.join):
                node.joined += 1
                return join(client, after_seq)

            node.room.join = counting
        out = os.path.join(temp_dir(self, "bench-"), "result.json")
        child = self.spawn(
            ["-m", "twisted_chat.bench", "load", "--ports", "%d,%d" % (a.port, b.port),
             "--connections", "20", "--senders", "4", "--duration", "1",
             "--warmup", "0.5", "--procs", "2", "--quiet", "--json", out])
        reason = yield child.ended
        self.assertEqual(status(reason), (0, None), bytes(child.out + child.err))
        with open(out) as f:
            summary = json.load(f)
        self.assertTrue(summary["ok"], summary["integrity"])
        self.assertGreater(summary["deliveries"], 0)
        self.assertEqual((a.joined, b.joined), (10, 10))
        self.assertEqual(a.room.seq, b.room.seq)
