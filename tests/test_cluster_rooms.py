"""
Rooms and direct messages across the nodes of a cluster, through a real
redis-server (tests/cluster.py starts one of the test's own, on a free
loopback port).
"""

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.cluster import ClusterMixin
from tests.helpers.waiting import poll
from twisted_chat import wire


def send(client, **message):
    client.sendString(wire.encode(message))


def of_room(client, room, kinds=None):
    """
    The events of C{room} C{client} was sent (of C{kinds}, if given).
    """
    return [m for m in client.messages if m.get("room") == room and "seq" in m
            and m["type"] != "joined" and (kinds is None or m["type"] in kinds)]


def texts(client, room):
    return [m["text"] for m in of_room(client, room, ("message",))]


def assert_gap_free(case, client, room):
    seqs = [m["seq"] for m in of_room(client, room)]
    case.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "gap or repeat")


def errors(client, code):
    return [m for m in client.messages if m.get("code") == code]


def named(name):
    return wire.encode({"type": "nick", "name": name})


class RoomsMixin(ClusterMixin):
    @defer.inlineCallbacks
    def user(self, node, name):
        """
        A client on C{node} called C{name}, once every node knows the name.
        """
        client = yield self.raw_client(node.port, named(name))
        yield poll(lambda: any(m.get("new") == name for m in client.messages))
        return client

    @defer.inlineCallbacks
    def joined(self, client, room):
        """
        Join C{room}: the joined frame.
        """
        before = len(client.messages)
        send(client, type="join", room=room)

        def answers():
            return [m for m in client.messages[before:]
                    if m["type"] in ("joined", "error") and m.get("room", "").lower()
                    == room.lower()]

        yield poll(answers)
        return answers()[0]


