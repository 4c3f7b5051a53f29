# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin's options and service: C{twistd -n chat --port 56562}.
"""

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger
from twisted.python import usage

from twisted_chat import wire
from twisted_chat.server import (
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_MESSAGE,
    ChatServerFactory,
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
        value = "tcp:" + value
    try:
        serverFromString(MemoryReactor(), value)
    except Exception as e:
        raise ValueError("%r is not a server endpoint: %s" % (value, e)) from None
    return value


endpoint_description.coerceDoc = (
    "A port number, or a Twisted server endpoint such as "
    "tcp:56562:interface=127.0.0.1."
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
            "tcp:%d" % (wire.DEFAULT_PORT,),
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
            wire.DEFAULT_MAX_FRAME,
            "Largest frame payload in bytes, in either direction.",
            _int,
        ],
        [
            "max-text",
            None,
            wire.DEFAULT_MAX_TEXT,
            "Longest chat message, in characters.",
            _int,
        ],
    ]

    optFlags = [
        ["verbose", "v", "Log every heartbeat too."],
    ]

    def postOptions(self):
        """
        Check that the options make sense together.  (Twisted API.)
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
        max_frame = self["max-frame"]
        if not wire.MIN_FRAME_LIMIT <= max_frame <= wire.MAX_FRAME_LIMIT:
            raise usage.UsageError(
                "--max-frame must be between %d and %d"
                % (wire.MIN_FRAME_LIMIT, wire.MAX_FRAME_LIMIT)
            )
        max_text = self["max-text"]
        if max_text < 1:
            raise usage.UsageError("--max-text must be at least 1")
        if wire.max_frame_for_text(max_text) > max_frame:
            raise usage.UsageError(
                "--max-text %d needs --max-frame of at least %d"
                % (max_text, wire.max_frame_for_text(max_text))
            )


class ChatService(MultiService):
    """
    The chat server as a service: it stops listening, then closes every
    connection gracefully, and only then reports itself stopped.
    """

    log = Logger()

    def __init__(
        self, factory, shutdown_message=DEFAULT_SHUTDOWN_MESSAGE, grace=DEFAULT_SHUTDOWN_GRACE
    ):
        super().__init__()
        self.factory = factory
        self.shutdown_message = shutdown_message
        self.grace = grace

    def privilegedStartService(self):
        """
        Start listening; a port that cannot be had ends the program with
        one line instead of a traceback.  (Twisted API.)
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit("twisted-chat: %s" % (e,)) from None

    def stopService(self):
        """
        Stop listening, send C{shutdown} to every client and wait until all
        connections are closed.  (Twisted API.)
        """
        d = defer.maybeDeferred(super().stopService)
        d.addCallback(
            lambda _: self.factory.shutdown(self.shutdown_message, self.grace)
        )
        return d


def makeService(options, reactor=None):
    """
    Build the chat service from parsed L{Options}.  (twistd API.)
    """
    if reactor is None:
        from twisted.internet import reactor
    factory = ChatServerFactory(
        clock=reactor,
        heartbeat_interval=options["heartbeat-interval"],
        timeout=options["timeout"],
        max_frame=options["max-frame"],
        max_text=options["max-text"],
        verbose=options["verbose"],
    )
    service = ChatService(factory)
    strports.service(options["port"], factory, reactor=reactor).setServiceParent(
        service
    )
    return service
