# -*- test-case-name: tests.test_cluster -*-
"""
Several chat nodes, one room: the room's state lives in Redis.

With C{--redis URL} the server's hub is a L{ClusterHub}.  Every broadcast
event is appended once to a Redis Stream by a Lua script that also takes
the next C{seq} from a counter, so the sequence is global and gap-free; the
stream entry's id is C{<seq>-0}.  Every node reads the stream (C{XREAD
BLOCK} from the last id it delivered) and sends each event's frame, framed
once, to its own clients.  Names, sessions and node liveness are Redis keys;
docs/cluster.rst describes them and the failure modes.

The Redis client is txredisapi, a Twisted-native one, on connections that
L{ClientService} keeps up (docs/cluster.rst says why).
"""

import secrets
import string

from twisted.application.service import MultiService
from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_chat import settings, wire
from twisted_chat.cluster.link import REPLY_TIMEOUT, RedisLink, unavailable
from twisted_chat.cluster.lua import (
    JOIN, LEAVE, LOAD, POSITION, PUBLISH, REAP, REFRESH, RENAME, RESTORE, RESUME, SEED)
from twisted_chat.hub import ChatHub, _send_replay

#: How long one XREAD waits for new entries, in milliseconds.
BLOCK_MS = 2000
#: Most stream entries read at once.
READ_COUNT = 1000
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


def _entry_seq(entry_id):
    """
    The seq of a stream entry, from its id C{<seq>-0}; L{None} for an id of
    any other form.
    """
    seq, _, sub = entry_id.partition(b"-")
    if sub != b"0" or not seq.isdigit():
        return None
    return int(seq)


