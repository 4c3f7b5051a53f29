# -*- test-case-name: tests.unit.test_tap,tests.system.test_tap -*-
"""
The twistd plugin's options and service: C{twistd -n chat --port 56562}.
"""

import dataclasses
import importlib
import signal
import sys
import threading

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger
from twisted.python import usage

from twisted_chat import wire
from twisted_chat.server import ChatServerFactory
from twisted_chat.settings import (
    DEFAULT_BACKLOG,
    DEFAULT_BURST,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_LOG_RATE,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_IP,
    DEFAULT_JOIN_BURST,
    DEFAULT_JOIN_RATE,
    DEFAULT_MAX_ROOMS,
    DEFAULT_MAX_ROOMS_PER_CLIENT,
    DEFAULT_NICK_PERIOD,
    DEFAULT_NICK_RATE,
    DEFAULT_PRESENCE_LIMIT,
    DEFAULT_RATE,
    DEFAULT_READ_BUDGET,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_MESSAGE,
    LISTEN_BACKLOG,
    LimitsError,
    ServerSettings,
    frame_limits,
)


def endpoint_description(value):
    """
    Turn a C{--port} value into a server endpoint description.

    A bare port number means TCP on every interface; anything else must be a
    Twisted server endpoint string.  It is parsed here (against a reactor
    that never listens) so that a bad one is a usage error, not a traceback
    at start-up.
    """
    value = value.strip()
    if value.isdigit():
        if int(value) > 65535:
            raise ValueError("port %s is out of range (0-65535)" % (value,))
        # Twisted's default backlog of 50 drops the SYNs of a burst of
        # connects (they are retried only after 1, 3, 7 s).
        value = "tcp:%s:backlog=%d" % (value, LISTEN_BACKLOG)
    try:
        serverFromString(MemoryReactor(), value)
    except Exception as e:
        raise ValueError("%r is not a server endpoint: %s" % (value, e)) from None
    return value


endpoint_description.coerceDoc = (
    "A port number (TCP on every interface, backlog 4096), or a Twisted "
    "server endpoint such as tcp:56562:interface=127.0.0.1:backlog=4096."
)


def _number(convert, kind):
    def coerce(value):
        try:
            return convert(value)
        except ValueError:
            raise ValueError("%r is not %s" % (value, kind)) from None

    return coerce


_float = _number(float, "a number")
_int = _number(int, "a whole number")


def _auth_file(value):
    from twisted_chat.accounts import AuthFile, AuthFileError

    try:
        return AuthFile(value)
    except AuthFileError as e:
        raise ValueError(str(e)) from None


_auth_file.coerceDoc = "A file of name:hash lines (scrypt or bcrypt hashes)."


def _redis_address(value):
    from twisted_chat.cluster import RedisAddress

    return RedisAddress(value)


_redis_address.coerceDoc = "A redis://host:port/db or unix:///path URL."

