# -*- test-case-name: tests.test_cluster -*-
"""
The room's shared state in Redis: L{RedisStore}, the L{IRoomStore} of a
cluster node.  Its Redis connections are in L{twisted_chat.cluster.link},
reading the stream in L{twisted_chat.cluster.reader}, node liveness in
L{twisted_chat.cluster.liveness}, and the Lua scripts in C{scripts/}.
"""

import secrets
import string

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from zope.interface import implementer

from twisted_chat import wire
from twisted_chat.cluster.link import RedisLink, unavailable
from twisted_chat.cluster.liveness import NodeLiveness
from twisted_chat.cluster.lua import (
    JOIN,
    LEAVE,
    LOAD,
    LOBBY_PART,
    POSITION,
    PUBLISH,
    RENAME,
    RESUME,
    SEED,
    event_head,
    leave_tail,
)
from twisted_chat.cluster.reader import StreamReader, entry_payload, entry_seq, unbroken
from twisted_chat.cluster.rooms import INBOX_MAXLEN, SharedRooms
from twisted_chat.room.interfaces import IRoomStore

#: Seconds a session stays resumable in Redis after its connection ended
#: (its keys stay while it is connected; the replay backlog usually ends
#: it sooner).
SESSION_TTL = 24 * 3600
#: Letters in the tag that makes a node's guest names unique in the room.
GUEST_TAG_LENGTH = 5
#: Chat messages are refused (rate_limited) while the slowest node is this
#: much of the stream behind, so that no node loses events to trimming.
BEHIND_FRACTION = 0.75
#: ... unless that node has not said where it is for this many seconds: a
#: stuck node must not stop the room until it is taken out.
STALE_POSITION = 2.0
#: How long a client refused that way is told to wait.
BEHIND_RETRY_AFTER = 0.05


def _is_presence(payload):
    return payload.startswith((b'{"type":"join"', b'{"type":"leave"'))