class TwoNodesRoomsTests(RoomsMixin, TestCase):
    """
    A room with members on two nodes is one room.
    """

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        yield self.two_nodes()
        self.alice = yield self.user(self.a, "alice")
        self.bob = yield self.user(self.b, "bob")

    @defer.inlineCallbacks
    def test_one_sequence_per_room(self):
        """
        Members of a room on both nodes get its events (theirs and the
        other node's) in one gap-free order, starting after the seq their
        joined frame gave; the lobby's sequence is apart.
        """
        first = yield self.joined(self.alice, "dev")
        self.assertEqual((first["type"], first["seq"], first["members"]), ("joined", 0, 1))
        second = yield self.joined(self.bob, "Dev")
        self.assertEqual((second["room"], second["members"]), ("dev", 2))
        yield poll(lambda: any(m.get("name") == "bob" for m in of_room(self.alice, "dev")))
        for i in range(5):
            send(self.alice, type="message", room="dev", text="a%d" % (i,))
            send(self.bob, type="message", room="dev", text="b%d" % (i,))
        for client in (self.alice, self.bob):
            yield poll(lambda: len(texts(client, "dev")) == 10)
            assert_gap_free(self, client, "dev")
        self.assertEqual(of_room(self.alice, "dev")[-10:], of_room(self.bob, "dev")[-10:])
        bob_seqs = [m["seq"] for m in of_room(self.bob, "dev")]
        self.assertEqual(bob_seqs[0], second["seq"] + 1)
        self.assertEqual(of_room(self.bob, "dev")[0]["type"], "join")
        self.assertEqual([m["text"] for m in self.alice.messages
                          if m["type"] == "message" and "room" not in m], [])

    @defer.inlineCallbacks
    def test_message_right_behind_a_join(self):
        """
        A message to a room sent right behind the join (as a piped client
        does) finds its sender in the room, although Redis answers the
        join later.
        """
        yield self.joined(self.bob, "dev")
        self.alice.transport.write(
            wire.encode_frame({"type": "join", "room": "dev"})
            + wire.encode_frame({"type": "message", "room": "dev", "text": "first words"}))
        yield poll(lambda: texts(self.bob, "dev") == ["first words"])
        self.assertEqual(errors(self.alice, wire.NOT_IN_ROOM), [])

    @defer.inlineCallbacks
    def test_who_rooms_and_topic(self):
        """
        who of a room lists every node's members and its operator; the
        rooms list is the cluster's; a topic set on one node is the
        room's on the other, for its members and for a later joiner.
        """
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        send(self.alice, type="topic", room="dev", topic="releases")
        yield poll(lambda: any(m["type"] == "topic" for m in of_room(self.bob, "dev")))
        send(self.bob, type="who", room="dev")
        who = yield self.bob.wait_for_type("who")
        self.assertEqual((who[0]["names"], who[0]["ops"]), (["alice", "bob"], ["alice"]))
        carol = yield self.user(self.b, "carol")
        yield self.joined(carol, "ops")
        send(self.alice, type="rooms")
        listed = yield self.alice.wait_for_type("rooms")
        self.assertEqual(
            [(r["room"], r["members"], r["topic"]) for r in listed[0]["rooms"]],
            [("dev", 2, "releases"), ("lobby", 3, ""), ("ops", 1, "")])
        dave = yield self.user(self.b, "dave")
        joined = yield self.joined(dave, "dev")
        self.assertEqual(joined["topic"], "releases")
        send(dave, type="who", room="nowhere")
        error = yield dave.wait_for_type("error")
        self.assertEqual(error[0]["code"], wire.NO_SUCH_ROOM)

    @defer.inlineCallbacks
    def test_moderation_across_nodes(self):
        """
        An operator on one node kicks, bans and makes operator members on
        the other: the kicked member's own leave is its last event of the
        room; a banned one cannot come back; a non-operator is refused.
        """
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        send(self.bob, type="kick", room="dev", name="alice")
        error = yield self.bob.wait_for_type("error")
        self.assertEqual(error[0]["code"], wire.NOT_OP)
        send(self.alice, type="kick", room="dev", name="bob", reason="spam")
        yield poll(lambda: any(m["type"] == "leave" for m in of_room(self.bob, "dev")))
        leave = of_room(self.bob, "dev")[-1]
        self.assertEqual((leave["type"], leave["name"], leave["reason"], leave["by"],
                          leave["message"]), ("leave", "bob", "kicked", "alice", "spam"))
        send(self.bob, type="message", room="dev", text="still?")
        yield poll(lambda: errors(self.bob, wire.NOT_IN_ROOM))
        send(self.alice, type="ban", room="dev", name="bob")
        yield poll(lambda: any(m["type"] == "ban" for m in of_room(self.alice, "dev")))
        banned = yield self.joined(self.bob, "dev")
        self.assertEqual(banned["code"], wire.BANNED)
        send(self.alice, type="unban", room="dev", name="bob")
        joined = yield self.joined(self.bob, "dev")
        self.assertEqual(joined["type"], "joined")
        send(self.alice, type="op", room="dev", name="bob")
        yield poll(lambda: any(m["type"] == "op" for m in of_room(self.bob, "dev")))
        send(self.bob, type="topic", room="dev", topic="bob's now")
        yield poll(lambda: any(m["type"] == "topic" for m in of_room(self.alice, "dev")))

    @defer.inlineCallbacks
    def test_part_and_heir(self):
        """
        The operator parts: its own leave is its last event of the room,
        the longest-present member on the other node becomes operator, and
        once everyone is gone the room is forgotten but its seq goes on.
        """
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        yield poll(lambda: any(m.get("name") == "bob" for m in of_room(self.alice, "dev")))
        send(self.alice, type="part", room="dev", message="bye")
        yield poll(lambda: any(m["type"] == "op" for m in of_room(self.bob, "dev")))
        self.assertEqual(of_room(self.alice, "dev")[-1]["type"], "leave")
        self.assertEqual(of_room(self.alice, "dev")[-1]["message"], "bye")
        op = of_room(self.bob, "dev")[-1]
        self.assertEqual((op["name"], op["by"]), ("bob", None))
        send(self.bob, type="part", room="dev")
        yield poll(lambda: of_room(self.bob, "dev")[-1]["type"] == "leave")
        last = of_room(self.bob, "dev")[-1]["seq"]
        yield poll(lambda: not self.b.rooms.get("dev"))
        send(self.bob, type="rooms")
        listed = yield self.bob.wait_for_type("rooms")
        self.assertEqual([r["room"] for r in listed[0]["rooms"]], ["lobby"])
        again = yield self.joined(self.alice, "DEV")
        self.assertEqual((again["room"], again["seq"]), ("DEV", last))

    @defer.inlineCallbacks
    def test_leave_the_lobby(self):
        """
        A user who leaves the lobby keeps its name on every node and can
        still be sent direct messages; it can rename itself, come back,
        and, gone, frees its name.
        """
        lobby_events = lambda client: [m for m in client.messages if "room" not in m
                                       and m["type"] in ("join", "leave", "nick")]
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        send(self.alice, type="part", room="lobby", message="busy")
        yield poll(lambda: any(m["type"] == "leave" for m in lobby_events(self.bob)))
        leave = lobby_events(self.bob)[-1]
        self.assertEqual((leave["name"], leave["reason"], leave["message"]),
                         ("alice", "part", "busy"))
        self.assertEqual(lobby_events(self.alice)[-1], leave)
        send(self.alice, type="message", text="lobby?")
        yield poll(lambda: errors(self.alice, wire.NOT_IN_ROOM))
        send(self.bob, type="nick", name="ALICE")
        yield poll(lambda: errors(self.bob, wire.NICK_TAKEN))
        send(self.bob, type="message", to="alice", text="still there?")
        yield poll(lambda: any(m["type"] == "direct" for m in self.alice.messages))
        send(self.alice, type="nick", name="alicia")
        yield poll(lambda: any(m["type"] == "nick" for m in of_room(self.alice, "dev")))
        self.assertEqual([m for m in lobby_events(self.bob) if m.get("new") == "alicia"], [])
        joined = yield self.joined(self.alice, "lobby")
        self.assertEqual(joined["type"], "joined")
        yield poll(lambda: lobby_events(self.bob)[-1]["type"] == "join")
        self.assertEqual(lobby_events(self.bob)[-1]["name"], "alicia")
        send(self.alice, type="part", room="lobby")
        yield poll(lambda: lobby_events(self.bob)[-1]["type"] == "leave")
        self.alice.transport.loseConnection()
        yield poll(lambda: any(m["type"] == "leave" for m in of_room(self.bob, "dev")))
        send(self.bob, type="nick", name="alicia")
        yield poll(lambda: any(m.get("new") == "alicia" for m in lobby_events(self.bob)))

    @defer.inlineCallbacks
    def test_direct_to_a_user_in_no_room(self):
        """
        A user who left every room, the lobby too, is still on the server:
        direct messages from the other node reach it, and it can send.
        """
        send(self.alice, type="part", room="lobby")
        yield poll(lambda: any(m["type"] == "leave" for m in self.bob.messages))
        send(self.bob, type="message", to="alice", text="anyone?")
        yield poll(lambda: any(m["type"] == "direct" for m in self.alice.messages))
        send(self.alice, type="message", to="bob", text="here")
        yield poll(lambda: any(m.get("text") == "here" for m in self.bob.messages))

    @defer.inlineCallbacks
    def test_resume_on_the_same_node(self):
        """
        A session resumed on its own node while its old connection is still
        open (half-open) keeps its name and rooms: nobody sees it leave, and
        direct messages reach the new connection.
        """
        yield self.joined(self.bob, "dev")
        yield self.joined(self.alice, "dev")
        welcome = self.bob.messages[0]
        seen = of_room(self.bob, "dev")[-1]["seq"]
        lobby_seen = [m for m in self.bob.messages if "seq" in m and "room" not in m
                      and m["type"] != "welcome"][-1]["seq"]
        back = yield self.raw_client(self.b.port, wire.encode({
            "type": "resume", "session": welcome["session"], "last_seq": lobby_seen,
            "rooms": {"dev": seen}, "last_dseq": 0}))
        yield back.wait_for_type("resumed")
        yield self.bob.lost
        send(self.alice, type="message", to="bob", text="same node")
        yield poll(lambda: any(m.get("text") == "same node" for m in back.messages))
        send(self.alice, type="message", room="dev", text="still in dev?")
        yield poll(lambda: "still in dev?" in texts(back, "dev"))
        send(self.alice, type="who")
        who = yield self.alice.wait_for_type("who")
        self.assertIn("bob", who[0]["names"])
        self.assertEqual([m for m in self.alice.messages if m["type"] == "leave"], [])

    @defer.inlineCallbacks
    def test_resume_outside_the_lobby_on_the_same_node(self):
        """
        The same, for a session whose stale connection had left the lobby:
        its name stays taken, and nobody sees it leave.
        """
        yield self.joined(self.bob, "dev")
        yield self.joined(self.alice, "dev")
        send(self.bob, type="part", room="lobby")
        yield poll(lambda: any(m["type"] == "leave" for m in self.alice.messages))
        yield poll(lambda: any(m["type"] == "leave" and "room" not in m
                               for m in self.bob.messages))
        lobby_seen = [m for m in self.bob.messages if "seq" in m and "room" not in m
                      and m["type"] != "welcome"][-1]["seq"]
        back = yield self.raw_client(self.b.port, wire.encode({
            "type": "resume", "session": self.bob.messages[0]["session"],
            "last_seq": lobby_seen, "rooms": {}, "last_dseq": 0}))
        resumed = yield back.wait_for_type("resumed")
        self.assertEqual(resumed[0]["name"], "bob")
        yield self.bob.lost
        send(self.alice, type="message", to="bob", text="same node")
        yield poll(lambda: any(m.get("text") == "same node" for m in back.messages))
        send(self.alice, type="message", room="dev", text="end")
        yield poll(lambda: "end" in texts(back, "dev"))
        self.assertEqual(of_room(self.alice, "dev", ("leave",)), [])
        send(self.alice, type="nick", name="BOB")
        yield poll(lambda: errors(self.alice, wire.NICK_TAKEN))

    @defer.inlineCallbacks
    def test_session_kept_while_connected(self):
        """
        A session's keys in Redis (its name, rooms, direct messages) do not
        expire while it is connected, however long; they do once its
        connection has ended, for a resume within the session TTL.
        """
        yield self.joined(self.bob, "dev")
        send(self.alice, type="message", to="bob", text="hi")
        yield poll(lambda: any(m["type"] == "direct" for m in self.bob.messages))
        token = self.bob.messages[0]["session"]
        commands = self.a.room.store.commands
        keys = ["twisted-chat:session:" + token + part
                for part in ("", ":rooms", ":dseq", ":direct")]
        ttls = yield defer.gatherResults([commands.call("TTL", key) for key in keys])
        self.assertEqual(ttls, [-1, -1, -1, -1])
        self.bob.transport.loseConnection()
        yield poll(lambda: any(m["type"] == "leave" for m in self.alice.messages))
        ttls = yield defer.gatherResults([commands.call("TTL", key) for key in keys])
        for ttl in ttls:
            self.assertTrue(0 < int(ttl) <= self.a.room.store.session_ttl, ttls)

    @defer.inlineCallbacks
    def test_nick_in_every_room(self):
        """
        A rename is announced in every room of the renamed user, on every
        node, and who lists the new name.
        """
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        send(self.bob, type="nick", name="robert")
        yield poll(lambda: any(m["type"] == "nick" for m in of_room(self.alice, "dev")))
        send(self.alice, type="who", room="dev")
        who = yield self.alice.wait_for_type("who")
        self.assertEqual(who[0]["names"], ["alice", "robert"])

    @defer.inlineCallbacks
    def test_direct_messages_across_nodes(self):
        """
        A direct message reaches its receiver on the other node; each
        session numbers its own direct frames; an unknown name is
        no_such_user.
        """
        send(self.alice, type="message", to="BOB", text="hi bob")
        yield poll(lambda: any(m["type"] == "direct" for m in self.bob.messages))
        send(self.bob, type="message", to="alice", text="hi alice")
        send(self.alice, type="message", to="alice", text="note to self")
        yield poll(lambda: len([m for m in self.alice.messages if m["type"] == "direct"]) == 3)
        mine = [m for m in self.alice.messages if m["type"] == "direct"]
        self.assertEqual([(m["dseq"], m["from"], m["to"], m["text"]) for m in mine], [
            (1, "alice", "bob", "hi bob"), (2, "bob", "alice", "hi alice"),
            (3, "alice", "alice", "note to self")])
        theirs = [m for m in self.bob.messages if m["type"] == "direct"]
        self.assertEqual([(m["dseq"], m["text"]) for m in theirs],
                         [(1, "hi bob"), (2, "hi alice")])
        self.assertEqual(mine[0]["time"], theirs[0]["time"])
        send(self.alice, type="message", to="nobody", text="?")
        yield poll(lambda: errors(self.alice, wire.NO_SUCH_USER))
        self.assertIn("nobody", errors(self.alice, wire.NO_SUCH_USER)[0]["message"])

    @defer.inlineCallbacks
    def test_resume_rooms_and_direct_on_the_other_node(self):
        """
        A session whose connection to one node ended resumes on the other:
        each room replays exactly what it missed, so do its direct
        messages, and it is in its rooms again.
        """
        yield self.joined(self.alice, "dev")
        yield self.joined(self.bob, "dev")
        send(self.alice, type="message", to="bob", text="early")
        yield poll(lambda: any(m["type"] == "direct" for m in self.bob.messages))
        welcome = self.bob.messages[0]
        seen = of_room(self.bob, "dev")[-1]["seq"]
        lobby_seen = [m for m in self.bob.messages if "seq" in m and "room" not in m
                      and m["type"] != "welcome"][-1]["seq"]
        self.bob.transport.abortConnection()
        yield poll(lambda: any(m["type"] == "leave" for m in of_room(self.alice, "dev")))
        for i in range(3):
            send(self.alice, type="message", room="dev", text="missed %d" % (i,))
        send(self.alice, type="message", to="bob", text="offline?")
        yield poll(lambda: errors(self.alice, wire.NO_SUCH_USER))
        yield poll(lambda: len(texts(self.alice, "dev")) == 3)
        back = yield self.raw_client(self.a.port, wire.encode({
            "type": "resume", "session": welcome["session"], "last_seq": lobby_seen,
            "rooms": {"dev": seen}, "last_dseq": 0}))
        resumed = yield back.wait_for_type("resumed")
        self.assertEqual((resumed[0]["name"], resumed[0]["direct"]), ("bob", 1))
        self.assertEqual(texts(back, "dev"), ["missed 0", "missed 1", "missed 2"])
        self.assertEqual([m["text"] for m in back.messages if m["type"] == "direct"],
                         ["early"])
        send(self.alice, type="message", room="dev", text="welcome back")
        send(self.alice, type="message", to="bob", text="there you are")
        yield poll(lambda: "welcome back" in texts(back, "dev"))
        yield poll(lambda: any(m.get("text") == "there you are" for m in back.messages))
        direct = [m for m in back.messages if m["type"] == "direct"]
        self.assertEqual([m["dseq"] for m in direct], [1, 2])
        assert_gap_free(self, back, "dev")


