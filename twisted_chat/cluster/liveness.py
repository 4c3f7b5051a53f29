# -*- test-case-name: tests.test_cluster -*-
"""
Node liveness: a node keeps a key in Redis alive; when a node's key
expires, the others take its users out of the room; and a node that Redis
lost (it restarted empty, or the node was silent too long) puts its users
back.
"""

from twisted.internet import task
from twisted.logger import Logger

from twisted_chat import wire
from twisted_chat.cluster.lua import REAP, REFRESH, RESTORE
from twisted_chat.cluster.rooms import EMPTIED_ROOM_TTL


class NodeLiveness:
    """
    Every C{store.node_timeout}/3 seconds: refresh this node's liveness key
    (L{REFRESH}), take out the users of nodes whose key has expired
    (L{REAP}), and put this node's users back (L{RESTORE}) if Redis had
    lost it.

    @ivar store: the node's L{RedisStore}; its C{commands} link, C{keys},
        C{node} and members are what this works with.
    """

    log = Logger()

    def __init__(self, store, clock):
        self.store = store
        self._refresher = task.LoopingCall(self.refresh)
        self._refresher.clock = clock

    def start(self):
        """
        Refresh from now on, the first time a third of the node timeout
        from now.
        """
        self._refresher.start(self.store.node_timeout / 3.0, now=False)

    def stop(self):
        """
        Refresh no more; the liveness key expires by itself.
        """
        if self._refresher.running:
            self._refresher.stop()

    def refresh(self):
        """
        Keep this node's liveness key alive, take out the users of nodes
        whose key has expired, and learn the room's size.
        """
        store = self.store
        keys = store.keys
        d = store.commands.eval(
            REFRESH,
            [keys["nodes"], keys["node"] + store.node, keys["names"]],
            [store.node, int(store.node_timeout * 1000)],
        )
        d.addCallback(self._refreshed)
        d.addCallback(lambda _: store.commands.eval(
            REAP, store.publish_keys(
                keys["nodes"], keys["positions"], keys["rooms"], keys["outside"]),
            [store.maxlen, store.presence_limit, store.node, keys["node"], store.session_ttl,
             keys["prefix"], "1" if store.rooms is not None and store.rooms.accounts else "0",
             EMPTIED_ROOM_TTL]))
        d.addCallback(self._reaped)
        d.addErrback(self.failed)
        return d

    def _refreshed(self, result):
        new, reaped, size = result
        store = self.store
        store.room_count = size
        # Joins and leaves made while Redis was away go first, in order, so
        # that a join is announced before its user would be put back
        # silently below.
        store.send_waiting_presence()
        if new and (store.members() or store.rooms and store.rooms.users.outside):
            # Redis lost us (it restarted empty, or we were silent so long
            # that the others took our users out): put them back, telling
            # the room only if it was told they left.
            self.restore(announce=bool(reaped))
            store.restore_rooms("1" if reaped else "0").addErrback(self.failed)

    def _reaped(self, left):
        if left:
            self.log.info("took {count} users of expired nodes out of the room", count=left)

    def failed(self, failure):
        """
        Log a failed background command, unless it failed only because
        Redis cannot be reached (the next refresh tries again).
        """
        if not failure.check(wire.ProtocolError):
            self.log.warn("Redis refresh failed: {error}", error=failure.getErrorMessage())

    def restore(self, announce):
        """
        Put this node's users back in Redis's names and sessions.

        @param announce: whether to publish their joins.
        """
        store = self.store
        args = [store.maxlen, store.presence_limit, "1" if announce else "0",
                store.keys["session"]]
        outside = [] if store.rooms is None else list(store.rooms.users.outside.values())
        for client, lobby in [(c, "1") for c in store.members()] + [
                (c, "0") for c in outside]:
            args += [client.name.lower(), store.entry(client), client.name, client.session,
                     lobby, store.rooms.dseq(client.session) if store.rooms else 0]
        d = store.commands.eval(RESTORE, store.publish_keys(store.keys["outside"]), args)
        d.addCallback(self._restored)
        d.addErrback(self.failed)

    def _restored(self, lost):
        for name in lost or []:
            client = self.store.member(name.decode())
            if client is not None:
                self.log.warn(
                    "{name} ({peer}) lost its name to another node while Redis "
                    "was away; dropping it", name=client.name,
                    peer=getattr(client, "peer", "?"))
                client.abort(wire.REASON_ERROR)