@implementer(IRoomStore)
class RedisStore:
    """
    The lobby's names, sessions, seq counter and events in Redis, shared by
    every node on the same Redis; and the node's part in the cluster: its
    Redis connections, its stream reader (the lobby's stream, those of the
    node's other rooms, and its inbox), its liveness.  The other rooms are
    L{SharedRooms}'s, each with a L{twisted_chat.cluster.rooms.RoomStore}.

    Every event is appended to a Redis stream by a script that takes the
    next seq; the node reads the stream back (L{StreamReader}) and hands
    each event to its room, as L{MemoryStore} does at once.  While Redis
    cannot be reached, chat messages, renames, who and resumes fail with
    C{unavailable}, and joins and leaves wait to be sent.

    @ivar ready: whether the node has loaded the room from Redis once; the
        server admits no client before.
    @ivar room: the L{Room} it serves.
    @ivar node: this node's id in Redis.
    @ivar keys: the Redis keys, by role (docs/cluster.rst lists them).
    @ivar commands: the L{RedisLink} for commands and scripts.
    @ivar reader: the L{StreamReader} of the room's events.
    @ivar liveness: the L{NodeLiveness} that keeps this node in the room.
    @ivar rooms: the node's L{SharedRooms} (which sets it).
    """

    log = Logger()
    session_ttl = SESSION_TTL
    #: The server's rooms, for a node: L{SharedRooms}.
    rooms_type = SharedRooms

    def __init__(self, reactor, redis, node_timeout=wire.DEFAULT_TIMEOUT,
                 prefix="twisted-chat:"):
        """
        @param redis: a L{RedisAddress}.
        @param node_timeout: seconds after its last refresh that a node's
            liveness key expires and the others take its users out.
        """
        self.reactor = reactor
        self.address = redis
        self.node_timeout = node_timeout
        self.node = secrets.token_hex(6)
        self.ready = False
        self.room = None
        self.rooms = None
        self.room_count = 0
        self._guests = 0
        self._guest_tag = "".join(
            secrets.choice(string.ascii_lowercase) for _ in range(GUEST_TAG_LENGTH)
        )
        # Presence changes made while Redis was away, oldest first.
        self._waiting = []
        self.keys = {
            "seq": prefix + "seq",
            "stream": prefix + "events",
            "names": prefix + "names",
            "outside": prefix + "outside",
            "nodes": prefix + "nodes",
            "node": prefix + "node:",
            "session": prefix + "session:",
            "positions": prefix + "positions",
            "prefix": prefix,
            "rooms": prefix + "rooms",
            "inbox": prefix + "inbox:" + self.node,
        }
        self.commands = RedisLink(reactor, redis, "command", self._commands_up)
        self.reader = StreamReader(reactor, redis, self.batch, self._wake)
        self.inbox = _Inbox(self)
        self.liveness = NodeLiveness(self, reactor)
        self._whenReady = []

    def attach(self, room):
        """
        Serve C{room}.  (L{IRoomStore}.)
        """
        self.room = room

    # Life cycle.

    def service(self):
        """
        The service that keeps this node's Redis connections up.
        """
        return _ClusterService(self)

    def when_ready(self):
        """
        A Deferred that fires once the node has loaded the room from Redis.
        """
        if self.ready:
            return defer.succeed(None)
        d = defer.Deferred()
        self._whenReady.append(d)
        return d

    def _commands_up(self, protocol):
        """
        A command connection is ready: make sure the counter is there, load
        the room the first time, and send what waited.
        """
        d = self._seed()
        d.addCallback(lambda _: self.restore_rooms("seed"))
        if not self.ready:
            d.addCallback(lambda _: self.commands.eval(
                LOAD, [self.keys["seq"], self.keys["stream"]], [self.maxlen]))
            d.addCallback(self._loaded)
        d.addCallback(lambda _: self.liveness.refresh())
        d.addErrback(self._setup_failed, protocol)

    def _seeded(self, seeded):
        if seeded and self.ready:
            self.log.warn(
                "Redis had lost the seq counter: seeded it at {seq}, the last "
                "event this node delivered", seq=self.room.seq)

    def _seed(self):
        """
        Make sure the counter exists and is at least what this node has
        delivered.
        """
        return self.commands.eval(SEED, [self.keys["seq"]], [self.room.seq]).addCallback(
            self._seeded)

    def restore_rooms(self, mode):
        """
        Put this node's other rooms back in Redis (L{RoomStore.restore}
        with C{mode}), if Redis lost them.
        """
        rooms = [] if self.rooms is None else self.rooms.shared_rooms()
        return defer.gatherResults(
            [room.store.restore(mode) for room in rooms if room.store.loaded],
            consumeErrors=True)

    def as_unavailable(self, failure):
        """
        Turn a Redis failure into the error a client is sent.
        """
        if failure.check(wire.ProtocolError):
            return failure
        error = failure.getErrorMessage()
        if error.startswith("BEHIND"):
            return defer.fail(wire.ProtocolError(
                wire.RATE_LIMITED, "the room is busy; slow down",
                retry_after=BEHIND_RETRY_AFTER))
        self.log.warn("Redis command failed: {error}", error=error)
        if "NOSEQ" in error:
            # Redis lost its data while we were connected.
            d = self._seed()
            d.addCallback(lambda _: self.restore_rooms("seed"))
            d.addErrback(self.liveness.failed)
        return defer.fail(unavailable())

    def _setup_failed(self, failure, protocol):
        self.log.failure("setting up the Redis connection failed", failure)
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    def _loaded(self, result):
        counter, entries = result
        seq = int(counter or 0)
        self.room.load(seq, unbroken(seq, entries))
        self.ready = True
        self.log.info(
            "node {node} joined the room on Redis {address} at seq {seq}",
            node=self.node, address=self.address, seq=seq)
        self.liveness.start()
        self.reader.add(self.keys["stream"], b"%d-0" % (seq,), self)
        # The node's id is new, and so is its inbox: read it all.
        self.reader.add(self.keys["inbox"], b"0-0", self.inbox)
        self.reader.start()
        waiting, self._whenReady = self._whenReady, []
        for d in waiting:
            d.callback(None)

    def stop(self):
        """
        Stop reading and refreshing; the liveness key expires by itself, so
        that users who resume on another node keep their names.
        """
        self.liveness.stop()
        return self.reader.stop()

    # What the stream reader hands over.

    def batch(self):
        """
        The room's L{Room.batch}: the reader delivers each read in one.
        """
        return self.room.batch()

    def events_read(self):
        """
        Say in Redis how far this node has read the lobby.
        """
        self.report_position(self.keys["positions"], self.room)

    def report_position(self, key, room):
        """
        Say in C{room}'s positions (at C{key}) how far this node has read
        it, for L{PUBLISH}'s flow control.
        """
        d = self.commands.eval(POSITION, [key], [self.node, room.seq])
        d.addErrback(lambda failure: None)  # the next read says it again

    def _wake(self):
        """
        End the stream reader's waiting read: a stream was added to those
        it reads.
        """
        d = self.commands.call(
            "XADD", self.keys["inbox"], "MAXLEN", "~", INBOX_MAXLEN, "*", "w", "1")
        d.addErrback(lambda failure: None)  # the next read has it anyway

    def session_key(self, token, part):
        """
        The key of session C{token}'s C{part} (rooms, dseq, direct).
        """
        return "%s%s:%s" % (self.keys["session"], token, part)

    def deliver_entry(self, entry_id, fields):
        """
        An entry of the lobby's stream (L{read_entry}).
        """
        self.read_entry(self.room, entry_id, fields)

    def read_entry(self, room, entry_id, fields):
        """
        An entry of C{room}'s stream: hand its event over (L{hand_over});
        a topic also becomes the room's here, and a leave may be a part or
        a kick of a member of this node (L{SharedRooms.left}).
        """
        seq = entry_seq(entry_id)
        payload = entry_payload(fields)
        if seq is None or payload is None:
            return
        if payload.startswith(b'{"type":"topic"') and seq > room.seq:
            room.topic = wire.decode(payload).get("topic", "")
        self.hand_over(room, seq, payload)
        if payload.startswith(b'{"type":"leave"') and self.rooms is not None:
            self.rooms.left(room, seq, payload)

    def hand_over(self, room, seq, payload):
        """
        Hand the event C{seq} read from C{room}'s stream to it, unless it
        came before: events arrive in order, and a hole makes every member
        lag.
        """
        if seq <= room.seq:
            self.log.error(
                "event {seq} arrived after {last}: Redis lost events and was "
                "seeded lower than this node had reached; it is not "
                "delivered", seq=seq, last=room.seq)
            return
        if seq != room.seq + 1:
            # The stream holds about --backlog events; this node fell
            # further behind than that.  Its clients are told, as slow
            # readers are, and cannot resume across the hole.
            self.log.warn(
                "events {first} to {last} were trimmed from the stream "
                "before this node read them; its {count} clients are told "
                "they lagged", first=room.seq + 1, last=seq - 1,
                count=len(room))
            room.lose_events(room.seq + 1)
        room.deliver_event(seq, wire.frame(payload), not _is_presence(payload))

    # The room.

    @property
    def room_size(self):
        """
        How many members the whole room has, as the last refresh learnt
        (at least this node's).  (L{IRoomStore}.)
        """
        return max(self.room_count, len(self.room))

    @property
    def presence_limit(self):
        return self.room.presence_limit

    @property
    def maxlen(self):
        """
        The stream's MAXLEN: about as many events as the backlog holds.
        """
        return self.room.backlog.size or 1

    def publish_keys(self, *more):
        """
        The first KEYS of a script that publishes (seq, stream, names),
        then C{more}.
        """
        keys = self.keys
        return [keys["seq"], keys["stream"], keys["names"]] + list(more)

    def _session_keys(self, client, token=None):
        return self.publish_keys(
            self.keys["session"] + (token or client.session), self.keys["outside"])

    def _owner(self, client):
        return "%s %s" % (self.node, client.session)

    def entry(self, client):
        """
        C{client}'s entry in Redis's names: C{"<node> <token> <name>"}.
        """
        return "%s %s" % (self._owner(client), client.name)

    def members(self):
        """
        This node's members.
        """
        return self.room.members()

    def member(self, name):
        """
        This node's member called C{name} (in any case), or L{None}.
        """
        return self.room.member(name)

    def new_guest_name(self):
        """
        A guest name no other node makes: the tag keeps them apart.
        (L{IRoomStore}.)
        """
        self._guests += 1
        return "%s%s%d" % (wire.GUEST_PREFIX, self._guest_tag, self._guests)

    def send_waiting_presence(self):
        """
        Record the joins and leaves made while Redis was away, in order.
        """
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for script, keys, args in waiting:
                self.presence_op(script, keys, args)

    def presence_op(self, script, keys, args):
        """
        Run a join or leave script now, or once Redis is back.
        """
        if self.commands.protocol is None or self._waiting:
            self._waiting.append((script, keys, args))
            return defer.succeed(None)
        d = self.commands.eval(script, keys, args)
        d.addErrback(self._presence_failed, script, keys, args)
        return d

    def _presence_failed(self, failure, script, keys, args):
        if failure.check(wire.ProtocolError):
            # Lost before it was sent: it waits for Redis to come back.
            self._waiting.append((script, keys, args))
        else:
            self.log.warn("a join or leave was not recorded: {error}",
                          error=failure.getErrorMessage())

    def join(self, client):
        """
        The script registers the name and decides on presence; while Redis
        is away it waits.  (L{IRoomStore}.)
        """
        d = self.presence_op(
            JOIN, self._session_keys(client),
            [self.maxlen, self.presence_limit, client.name.lower(),
             self.entry(client), client.name])
        return d.addCallback(self._join_answered, client)

    def _join_answered(self, result, client):
        if result == -1:
            # Another node's user has the name: the same account logged in
            # there (guest names differ from node to node).
            raise wire.ProtocolError(
                wire.NICK_TAKEN, "%s is already logged in on another node" % (client.name,))

    def leave(self, client, reason, message, quietly):
        """
        The script frees the name, if still this node's, and decides on
        presence from the whole room's size.  When the server stops
        (C{quietly}) nothing is said: the names stay for users who resume
        on another node.  (L{IRoomStore}.)
        """
        if quietly:
            return defer.succeed(None)
        return self.presence_op(
            LEAVE, self._session_keys(client),
            [self.maxlen, self.presence_limit, self._owner(client),
             leave_tail(reason, message), self.session_ttl])

    def part(self, client, message):
        """
        C{client} leaves the lobby, keeping its name (L{LOBBY_PART}).

        @return: a Deferred of its leave event's seq (0: not announced).
        """
        d = self.commands.eval(
            LOBBY_PART, self._session_keys(client),
            [self.maxlen, self.presence_limit, self._owner(client),
             leave_tail(wire.REASON_PART, message)])
        d.addCallback(lambda seq: max(int(seq), 0))
        return d.addErrback(self.as_unavailable)

    def publish(self, event):
        """
        Append C{event} to the lobby's stream.  (L{IRoomStore}.)
        """
        return self.publish_in(
            [self.keys["seq"], self.keys["stream"], self.keys["positions"]], event)

    def publish_in(self, keys, event):
        """
        Append C{event} to the stream of the room whose seq, stream and
        positions are C{keys} (L{PUBLISH}), refused while the slowest node
        is too far behind.
        """
        d = self.commands.eval(PUBLISH, keys, [
            self.maxlen, event_head(event), int(self.maxlen * BEHIND_FRACTION),
            STALE_POSITION])
        d.addCallback(lambda _: None)
        return d.addErrback(self.as_unavailable)

    def renamed(self, member, old):
        raise NotImplementedError("the lobby's rename announces it")

    def rename(self, client, new_name):
        """
        The script takes the name if no one in the room has it.
        (L{IRoomStore}.)
        """
        d = self.commands.eval(
            RENAME, self._session_keys(client),
            [self.maxlen, self._owner(client), new_name])
        d.addCallback(self._renamed, new_name)
        return d.addErrback(self.as_unavailable)

    def _renamed(self, result, new_name):
        if result == -1:
            raise wire.ProtocolError(wire.NICK_TAKEN, "the name %s is taken" % (new_name,))
        if result == -2:
            raise unavailable()

    def names(self):
        """
        The names of every node's members.  (L{IRoomStore}.)
        """
        d = self.commands.call("HVALS", self.keys["names"])
        d.addCallback(lambda entries: sorted(
            entry.decode().split(" ", 2)[2] for entry in entries))
        return d.addErrback(self.as_unavailable)

    def resume(self, client, token):
        """
        The script hands the session over to this node: its name if free,
        the client's guest name otherwise.  (L{IRoomStore}.)
        """
        d = self.commands.eval(
            RESUME, self._session_keys(client, token),
            [self.maxlen, self.presence_limit, self.node, token, client.name])
        d.addErrback(self.as_unavailable)
        d.addCallback(self._resume_answered)
        return d

    def _resume_answered(self, result):
        if result[0] == 0:
            raise wire.ProtocolError(
                wire.RESUME_FAILED, "unknown session", oldest_seq=self.room.oldest_seq)
        return result[1].decode()