def _payload(fields):
    """
    The frame payload in a stream entry's field list.
    """
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"f":
            return fields[i + 1]
    return None


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
    """

    log = Logger()

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
        self.last_id = b"0-0"
        self._guest_tag = "".join(
            secrets.choice(string.ascii_lowercase) for _ in range(GUEST_TAG_LENGTH)
        )
        # Presence changes made while Redis was away, oldest first.
        self._outbox = []
        self._keys = {
            "seq": prefix + "seq",
            "stream": prefix + "events",
            "names": prefix + "names",
            "nodes": prefix + "nodes",
            "node": prefix + "node:",
            "session": prefix + "session:",
            "positions": prefix + "positions",
        }
        self.commands = RedisLink(reactor, redis, "command", self._commands_up)
        self.reader = RedisLink(
            reactor, redis, "reader", self._reader_up,
            reply_timeout=BLOCK_MS / 1000.0 + REPLY_TIMEOUT,
        )
        self._reading = None
        self._refresher = task.LoopingCall(self._refresh)
        self._refresher.clock = reactor
        self._whenReady = []

    # Life cycle.

    def service(self):
        """
        The service that keeps this node's Redis connections up.
        """
        return _ClusterService(self)

    def when_ready(self):
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
                LOAD, [self._keys["seq"], self._keys["stream"]], [self._maxlen]))
            d.addCallback(self._loaded)
        d.addCallback(lambda _: self._refresh())
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
        return self.commands.eval(SEED, [self._keys["seq"]], [self.seq]).addCallback(
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
            self._seed().addErrback(self._refresh_failed)
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
            payload = _payload(fields)
            if _entry_seq(entry_id) != self.seq - len(kept) or payload is None:
                break
            kept.append(wire.frame(payload))
        self.clear_backlog(reversed(kept))
        self.last_id = b"%d-0" % (self.seq,)
        self.ready = True
        self.log.info(
            "node {node} joined the room on Redis {address} at seq {seq}",
            node=self.node, address=self.address, seq=self.seq)
        self._refresher.start(self.node_timeout / 3.0, now=False)
        self.reader.service.startService()
        waiting, self._whenReady = self._whenReady, []
        for d in waiting:
            d.callback(None)

    def _refresh(self):
        """
        Keep this node's liveness key alive, take out the users of nodes
        whose key has expired, and learn the room's size.
        """
        keys = self._keys
        d = self.commands.eval(
            REFRESH,
            [keys["nodes"], keys["node"] + self.node, keys["names"]],
            [self.node, int(self.node_timeout * 1000)],
        )
        d.addCallback(self._refreshed)
        d.addCallback(lambda _: self.commands.eval(
            REAP, self._publish_keys(keys["nodes"], keys["positions"]),
            [self._maxlen, self.presence_limit, self.node, keys["node"], SESSION_TTL]))
        d.addCallback(self._reaped)
        d.addErrback(self._refresh_failed)
        return d

    def _refreshed(self, result):
        new, reaped, size = result
        self.room_count = size
        # Joins and leaves made while Redis was away go first, in order, so
        # that a join is announced before its user would be put back
        # silently below.
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            for script, keys, args in outbox:
                self._presence_op(script, keys, args)
        if new and self._members:
            # Redis lost us (it restarted empty, or we were silent so long
            # that the others took our users out): put them back, telling
            # the room only if it was told they left.
            self._restore(announce=bool(reaped))

    def _reaped(self, left):
        if left:
            self.log.info("took {count} users of expired nodes out of the room", count=left)

    def _refresh_failed(self, failure):
        if not failure.check(wire.ProtocolError):
            self.log.warn("Redis refresh failed: {error}", error=failure.getErrorMessage())

    def _restore(self, announce):
        args = [self._maxlen, self.presence_limit, "1" if announce else "0",
                self._keys["session"], SESSION_TTL]
        for client in self._members.values():
            args += [client.name.lower(), self._entry(client), client.name, client.session]
        d = self.commands.eval(RESTORE, self._publish_keys(), args)
        d.addCallback(self._restored)
        d.addErrback(self._refresh_failed)

    def _restored(self, lost):
        for name in lost or []:
            client = self._members.get(name.decode().lower())
            if client is not None:
                self.log.warn(
                    "{name} ({peer}) lost its name to another node while Redis "
                    "was away; dropping it", name=client.name,
                    peer=getattr(client, "peer", "?"))
                client.abort(wire.REASON_ERROR)

    def stop(self):
        """
        Stop reading and refreshing; the liveness key expires by itself, so
        that users who resume on another node keep their names.
        """
        if self._refresher.running:
            self._refresher.stop()
        if self._reading is not None:
            self._reading.cancel()
        return self.reader.service.stopService()

    # Reading the stream.

    def _reader_up(self, protocol):
        self._read(protocol)

    def _read(self, protocol):
        if self.reader.protocol is not protocol:
            return
        d = self.reader.call(
            "XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS,
            "STREAMS", self._keys["stream"], self.last_id,
        )
        self._reading = d
        d.addCallback(self._got_entries)
        d.addCallback(lambda _: self._read(protocol))
        d.addErrback(self._read_failed, protocol)

    def _read_failed(self, failure, protocol):
        self._reading = None
        if failure.check(defer.CancelledError):
            return
        if failure.check(wire.ProtocolError) or self.reader.protocol is not protocol:
            return  # the connection is gone; a new one reads on
        self.log.warn("reading the event stream failed: {error}",
                      error=failure.getErrorMessage())
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    def _got_entries(self, reply):
        self._reading = None
        if not reply:
            return
        with self.batch():
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    self._deliver_entry(entry_id, fields)
        self._tell_position()

    def _tell_position(self):
        """
        Say in Redis how far this node has read, for L{PUBLISH}'s flow
        control.
        """
        d = self.commands.eval(POSITION, [self._keys["positions"]], [self.node, self.seq])
        d.addErrback(lambda failure: None)  # the next read says it again

    def _deliver_entry(self, entry_id, fields):
        self.last_id = entry_id
        seq = _entry_seq(entry_id)
        payload = _payload(fields)
        if seq is None or payload is None:
            return
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
    def _maxlen(self):
        return self.backlog_size or 1

    def _publish_keys(self, *more):
        keys = self._keys
        return [keys["seq"], keys["stream"], keys["names"]] + list(more)

    def _session_keys(self, client, token=None):
        return self._publish_keys(self._keys["session"] + (token or client.session))

    def _owner(self, client):
        return "%s %s" % (self.node, client.session)

    def _entry(self, client):
        return "%s %s" % (self._owner(client), client.name)

    def new_guest_name(self):
        # The tag keeps guest names of different nodes apart.
        self._guests += 1
        return "%s%s%d" % (wire.GUEST_PREFIX, self._guest_tag, self._guests)

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
            [self._maxlen, self.presence_limit, client.name.lower(),
             self._entry(client), client.name, SESSION_TTL])

    def _announce_leave(self, client, reason, message, was_small):
        # The script frees the name, if still this node's, and decides on
        # presence from the whole room's size.
        tail = {"reason": reason}
        if message is not None:
            tail["message"] = message
        self._presence_op(
            LEAVE, self._session_keys(client),
            [self._maxlen, self.presence_limit, self._owner(client),
             wire.encode(tail)[1:-1]])

    def message(self, client, text):
        head = wire.encode(
            {"type": "message", "from": client.name, "text": text,
             "time": self.clock.seconds()}
        )[:-1] + b',"seq":'
        d = self.commands.eval(
            PUBLISH,
            [self._keys["seq"], self._keys["stream"], self._keys["positions"]],
            [self._maxlen, head, int(self._maxlen * BEHIND_FRACTION), STALE_POSITION])
        return d.addErrback(self._as_unavailable)

    def rename(self, client, new_name):
        self._check_free(client, new_name)
        d = self.commands.eval(
            RENAME, self._session_keys(client),
            [self._maxlen, self._owner(client), new_name, SESSION_TTL])
        d.addCallback(self._renamed, client, new_name)
        return d.addErrback(self._as_unavailable)

    def _renamed(self, result, client, new_name):
        if result == -1:
            raise wire.ProtocolError(wire.NICK_TAKEN, "the name %s is taken" % (new_name,))
        if result == -2 or client not in self:
            raise unavailable()
        self._set_name(client, new_name)

    def names(self):
        d = self.commands.call("HVALS", self._keys["names"])
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
            [self._maxlen, self.presence_limit, self.node, token, guest, SESSION_TTL])
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
