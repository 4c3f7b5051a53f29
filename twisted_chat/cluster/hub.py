# -*- test-case-name: tests.test_cluster -*-
"""
The room operations of a cluster node: L{ClusterHub}, a L{ChatHub} whose
names, seq counter and events are in Redis.  Its Redis connections are in
L{twisted_chat.cluster.link}, reading the stream in
L{twisted_chat.cluster.reader}, node liveness in
L{twisted_chat.cluster.liveness}, and the Lua scripts in C{scripts/}.
"""

import secrets
import string

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from twisted_chat import settings, wire
from twisted_chat.cluster.link import RedisLink, unavailable
from twisted_chat.cluster.liveness import NodeLiveness
from twisted_chat.cluster.lua import JOIN, LEAVE, LOAD, POSITION, PUBLISH, RENAME, RESUME, SEED
from twisted_chat.cluster.reader import StreamReader, entry_payload, entry_seq
from twisted_chat.hub import ChatHub, _send_replay

#: Seconds a session stays resumable in Redis after its last change (the
#: replay backlog usually ends it sooner).
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


class ClusterHub(ChatHub):
    """
    A L{ChatHub} whose room spans every node on the same Redis.

    Locally it keeps what L{ChatHub} keeps (this node's members and
    sessions, and a backlog of the frames it delivered); the names, the
    counter and the event sequence are Redis's.  Operations that must ask
    Redis return Deferreds, which the server's protocol waits on; while
    Redis cannot be reached, chat messages, renames, who and resumes fail
    with C{unavailable}, and joins and leaves wait to be told.

    @ivar ready: whether the node has loaded the room from Redis once; the
        server admits no client before.
    @ivar node: this node's id in Redis.
    @ivar keys: the Redis keys, by role (docs/cluster.rst lists them).
    @ivar commands: the L{RedisLink} for commands and scripts.
    @ivar reader: the L{StreamReader} of the room's events.
    @ivar liveness: the L{NodeLiveness} that keeps this node in the room.
    """

    log = Logger()
    session_ttl = SESSION_TTL

    def __init__(
        self,
        reactor,
        redis,
        backlog=settings.DEFAULT_BACKLOG,
        presence_limit=settings.DEFAULT_PRESENCE_LIMIT,
        coalesce=False,
        node_timeout=wire.DEFAULT_TIMEOUT,
        prefix="twisted-chat:",
        hold_limit=settings.DEFAULT_SENDQ,
    ):
        """
        @param redis: a L{RedisAddress}.
        @param node_timeout: seconds after its last refresh that a node's
            liveness key expires and the others take its users out.
        """
        super().__init__(
            reactor, backlog, presence_limit=presence_limit, coalesce=coalesce,
            hold_limit=hold_limit)
        self.reactor = reactor
        self.address = redis
        self.node_timeout = node_timeout
        self.node = secrets.token_hex(6)
        self.ready = False
        self.room_count = 0
        self._guest_tag = "".join(
            secrets.choice(string.ascii_lowercase) for _ in range(GUEST_TAG_LENGTH)
        )
        # Presence changes made while Redis was away, oldest first.
        self._outbox = []
        self.keys = {
            "seq": prefix + "seq",
            "stream": prefix + "events",
            "names": prefix + "names",
            "nodes": prefix + "nodes",
            "node": prefix + "node:",
            "session": prefix + "session:",
            "positions": prefix + "positions",
        }
        self.commands = RedisLink(reactor, redis, "command", self._commands_up)
        self.reader = StreamReader(reactor, redis, self.keys["stream"], self)
        self.liveness = NodeLiveness(self, reactor)
        self._whenReady = []

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
                "event this node delivered", seq=self.seq)

    def _seed(self):
        """
        Make sure the counter exists and is at least what this node has
        delivered.
        """
        return self.commands.eval(SEED, [self.keys["seq"]], [self.seq]).addCallback(
            self._seeded)

    def _as_unavailable(self, failure):
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
            self._seed().addErrback(self.liveness.failed)
        return defer.fail(unavailable())

    def _setup_failed(self, failure, protocol):
        self.log.failure("setting up the Redis connection failed", failure)
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    def _loaded(self, result):
        counter, entries = result
        self.seq = int(counter or 0)
        # The newest entries come first; only an unbroken run down from
        # seq is a backlog.
        kept = []
        for entry_id, fields in entries or []:
            payload = entry_payload(fields)
            if entry_seq(entry_id) != self.seq - len(kept) or payload is None:
                break
            kept.append(wire.frame(payload))
        self.clear_backlog(reversed(kept))
        self.ready = True
        self.log.info(
            "node {node} joined the room on Redis {address} at seq {seq}",
            node=self.node, address=self.address, seq=self.seq)
        self.liveness.start()
        self.reader.start(self.seq)
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

    def events_read(self):
        """
        Say in Redis how far this node has read, for L{PUBLISH}'s flow
        control.
        """
        d = self.commands.eval(POSITION, [self.keys["positions"]], [self.node, self.seq])
        d.addErrback(lambda failure: None)  # the next read says it again

    def deliver_event(self, seq, payload):
        """
        Deliver the event C{seq} read from the stream to this node's
        members, unless it came before: events arrive in order, and a hole
        makes every member lag.
        """
        if seq <= self.seq:
            self.log.error(
                "event {seq} arrived after {last}: Redis lost events and was "
                "seeded lower than this node had reached; it is not "
                "delivered", seq=seq, last=self.seq)
            return
        if seq != self.seq + 1:
            # The stream holds about --backlog events; this node fell
            # further behind than that.  Its clients are told, as slow
            # readers are, and cannot resume across the hole.
            self.log.warn(
                "events {first} to {last} were trimmed from the stream "
                "before this node read them; its {count} clients are told "
                "they lagged", first=self.seq + 1, last=seq - 1,
                count=len(self._members))
            self.flush()
            self.clear_backlog()
            for client in list(self._members.values()):
                client.fell_behind(self.seq + 1)
        self.seq = seq
        self._append(wire.frame(payload), not _is_presence(payload))

    # The room.

    @property
    def room_size(self):
        return max(self.room_count, len(self._members))

    @property
    def maxlen(self):
        """
        The stream's MAXLEN: about as many events as the backlog holds.
        """
        return self.backlog_size or 1

    def publish_keys(self, *more):
        """
        The first KEYS of a script that publishes (seq, stream, names),
        then C{more}.
        """
        keys = self.keys
        return [keys["seq"], keys["stream"], keys["names"]] + list(more)

    def _session_keys(self, client, token=None):
        return self.publish_keys(self.keys["session"] + (token or client.session))

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
        return list(self._members.values())

    def member(self, name):
        """
        This node's member called C{name} (in any case), or L{None}.
        """
        return self._members.get(name.lower())

    def new_guest_name(self):
        # The tag keeps guest names of different nodes apart.
        self._guests += 1
        return "%s%s%d" % (wire.GUEST_PREFIX, self._guest_tag, self._guests)

    def send_waiting_presence(self):
        """
        Record the joins and leaves made while Redis was away, in order.
        """
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            for script, keys, args in outbox:
                self._presence_op(script, keys, args)

    def _presence_op(self, script, keys, args):
        """
        Run a join or leave script now, or once Redis is back.
        """
        if self.commands.protocol is None or self._outbox:
            self._outbox.append((script, keys, args))
            return
        d = self.commands.eval(script, keys, args)
        d.addErrback(self._presence_failed, script, keys, args)

    def _presence_failed(self, failure, script, keys, args):
        if failure.check(wire.ProtocolError):
            # Lost before it was sent: it waits for Redis to come back.
            self._outbox.append((script, keys, args))
        else:
            self.log.warn("a join or leave was not recorded: {error}",
                          error=failure.getErrorMessage())

    def _announce_join(self, client):
        # The script registers the name and decides on presence.
        self._presence_op(
            JOIN, self._session_keys(client),
            [self.maxlen, self.presence_limit, client.name.lower(),
             self.entry(client), client.name, SESSION_TTL])

    def _announce_leave(self, client, reason, message, was_small):
        # The script frees the name, if still this node's, and decides on
        # presence from the whole room's size.
        tail = {"reason": reason}
        if message is not None:
            tail["message"] = message
        self._presence_op(
            LEAVE, self._session_keys(client),
            [self.maxlen, self.presence_limit, self._owner(client),
             wire.encode(tail)[1:-1]])

    def message(self, client, text):
        head = wire.encode(
            {"type": "message", "from": client.name, "text": text,
             "time": self.clock.seconds()}
        )[:-1] + b',"seq":'
        d = self.commands.eval(
            PUBLISH,
            [self.keys["seq"], self.keys["stream"], self.keys["positions"]],
            [self.maxlen, head, int(self.maxlen * BEHIND_FRACTION), STALE_POSITION])
        return d.addErrback(self._as_unavailable)

    def rename(self, client, new_name):
        self._check_free(client, new_name)
        d = self.commands.eval(
            RENAME, self._session_keys(client),
            [self.maxlen, self._owner(client), new_name, SESSION_TTL])
        d.addCallback(self._renamed, client, new_name)
        return d.addErrback(self._as_unavailable)

    def _renamed(self, result, client, new_name):
        if result == -1:
            raise wire.ProtocolError(wire.NICK_TAKEN, "the name %s is taken" % (new_name,))
        if result == -2 or client not in self:
            raise unavailable()
        self._set_name(client, new_name)

    def names(self):
        d = self.commands.call("HVALS", self.keys["names"])
        d.addCallback(lambda entries: sorted(
            entry.decode().split(" ", 2)[2] for entry in entries))
        return d.addErrback(self._as_unavailable)

    def resume(self, client, token, last_seq):
        session = self._sessions.get(token)
        if session is not None and session.client is not None and session.client in self:
            # Its connection is on this node: as in one process.
            return ChatHub.resume(self, client, token, last_seq)
        self.flush()
        # Taken now: they may age out of the backlog while Redis answers.
        frames = self.replay_for_resume(last_seq)
        guest = client.name
        d = self.commands.eval(
            RESUME, self._session_keys(client, token),
            [self.maxlen, self.presence_limit, self.node, token, guest, SESSION_TTL])
        d.addErrback(self._as_unavailable)
        d.addCallback(self._resume_answered, client, token, frames, self.seq)
        return d

    def _resume_answered(self, result, client, token, frames, asked_at):
        if result[0] == 0:
            raise wire.ProtocolError(
                wire.RESUME_FAILED, "unknown session", oldest_seq=self.oldest_seq)
        # Events delivered while Redis answered follow; the connection has
        # not joined, so they were kept for it (expect).
        self.flush()
        client.session = token
        client.name = result[1].decode()
        if client not in self._expected:
            # Its connection was lost while Redis answered: Redis now has
            # the session here, so it leaves from here.
            self._add(client)
            self.leave(client, wire.REASON_RESET)
            return 0
        later = self.replay(asked_at)
        self.stats.deliveries += _send_replay(client, frames + (later or []))
        self._forget_expected(client)
        if later is None:
            client.fell_behind(asked_at + 1)
        self._add(client)
        return len(frames) + len(later or [])


class _ClusterService(MultiService):
    """
    Runs a L{ClusterHub}'s connections; stopping it stops the reader, the
    refresher and the command connection.
    """

    def __init__(self, hub):
        super().__init__()
        self.hub = hub
        hub.commands.service.setServiceParent(self)

    def stopService(self):
        d = defer.maybeDeferred(self.hub.stop)
        d.addBoth(lambda _: super(_ClusterService, self).stopService())
        return d