class _ClusterService(MultiService):
    """
    Runs a L{RedisStore}'s connections; stopping it stops the reader, the
    refresher and the command connection.
    """

    def __init__(self, store):
        super().__init__()
        self.store = store
        store.commands.service.setServiceParent(self)

    def stopService(self):
        d = defer.maybeDeferred(self.store.stop)
        d.addBoth(lambda _: super(_ClusterService, self).stopService())
        return d


class _Inbox:
    """
    The node's inbox stream, read with its rooms: direct frames for its
    sessions (C{t} token, C{d} dseq, C{n} name, C{f} frame), notices of kicks (C{k}
    kick, C{t}, C{r} room, C{s} the leave's seq), and entries that only
    wake the reader.
    """

    def __init__(self, store):
        self.store = store

    def deliver_entry(self, entry_id, fields):
        entry = dict(zip(fields[::2], fields[1::2]))
        rooms = self.store.rooms
        token = entry.get(b"t")
        if rooms is None or token is None:
            return
        if entry.get(b"k") == b"kick":
            rooms.kicked(token.decode(), entry[b"r"].decode(), int(entry[b"s"]))
        elif b"f" in entry:
            rooms.arrived(token.decode(), int(entry[b"d"]), entry[b"f"],
                          entry.get(b"n", b"").decode())

    def events_read(self):
        pass