_UNITS = {"": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


def _size(value):
    """
    A byte count: a whole number, optionally with a KiB or MiB suffix.
    """
    text = value.strip().lower()
    number = text.rstrip("kmib")
    unit = text[len(number):]
    if unit not in _UNITS or not number.strip().isdigit():
        raise ValueError("%r is not a size (such as 65536, 256KiB or 1MiB)" % (value,))
    return int(number) * _UNITS[unit]


#: The exit status of a bad command line under twistd.  A failed start (a
#: port that cannot be had) exits 1, so a supervisor can tell the two apart
#: (systemd: RestartPreventExitStatus=2).
USAGE_ERROR_STATUS = 2


#: The options that L{frame_limits} completes; their table default is None,
#: so that a value given on the command line can be told from a default.
_FRAME_LIMITS = ("max-frame", "max-text", "sendq-soft", "sendq")


def _require(option, extra, *modules):
    """
    @raise usage.UsageError: naming the extra to install, if C{option}
        needs a module that is missing.
    """
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as e:
        raise usage.UsageError(
            "%s needs the %s extra: pip install 'twisted-chat[%s]' (%s)"
            % (option, extra, extra, e)
        )


class Options(usage.Options):
    """
    Command-line options of C{twistd chat}.
    """

    synopsis = "[--port PORT] [options]"
    longdesc = (
        "Run a twisted-chat server.  Clients send a heartbeat every "
        "--heartbeat-interval seconds; a client silent for --timeout seconds "
        "is dropped and the others are told."
    )

    optParameters = [
        [
            "port",
            "p",
            "tcp:%d:backlog=%d" % (wire.DEFAULT_PORT, LISTEN_BACKLOG),
            "Where to listen.",
            endpoint_description,
        ],
        [
            "heartbeat-interval",
            None,
            wire.DEFAULT_HEARTBEAT_INTERVAL,
            "Seconds between client heartbeats (announced to clients).",
            _float,
        ],
        [
            "timeout",
            "t",
            wire.DEFAULT_TIMEOUT,
            "Seconds without any frame after which a client is dropped; "
            "must exceed the heartbeat interval.",
            _float,
        ],
        [
            "max-frame",
            None,
            None,
            "Largest frame payload in bytes, in either direction: %d to %d.  "
            "Default %d, raised to what a given --max-text needs, or lowered "
            "to a given --sendq-soft."
            % (wire.MIN_FRAME_LIMIT, wire.MAX_FRAME_LIMIT, wire.DEFAULT_MAX_FRAME),
            _int,
        ],
        [
            "max-text",
            None,
            None,
            "Longest chat message, in characters.  Default %d, or as many as "
            "--max-frame carries if fewer (about 6 bytes a character)."
            % (wire.DEFAULT_MAX_TEXT,),
            _int,
        ],
        [
            "backlog",
            None,
            DEFAULT_BACKLOG,
            "How many recent events to keep for clients that resume.",
            _int,
        ],
        [
            "sendq-soft",
            None,
            None,
            "Bytes waiting for a client after which it is sent no more events "
            "until it catches up (accepts KiB and MiB).  Default 256KiB, or "
            "one --max-frame if more.",
            _size,
        ],
        [
            "sendq",
            None,
            None,
            "Bytes waiting for a client after which it is dropped.  Default "
            "1MiB, or 4 times --sendq-soft if that is not more.",
            _size,
        ],
        [
            "rate",
            None,
            DEFAULT_RATE,
            "Chat messages a client may send per second; 0 turns flood "
            "control off.",
            _float,
        ],
        [
            "burst",
            None,
            DEFAULT_BURST,
            "Chat messages a client may send at once before --rate applies.",
            _int,
        ],
        [
            "nick-rate",
            None,
            DEFAULT_NICK_RATE,
            "Name changes a session may make per --nick-period; 0 turns the "
            "limit off.",
            _int,
        ],
        [
            "nick-period",
            None,
            DEFAULT_NICK_PERIOD,
            "Seconds over which --nick-rate name changes are allowed.",
            _float,
        ],
        [
            "join-rate",
            None,
            DEFAULT_JOIN_RATE,
            "Room joins a session may make per second once --join-burst is "
            "spent (a part spends one too, but is never refused); 0 turns the "
            "limit off.",
            _float,
        ],
        [
            "join-burst",
            None,
            DEFAULT_JOIN_BURST,
            "Room joins a session may make at once.",
            _int,
        ],
        [
            "max-clients",
            None,
            DEFAULT_MAX_CLIENTS,
            "Most connections at once; the next one is refused (server_full).",
            _int,
        ],
        [
            "max-per-ip",
            None,
            DEFAULT_MAX_PER_IP,
            "Most connections from one address (an IPv6 address counts with "
            "its /64); 0 means no limit.",
            _int,
        ],
        [
            "read-budget",
            None,
            DEFAULT_READ_BUDGET,
            "Bytes of unfinished incoming frames the server holds, all "
            "connections together (accepts KiB and MiB; the default is 32MiB; "
            "at least one --max-frame).  Past it the connections holding the "
            "most are dropped (frame_timeout) until it is 7/8 full.",
            _size,
        ],
        [
            "frame-timeout",
            None,
            None,
            "Seconds within which a frame must be complete once its first "
            "byte has arrived; past it the client is dropped (frame_timeout).  "
            "At most --timeout.  Default %g, or --timeout if shorter."
            % (DEFAULT_FRAME_TIMEOUT,),
            _float,
        ],
        [
            "presence-limit",
            None,
            DEFAULT_PRESENCE_LIMIT,
            "Broadcast join and leave only while the room has at most this "
            "many members.",
            _int,
        ],
        [
            "max-rooms-per-client",
            None,
            DEFAULT_MAX_ROOMS_PER_CLIENT,
            "Most rooms one connection may be in at once, the lobby included "
            "(too_many_rooms).",
            _int,
        ],
        [
            "max-rooms",
            None,
            DEFAULT_MAX_ROOMS,
            "Most rooms the server keeps at once, the lobby included; a room "
            "that empties is forgotten (too_many_rooms).",
            _int,
        ],
        [
            "log-rate",
            None,
            DEFAULT_LOG_RATE,
            "Most lines a second about clients connecting and leaving; the "
            "rest are counted and summed up once a second.  0 means no limit.",
            _int,
        ],
        [
            "redis",
            None,
            None,
            "Share the rooms, names and direct messages of every node on this "
            "Redis, such as redis://127.0.0.1:6379/0 (see docs/cluster.rst); "
            "without it they are this process's alone.",
            _redis_address,
        ],
        [
            "node-timeout",
            None,
            None,
            "With --redis: seconds after which the other nodes take a silent "
            "node's users out of the room (default: --timeout).",
            _float,
        ],
        [
            "auth-file",
            None,
            None,
            "Accounts: a file of name:hash lines (python -m twisted_chat.passwd "
            "makes it).  Clients must then log in, over TLS unless "
            "--allow-plaintext-login.",
            _auth_file,
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics over HTTP here, such as "
            "tcp:9100:interface=127.0.0.1 (needs the metrics extra).",
            endpoint_description,
        ],
        [
            "shutdown-grace",
            None,
            DEFAULT_SHUTDOWN_GRACE,
            "Seconds a graceful stop waits for clients to close before it "
            "aborts them.",
            _float,
        ],
    ]

    optFlags = [
        ["verbose", "v", "Log every chat message and every heartbeat too."],
        [
            "allow-plaintext-login",
            None,
            "With --auth-file: let clients send passwords without TLS (for a "
            "trusted network or a TLS-terminating proxy only).",
        ],
    ]

    def parseOptions(self, options=None):
        """
        Parse the command line.  (Twisted API.)

        Alone (as tests and other programs use it), a bad command line
        raises L{usage.UsageError}.  As twistd's sub-command, it ends the
        program with one line on stderr and status L{USAGE_ERROR_STATUS}:
        twistd would print its whole option list above the error instead.
        C{--help} still prints this command's help.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            # usage.Options sets parent on the sub-command it parses.
            if self.parent is None:
                raise
            command = "twistd %s" % (self.parent.subCommand,)
            sys.stderr.write("%s: %s (see %s --help)\n" % (command, e, command))
            sys.stderr.flush()
            raise SystemExit(USAGE_ERROR_STATUS) from None

    def postOptions(self):
        """
        Check that the options make sense together, and complete the limits
        that were not given from those that were (L{frame_limits}).
        (Twisted API.)
        """
        interval = self["heartbeat-interval"]
        timeout = self["timeout"]
        if not interval > 0:
            raise usage.UsageError("--heartbeat-interval must be more than 0")
        if not timeout > interval:
            raise usage.UsageError(
                "--timeout (%g) must be more than --heartbeat-interval (%g)"
                % (timeout, interval)
            )
        self.update(self._frame_limits())
        if self["backlog"] < 0:
            raise usage.UsageError("--backlog must be 0 or more")
        if not self["rate"] >= 0:
            raise usage.UsageError("--rate must be 0 (no limit) or more")
        if self["burst"] < 1:
            raise usage.UsageError("--burst must be at least 1")
        if self["nick-rate"] < 0:
            raise usage.UsageError("--nick-rate must be 0 (no limit) or more")
        if not self["nick-period"] > 0:
            raise usage.UsageError("--nick-period must be more than 0")
        if not self["join-rate"] >= 0:
            raise usage.UsageError("--join-rate must be 0 (no limit) or more")
        if self["join-burst"] < 1:
            raise usage.UsageError("--join-burst must be at least 1")
        if self["max-clients"] < 1:
            raise usage.UsageError("--max-clients must be at least 1")
        if self["max-per-ip"] < 0:
            raise usage.UsageError("--max-per-ip must be 0 (no limit) or more")
        if self["read-budget"] < wire.PREFIX.size + self["max-frame"]:
            raise usage.UsageError(
                "--read-budget (%d) must hold at least one frame (--max-frame %d, and "
                "its 4-byte length); raise --read-budget or lower --max-frame"
                % (self["read-budget"], self["max-frame"]))
        if self["frame-timeout"] is None:
            self["frame-timeout"] = min(DEFAULT_FRAME_TIMEOUT, timeout)
        elif not 0 < self["frame-timeout"] <= timeout:
            raise usage.UsageError(
                "--frame-timeout (%g) must be more than 0 and at most --timeout (%g)"
                % (self["frame-timeout"], timeout))
        if self["presence-limit"] < 0:
            raise usage.UsageError("--presence-limit must be 0 or more")
        if self["max-rooms-per-client"] < 1:
            raise usage.UsageError("--max-rooms-per-client must be at least 1")
        if self["max-rooms"] < 1:
            raise usage.UsageError("--max-rooms must be at least 1")
        if self["log-rate"] < 0:
            raise usage.UsageError("--log-rate must be 0 or more")
        if not self["shutdown-grace"] >= 0:
            raise usage.UsageError("--shutdown-grace must be 0 or more")
        if self["node-timeout"] is None:
            self["node-timeout"] = timeout
        elif not self["node-timeout"] > 0:
            raise usage.UsageError("--node-timeout must be more than 0")
        if self["metrics"] is not None:
            _require("--metrics", "metrics", "prometheus_client")
        if self["redis"] is not None:
            _require("--redis", "cluster", "txredisapi", "hiredis")

    def _frame_limits(self):
        """
        The frame and send-queue options, completed by L{frame_limits}.
        """
        try:
            values = frame_limits(*(self[name] for name in _FRAME_LIMITS))
        except LimitsError as e:
            raise usage.UsageError(str(e)) from None
        return dict(zip(_FRAME_LIMITS, values))

    def settings(self):
        """
        The L{ServerSettings} these options describe.
        """
        # Every setting is the option of the same name, with dashes; flags
        # count (0 or 1) where a setting is a bool.
        values = {}
        # Completed again (limits that fit are kept), so that an Options
        # never parsed describes the defaults too.
        limits = self._frame_limits()
        for field in dataclasses.fields(ServerSettings):
            name = field.name.replace("_", "-")
            value = limits[name] if name in limits else self[name]
            values[field.name] = bool(value) if field.type in (bool, "bool") else value
        if values["frame_timeout"] is None:
            values["frame_timeout"] = min(DEFAULT_FRAME_TIMEOUT, values["timeout"])
        return ServerSettings(**values)


class ChatService(MultiService):
    """
    The chat server as a service: it stops listening, then closes every
    connection gracefully, and only then reports itself stopped.  A second
    SIGTERM or SIGINT during that stop aborts the connections at once.
    """

    log = Logger()

    def __init__(
        self,
        factory,
        shutdown_message=DEFAULT_SHUTDOWN_MESSAGE,
        grace=DEFAULT_SHUTDOWN_GRACE,
        reactor=None,
        store_service=None,
    ):
        """
        @param reactor: the reactor to hand a second signal to; with
            L{None}, signals are left alone (as tests want).
        @param store_service: a service the room's store needs (a cluster
            node's Redis connections): started first, stopped after every
            client.
        """
        super().__init__()
        self.factory = factory
        self.store_service = store_service
        self.shutdown_message = shutdown_message
        self.grace = grace
        self.reactor = reactor

    def privilegedStartService(self):
        """
        Start listening; a port that cannot be had ends the program with
        one line instead of a traceback.  (Twisted API.)
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit("twisted-chat: %s" % (e,)) from None

    def startService(self):
        """
        Start the store's service, if any, then listen.  (Twisted API.)
        """
        if self.store_service is not None:
            self.store_service.startService()
        super().startService()

    def stopService(self):
        """
        Stop listening, send C{shutdown} to every client and wait until all
        connections are closed; then stop the store's service.  (Twisted API.)
        """
        self._catch_second_signal()
        d = defer.maybeDeferred(super().stopService)
        d.addCallback(
            lambda _: self.factory.shutdown(self.shutdown_message, self.grace)
        )
        if self.store_service is not None:
            d.addCallback(lambda _: self.store_service.stopService())
        return d

    def _catch_second_signal(self):
        """
        From now on, SIGTERM and SIGINT end the graceful stop at once.
        """
        if self.reactor is None or threading.current_thread() is not threading.main_thread():
            return

        def now(signum, frame):
            self.reactor.callFromThread(self._stop_now, signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, now)

    def _stop_now(self, signum):
        self.log.info(
            "signal {signum} during shutdown: closing all connections now",
            signum=signum,
        )
        self.factory.abort_all()


def makeService(options, reactor=None):
    """
    Build the chat service from parsed L{Options}.  (twistd API.)
    """
    signals = reactor is None
    if reactor is None:
        from twisted.internet import reactor
    settings = options.settings()
    store = None
    if options["redis"] is not None:
        from twisted_chat.cluster import RedisStore

        store = RedisStore(reactor, options["redis"], node_timeout=options["node-timeout"])
    portal = None
    if options["auth-file"] is not None:
        from twisted_chat.accounts import portal as make_portal

        portal = make_portal(options["auth-file"])
    factory = ChatServerFactory(
        clock=reactor, coalesce=True, store=store, portal=portal, **vars(settings)
    )
    service = ChatService(
        factory,
        grace=options["shutdown-grace"],
        reactor=reactor if signals else None,
        store_service=None if store is None else store.service(),
    )
    strports.service(options["port"], factory, reactor=reactor).setServiceParent(
        service
    )
    if options["metrics"] is not None:
        from twisted_chat.metrics import metrics_site

        strports.service(
            options["metrics"], metrics_site(factory.stats), reactor=reactor
        ).setServiceParent(service)
    return service
