# -*- test-case-name: tests.test_cluster -*-
"""
The link to Redis: where it is (L{RedisAddress}), and one connection to it
that L{ClientService} makes again whenever it is lost (L{RedisLink}).

The client is txredisapi's protocol, Twisted-native (docs/cluster.rst says
why); this is the only module that knows it.
"""

from urllib.parse import unquote, urlsplit

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from twisted_chat import wire

#: Seconds Redis may take to answer a command before the connection is
#: deemed dead and made again.
REPLY_TIMEOUT = 5.0
#: Reconnecting to Redis waits 0.1 s at first, then longer, at most this.
MAX_RETRY_DELAY = 5.0


class RedisAddress:
    """
    Where Redis is: parsed from C{redis://[[user]:password@]host[:port][/db]}
    or C{unix:///path/to/socket[?db=N]}.
    """

    def __init__(self, url):
        parts = urlsplit(url)
        self.url = url
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if parts.scheme == "redis":
            if not parts.hostname:
                raise ValueError("%r names no host" % (url,))
            self.host = parts.hostname
            try:
                self.port = parts.port or 6379
            except ValueError:
                raise ValueError("%r has a bad port" % (url,)) from None
            self.path = None
            db = parts.path.strip("/") or "0"
        elif parts.scheme == "unix":
            self.host = self.port = None
            self.path = parts.path
            db = dict(
                item.split("=", 1) for item in parts.query.split("&") if "=" in item
            ).get("db", "0")
        else:
            raise ValueError("%r is not a redis:// or unix:// URL" % (url,))
        if not db.isdigit():
            raise ValueError("%r: the database must be a number" % (url,))
        self.db = int(db)

    def endpoint(self, reactor):
        """
        A client endpoint to Redis on C{reactor}.
        """
        if self.path is not None:
            return UNIXClientEndpoint(reactor, self.path, timeout=REPLY_TIMEOUT)
        return HostnameEndpoint(reactor, self.host, self.port, timeout=REPLY_TIMEOUT)

    def __str__(self):
        if self.path is not None:
            return "unix:%s db %d" % (self.path, self.db)
        return "%s:%d db %d" % (self.host, self.port, self.db)


def _protocol_class():
    # hiredis parses replies in C; txredisapi's own parser handles every
    # element of a reply in a reactor iteration of its own (see
    # docs/cluster.rst), far too slow for reading a busy stream.
    import txredisapi

    return txredisapi.HiredisProtocol if txredisapi.hiredis else txredisapi.BaseRedisProtocol


class _RedisFactory(Factory):
    """
    Builds txredisapi protocols that answer in bytes, time themselves on
    C{reactor}, and log instead of giving up when Redis refuses them.
    """

    log = Logger()
    isLazy = False
    noisy = False

    def __init__(self, reactor, address, reply_timeout, ready):
        """
        @param ready: called with each protocol once it is usable
            (authenticated, on the right database).
        """
        self.reactor = reactor
        self.address = address
        self.reply_timeout = reply_timeout
        self.ready = ready
        self.protocol_class = _protocol_class()

    def buildProtocol(self, addr):
        protocol = self.protocol_class(
            charset=None,
            replyTimeout=self.reply_timeout,
            password=self.address.password,
            username=self.address.username,
            dbid=self.address.db,
            convertNumbers=False,
        )
        protocol.factory = self
        protocol.callLater = self.reactor.callLater
        protocol.whenConnected().addCallback(self.ready)
        return protocol

    # What txredisapi's protocol calls when AUTH or SELECT fails.
    def stopTrying(self):
        pass

    def connectionError(self, message):
        self.log.error("{message} ({address})", message=message, address=self.address)


class RedisLink:
    """
    One connection to Redis, made again with backoff whenever it is lost.

    @ivar protocol: the connected txredisapi protocol, or L{None}.
    """

    log = Logger()

    def __init__(self, reactor, address, name, on_connect, reply_timeout=REPLY_TIMEOUT):
        """
        @param on_connect: called with the protocol each time a connection
            is ready (authenticated and on the right database).
        """
        self.reactor = reactor
        self.address = address
        self.name = name
        self.on_connect = on_connect
        self.protocol = None
        self._lost_once = False
        # Not ClientService's prepareConnection for AUTH and SELECT: a
        # connection lost while it is pending makes ClientService raise
        # NoTransition (seen with Twisted 26.10; the state machine of 22.10
        # has no such transition either).
        self.service = ClientService(
            address.endpoint(reactor),
            _RedisFactory(reactor, address, reply_timeout, self._ready),
            retryPolicy=backoffPolicy(initialDelay=0.1, maxDelay=MAX_RETRY_DELAY),
            clock=reactor,
        )

    def _ready(self, protocol):
        if protocol.transport is None or not protocol.connected:
            return
        self.protocol = protocol
        protocol.whenDisconnected().addCallback(self._lost)
        if self._lost_once:
            self.log.info("Redis {link} connection is back ({address})",
                          link=self.name, address=self.address)
        self.on_connect(protocol)

    def _lost(self, protocol):
        if self.protocol is protocol:
            self.protocol = None
            self._lost_once = True
            self.log.warn("Redis {link} connection lost ({address}); reconnecting",
                          link=self.name, address=self.address)

    def call(self, *args, **kwargs):
        """
        Send a command; a Deferred of its reply.  Fails with
        L{wire.ProtocolError} C{unavailable} when there is no connection.
        """
        return self._send("execute_command", *args, **kwargs)

    def eval(self, script, keys, args):
        """
        Run a Lua script; as L{call}.
        """
        return self._send("eval", script, keys, args)

    def _send(self, method, *args, **kwargs):
        protocol = self.protocol
        if protocol is None:
            return defer.fail(unavailable())
        return defer.maybeDeferred(getattr(protocol, method), *args, **kwargs)


def unavailable():
    """
    The error a client is sent while Redis cannot be reached.
    """
    return wire.ProtocolError(
        wire.UNAVAILABLE, "the server cannot reach the room's store; try again"
    )