class NodeCrashRoomsTests(RoomsMixin, TestCase):
    """
    kill -9 of a node whose users were in several rooms.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_one_leave_per_room(self):
        """
        The users of a killed node leave every room they were in, once
        each, with reason timeout, seen alike by the members on the other
        nodes; the room left without an operator gets one.
        """
        redis = yield self.start_redis()
        b = yield self.start_node(redis, node_timeout=4.0)
        c = yield self.start_node(redis, node_timeout=4.0)
        node, a_port = yield self.node_process(redis)
        lost = yield self.raw_client(a_port, named("lost"))
        yield poll(lambda: any(m.get("new") == "lost" for m in lost.messages))
        for room in ("x", "y"):
            yield self.joined(lost, room)
        watchers = [(yield self.user(b, "wb")), (yield self.user(c, "wc"))]
        for watcher in watchers:
            for room in ("x", "y"):
                yield self.joined(watcher, room)
        yield self.kill(node)
        yield lost.lost
        for watcher in watchers:
            for room in ("x", "y"):
                yield poll(lambda: any(m["type"] == "leave" and m["name"] == "lost"
                                       for m in of_room(watcher, room)), timeout=20)
        # More reaping rounds: still one leave per room.
        yield task.deferLater(reactor, 2.0, lambda: None)
        send(watchers[0], type="message", room="x", text="last")
        yield poll(lambda: all("last" in texts(w, "x") for w in watchers))
        for watcher in watchers:
            for room in ("x", "y"):
                leaves = [(m["name"], m["reason"]) for m in of_room(watcher, room, ("leave",))]
                self.assertEqual(leaves, [("lost", "timeout")])
                assert_gap_free(self, watcher, room)
                heirs = [m["name"] for m in of_room(watcher, room, ("op",))]
                self.assertEqual(heirs, ["wb"])
        self.assertEqual(of_room(watchers[0], "y")[-3:], of_room(watchers[1], "y")[-3:])


    @defer.inlineCallbacks
    def test_stdio_client_resumes_its_rooms(self):
        """
        The stdio client with --reconnect, in a room on a node that is
        killed, resumes on another node: the room's messages and the direct
        messages it missed are replayed, and the room sees no leave.
        """
        from tests.helpers.processes import exit_status

        redis = yield self.start_redis()
        b = yield self.start_node(redis, node_timeout=4.0)
        node, a_port = yield self.node_process(redis)
        watcher = yield self.user(b, "watcher")
        yield self.joined(watcher, "dev")
        mover = self.spawn_client(
            a_port, "--reconnect", "--name", "mover",
            "--server", "127.0.0.1:%d" % (a_port,), "--server", "127.0.0.1:%d" % (b.port,))
        yield mover.wait_for(rb"is now mover")
        mover.transport.write(b"/join dev\n")
        yield mover.wait_for(rb"you joined #dev")
        yield poll(lambda: any(m.get("name") == "mover" for m in of_room(watcher, "dev")))
        yield self.kill(node)
        send(watcher, type="message", room="dev", text="while moving")
        send(watcher, type="message", to="mover", text="psst")
        yield mover.wait_for(rb"missed events replayed")
        out = mover.out.decode()
        self.assertIn("> watcher: while moving", out)
        self.assertIn("*watcher* psst", out)
        mover.transport.write(b"back\n")
        yield poll(lambda: "back" in texts(watcher, "dev"))
        self.assertEqual(of_room(watcher, "dev", ("leave",)), [])
        mover.transport.closeStdin()
        reason = yield mover.ended
        self.assertEqual(exit_status(reason), (0, None))


class RedisRestartRoomsTests(RoomsMixin, TestCase):
    """
    Redis comes back empty.
    """

    @defer.inlineCallbacks
    def test_room_sequence_goes_on(self):
        """
        Each room's counter is seeded again from what the nodes delivered,
        its members put back: its sequence goes on with no gap and no
        repeat, on both nodes.
        """
        redis = yield self.start_redis()
        a = yield self.start_node(redis)
        b = yield self.start_node(redis)
        ann = yield self.user(a, "ann")
        bob = yield self.user(b, "bob")
        yield self.joined(ann, "dev")
        yield self.joined(bob, "dev")
        send(ann, type="message", room="dev", text="before")
        send(ann, type="message", to="bob", text="direct before")
        yield poll(lambda: all("before" in texts(c, "dev") for c in (ann, bob)))
        yield poll(lambda: any(m["type"] == "direct" for m in bob.messages))
        yield self.kill(redis)
        yield poll(lambda: a.room.store.commands.protocol is None)
        redis = yield self.start_redis(redis.port)
        yield poll(lambda: a.room.store.room_count == 2 and b.room.store.room_count == 2,
                   timeout=20)
        send(bob, type="message", room="dev", text="after")
        yield poll(lambda: all("after" in texts(c, "dev") for c in (ann, bob)))
        for client in (ann, bob):
            assert_gap_free(self, client, "dev")
        send(ann, type="who", room="dev")
        who = yield ann.wait_for_type("who")
        self.assertEqual(who[0]["names"], ["ann", "bob"])
        # Each session's direct messages go on from where they were.
        send(ann, type="message", to="bob", text="direct after")
        yield poll(lambda: any(m.get("text") == "direct after" for m in bob.messages))
        for client in (ann, bob):
            self.assertEqual(
                [m["dseq"] for m in client.messages if m["type"] == "direct"], [1, 2])


class FakeCommands:
    """
    A node's command link whose answers the test gives, when it likes (the
    test hands stream entries to the node as its reader would).
    """

    protocol = object()

    def __init__(self):
        self.calls = []

    def eval(self, script, keys, args):
        d = defer.Deferred()
        self.calls.append((script, keys, args, d))
        return d

    def call(self, *args):
        return defer.Deferred()

    def last(self, script):
        """
        The Deferred of the last call of C{script}.
        """
        return [d for s, _, _, d in self.calls if s is script][-1]


class InboxAndDepartureTests(TestCase):
    """
    What a node does with what it reads from its inbox and its rooms'
    streams, without Redis: the order of a session's direct frames across a
    resume, and the last event a parting member is sent.
    """

    def setUp(self):
        from twisted.internet.testing import MemoryReactorClock

        from tests.helpers.fakes import FakeClient
        from twisted_chat import cluster

        self.clock = MemoryReactorClock()
        self.node = cluster.RedisStore(
            self.clock, cluster.RedisAddress("redis://127.0.0.1:1/0"))
        self.node.commands = FakeCommands()
        self.rooms = self.node.rooms_type(self.clock, store=self.node)
        self.ann = FakeClient("ann")
        self.ann.session = "s-ann"
        self.rooms.lobby.join(self.ann, 0)

    def direct(self, dseq, text):
        payload = wire.encode({"type": "direct", "dseq": dseq, "from": "bob", "to": "ann",
                               "text": text, "time": 0})
        self.node.inbox.deliver_entry(b"1-%d" % (dseq,), [
            b"t", self.ann.session.encode(), b"d", b"%d" % (dseq,), b"f", payload])

    def directs(self):
        return [m["dseq"] for m in self.ann.events() if m["type"] == "direct"]

    def test_held_while_resuming(self):
        """
        Direct frames that reach the node while the session is being
        resumed wait for its replay, and those the replay had are not sent
        twice.
        """
        self.rooms.resuming(self.ann.session)
        self.direct(3, "during")
        self.direct(4, "during too")
        self.assertEqual(self.directs(), [])
        # The replay (from Redis) had 1 to 3.
        data, count, oldest = self.rooms._direct_after(
            [[], b"3", [wire.encode({"type": "direct", "dseq": n, "from": "bob", "to": "ann",
                                     "text": "x", "time": 0}) for n in (1, 2, 3)]],
            self.ann, 0)
        self.assertEqual((count, oldest), (3, None))
        self.ann.deliver_direct(data)
        self.rooms.resume_over(self.ann, self.ann.session)
        self.assertEqual(self.directs(), [1, 2, 3, 4])
        self.direct(4, "again")
        self.direct(5, "later")
        self.assertEqual(self.directs(), [5])

    def test_missing_direct_frames_are_reported(self):
        """
        A resume from a dseq older than Redis keeps says which is the
        oldest it has.
        """
        kept = [wire.encode({"type": "direct", "dseq": n, "from": "bob", "to": "ann",
                             "text": "x", "time": 0}) for n in (5, 6)]
        _, count, oldest = self.rooms._direct_after([[], b"6", kept], self.ann, 2)
        self.assertEqual((count, oldest), (2, 5))

    def test_parting_member_gets_its_leave_last(self):
        """
        A member parting a room is sent the room's events up to its own
        leave, which comes back through the stream, and none after (here
        the op event that names an heir).
        """
        from tests.helpers.fakes import FakeClient

        from twisted_chat.cluster.rooms import RoomStore

        room = self.rooms._local("dev")
        room.store.loaded = True
        bob = FakeClient("bob")
        bob.session = "s-bob"
        for member in (self.ann, bob):
            self.rooms._joined[member] = (room,)
            room.join(member, 0)
        self.assertIsInstance(room.store, RoomStore)
        self.rooms.part(self.ann, "dev")
        with self.assertRaises(wire.ProtocolError):
            self.rooms.in_room(self.ann, "dev")

        def entry(seq, **event):
            payload = wire.encode(dict({"type": event.pop("kind"), "room": "dev"}, **event,
                                       seq=seq))
            room.store.deliver_entry(b"%d-0" % (seq,), [b"f", payload])

        self.ann.events()
        entry(1, kind="message", **{"from": "bob", "text": "before"})
        entry(2, kind="leave", name="ann", reason="part")
        entry(3, kind="op", name="bob", by=None)
        self.assertEqual([m["type"] for m in self.ann.events()], ["message", "leave"])
        self.assertEqual([m["type"] for m in bob.events()][-3:], ["message", "leave", "op"])
        self.assertNotIn(self.ann, room)
        self.assertIn(bob, room)


class AccountsOnTwoNodesTests(RoomsMixin, TestCase):
    """
    One account, two nodes.
    """

    @defer.inlineCallbacks
    def test_logged_in_once(self):
        """
        An account logged in on one node cannot log in on the other: the
        second connection is told nick_taken and closed; the first stays.
        """
        from tests.helpers.processes import temp_file
        from twisted_chat import accounts

        path = temp_file(self, "alice:%s\n" % (accounts.hash_password("pw"),))
        portal = accounts.portal(
            accounts.AuthFile(path), run=lambda f, *a: defer.maybeDeferred(f, *a))
        redis = yield self.start_redis()
        nodes = []
        for _ in range(2):
            nodes.append((yield self.start_node(
                redis, portal=portal, allow_plaintext_login=True)))
        login = wire.encode({"type": "login", "name": "alice", "password": "pw"})
        first = yield self.raw_client(nodes[0].port, login)
        yield first.wait_for_type("logged_in")
        yield poll(lambda: any(m.get("name") == "alice" and m["type"] == "join"
                               for m in first.messages))
        second = yield self.raw_client(nodes[1].port, login)
        yield second.lost
        self.assertIn(wire.NICK_TAKEN, [m.get("code") for m in second.messages])
        send(first, type="message", text="still me")
        yield poll(lambda: any(m.get("text") == "still me" for m in first.messages))


class EnteringTests(TestCase):
    """
    Entering a room while Redis answers, without Redis.
    """

    def setUp(self):
        from twisted.internet.testing import MemoryReactorClock

        from tests.helpers.fakes import FakeClient
        from twisted_chat import cluster

        self.cluster = cluster
        self.clock = MemoryReactorClock()
        self.node = cluster.RedisStore(
            self.clock, cluster.RedisAddress("redis://127.0.0.1:1/0"))
        self.node.commands = FakeCommands()
        self.rooms = self.node.rooms_type(self.clock, store=self.node)
        self.members = []
        for name in ("ann", "bob"):
            member = FakeClient(name)
            member.session = "s-" + name
            self.rooms.enter_lobby(member, 0)
            self.members.append(member)
        self.ann, self.bob = self.members
        self.announced = []

    def enter(self, member, room="dev"):
        d = self.rooms.enter(
            member, room, lambda room, already, seq: self.announced.append(
                (member.name, already, seq)))
        return d, self.node.commands.calls[-1][3]

    def answer(self, d, status=1, before=0, count=1):
        d.callback([status, before, count, b"", b"dev", []])

    def test_connection_ends_while_entering(self):
        """
        A member whose connection ends before Redis lets it in is taken out
        again once Redis answers, and is not left in the node's room.
        """
        from twisted_chat.cluster.lua import ROOM_LEAVE

        entered, redis = self.enter(self.ann)
        self.rooms.leave(self.ann, wire.REASON_RESET)
        self.answer(redis)
        self.assertIsNone(self.successResultOf(entered))
        self.assertIs(self.node.commands.calls[-1][0], ROOM_LEAVE)
        self.assertIsNone(self.rooms.get("dev"))
        self.assertEqual(self.rooms.rooms_of(self.ann), [])
        self.assertEqual(self.announced, [])

    def test_last_member_leaves_while_another_enters(self):
        """
        The node keeps a room its last member leaves while another of its
        members is entering it: that one is in the room and its stream is
        read.
        """
        first, redis = self.enter(self.ann)
        self.answer(redis)
        room = self.successResultOf(first)[0]
        second, redis = self.enter(self.bob)
        self.rooms.leave(self.ann, wire.REASON_QUIT)
        self.assertIs(self.rooms.get("dev"), room)
        self.answer(redis, before=2, count=1)
        self.assertEqual(self.successResultOf(second), (room, False))
        self.assertIn(self.bob, room)
        self.assertIn(room.store.keys[1].encode(), self.node.reader.streams)

    def test_two_joins_of_one_room(self):
        """
        A second join of a room sent before the first is answered is
        answered as a join of a room one is in: one membership, two joined.
        """
        first, redis = self.enter(self.ann)
        second = self.rooms.enter(
            self.ann, "DEV", lambda room, already, seq: self.announced.append(
                ("ann", already, seq)))
        self.assertNoResult(second)
        self.answer(redis)
        room = self.successResultOf(first)[0]
        self.assertEqual(self.successResultOf(second), (room, True))
        self.assertEqual(self.announced, [("ann", False, 0), ("ann", True, 0)])
        self.assertEqual(self.rooms.rooms_of(self.ann), [self.rooms.lobby, room])

    def test_no_nick_while_leaving(self):
        """
        A member on its way out of a room (its leave not yet read back)
        cannot rename itself: its leave carries the name it has.
        """
        first, redis = self.enter(self.ann)
        self.answer(redis)
        self.rooms.part(self.ann, "dev")
        failure = self.failureResultOf(self.rooms.rename(self.ann, "anna"))
        self.assertEqual(failure.value.code, wire.UNAVAILABLE)
        join_again = self.failureResultOf(defer.maybeDeferred(
            self.rooms.enter, self.ann, "dev", lambda *a: None))
        self.assertEqual(join_again.value.code, wire.UNAVAILABLE)

    def test_kick_before_the_answer(self):
        """
        A kick of a member that overtakes Redis's answer to its entering
        (the notice comes through the inbox first) is applied once it is
        in: in a room too large to announce it, it is told parted.
        """
        entered, redis = self.enter(self.ann)
        self.node.inbox.deliver_entry(b"1-1", [
            b"k", b"kick", b"t", self.ann.session.encode(), b"r", b"dev", b"s", b"0"])
        self.answer(redis)
        self.successResultOf(entered)
        self.assertEqual(self.announced, [("ann", False, 0)])
        self.assertEqual(self.ann.parts, [("dev", 0)])
        self.assertEqual(self.rooms.rooms_of(self.ann), [self.rooms.lobby])
        self.assertIsNone(self.rooms.get("dev"))
