"""
Helpers for the cluster's tests: a real redis-server of the test's own, on
a free loopback port, and chat nodes on it.
"""

import importlib
import os
import shutil

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.trial.unittest import SkipTest

from tests.helpers.loopback import LoopbackMixin, RawClient
from tests.helpers.processes import ChildProcess, temp_dir
from twisted_chat.server import ChatServerFactory

REDIS_SERVER = shutil.which("redis-server")


def _cluster_parts():
    """
    L{twisted_chat.cluster}, or L{None} without the cluster extra.
    """
    try:
        for module in ("txredisapi", "hiredis"):
            importlib.import_module(module)
    except ImportError:
        return None
    from twisted_chat import cluster

    return cluster


class ClusterMixin(LoopbackMixin):
    """
    redis-server processes and cluster nodes, all cleaned up.
    """

    timeout = 30

    def setUp(self):
        super().setUp()
        missing = None
        self.cluster = _cluster_parts()
        if REDIS_SERVER is None:
            missing = "redis-server is not installed (apt-get install redis-server)"
        elif self.cluster is None:
            missing = "txredisapi or hiredis is not installed (pip install '.[test]')"
        if missing and os.environ.get("TWISTED_CHAT_REQUIRE_REDIS"):
            self.fail(missing)
        elif missing:
            raise SkipTest(missing)

    @defer.inlineCallbacks
    def start_redis(self, port=None):
        """
        Run redis-server on 127.0.0.1:C{port} (a free one by default),
        without persistence: a restart comes back empty.

        @return: a Deferred firing with the L{ChildProcess}; its C{port}
            attribute is the port.
        """
        port = port or self.free_port()
        # Removed after the cleanup below has waited for the server to end.
        workdir = temp_dir(self, "twisted-chat-redis-")
        child = ChildProcess()
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", workdir]
        reactor.spawnProcess(child, REDIS_SERVER, args, env={}, path=workdir)
        child.port = port

        def cleanup():
            if child.running:
                child.signal("KILL")
                return child.ended

        self.addCleanup(cleanup)
        ready = child.wait_for(rb"[Rr]eady to accept connections")
        timer = reactor.callLater(10, ready.cancel)
        try:
            yield ready
        except defer.CancelledError:
            self.fail("redis-server did not start on port %d:\n%s" % (
                port, bytes(child.out + child.err).decode(errors="replace")))
        timer.cancel()
        return child

    def kill(self, child):
        """
        SIGKILL C{child}: a Deferred that fires once it is gone.
        """
        child.signal("KILL")
        return child.ended

    def redis_url(self, redis):
        return "redis://127.0.0.1:%d/0" % (redis.port,)

    @defer.inlineCallbacks
    def start_node(self, redis, wait=True, node_timeout=30.0, **settings):
        """
        A chat node in this process, on the real reactor, listening on a
        free loopback port.

        @return: a Deferred firing with its factory; C{port} is its port
            and C{room.store} its L{RedisStore}.
        """
        cluster = self.cluster
        settings.setdefault("rate", 0)
        settings.setdefault("backlog", 1024)
        store = cluster.RedisStore(
            reactor, cluster.RedisAddress(self.redis_url(redis)), node_timeout=node_timeout)
        factory = ChatServerFactory(clock=reactor, store=store, **settings)
        service = store.service()
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(factory.shutdown, "test over", 1.0)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        factory.port = port.getHost().port
        if wait:
            yield store.when_ready()
        return factory

    @defer.inlineCallbacks
    def node_process(self, redis, node_timeout=4):
        """
        A node in a twistd process of its own on C{redis}, for a test to
        kill, once it has loaded the lobby.

        @return: a Deferred firing with the child and its port.
        """
        node, port = yield self.spawn_twistd(
            "--redis", self.redis_url(redis), "--node-timeout", str(node_timeout))
        yield node.wait_for(rb"joined the room")
        return node, port

    @defer.inlineCallbacks
    def two_nodes(self):
        """
        A redis-server and two nodes on it, as C{self.redis}, C{self.a} and
        C{self.b}.
        """
        self.redis = yield self.start_redis()
        self.a = yield self.start_node(self.redis)
        self.b = yield self.start_node(self.redis)

    @defer.inlineCallbacks
    def raw_client(self, port, first=b'{"type":"heartbeat"}', welcome=True):
        """
        A L{RawClient} on C{port} that has had its welcome and sent
        C{first}, and so joined.
        """
        client = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawClient())
        self.addCleanup(lambda: client.transport.abortConnection() or client.lost)
        if not welcome:
            return client
        yield client.wait_for_type("welcome")
        if first is not None:
            client.sendString(first)
        return client
