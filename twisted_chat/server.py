# -*- test-case-name: tests.test_server -*-
"""
The chat server's protocol and factory.

Each connection is a L{ChatServerProtocol}: it frames with
L{Int32StringReceiver}, turns frames into dicts, dispatches them to the
L{ChatHub}, and keeps a L{TimeoutMixin} expiry timer on the factory's clock
that every received frame resets.  A connection that stays silent for
C{timeout} seconds is aborted and the room is told it left with reason
C{timeout}.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from twisted_chat import wire
from twisted_chat.hub import ChatHub, IChatClient

#: Seconds a graceful shutdown waits for connections to flush and close
#: before it aborts the rest (a dead peer never acknowledges a FIN).
DEFAULT_SHUTDOWN_GRACE = 2.0
DEFAULT_SHUTDOWN_MESSAGE = "server is shutting down"
#: How the log says a connection ended in a shutdown; the room is closing,
#: so no leave event carries it.
_SHUTDOWN = "shutdown"

#: Bytes of a who frame that are not names: {"type":"who","names":[],...}.
_WHO_OVERHEAD = 64
#: How much of an unknown type is quoted back in the error message.
_QUOTE_MAX = 40


def format_peer(address):
    """
    Render a transport address for the log: C{host:port}, C{[v6]:port}, or
    whatever else the address has to say for itself.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def paginate_names(names, max_frame):
    """
    Split C{names} into lists whose who frames each fit in C{max_frame}.

    @return: a non-empty list of lists of names.
    """
    budget = max_frame - _WHO_OVERHEAD
    pages, page, size = [], [], 0
    for name in names:
        cost = len(name) + 3  # the quotes and a comma
        if page and size + cost > budget:
            pages.append(page)
            page, size = [], 0
        page.append(name)
        size += cost
    pages.append(page)
    return pages


@implementer(IChatClient)
class ChatServerProtocol(Int32StringReceiver, TimeoutMixin):
    """
    One client connection.

    @ivar name: the client's name in the room.
    @ivar peer: the client's address, as the log shows it.
    """

    log = Logger()
    name = None
    peer = None
    # How the connection is ending, once we know better than connectionLost's
    # reason can tell (quit, timeout, error); None while it is running.
    _leave_reason = None
    _leave_message = None
    # Once set, incoming data is ignored: we are closing the connection.
    _closing = False

    def connectionMade(self):
        """
        Greet the client and tell the room it joined.  (Twisted API.)
        """
        factory = self.factory
        hub = factory.hub
        self.MAX_LENGTH = factory.max_frame
        self.callLater = factory.clock.callLater
        self.peer = format_peer(self.transport.getPeer())
        factory.connection_made(self)
        self.setTimeout(factory.timeout)
        self.name = hub.new_guest_name()
        self.send(
            "welcome",
            protocol=wire.PROTOCOL_VERSION,
            name=self.name,
            heartbeat_interval=factory.heartbeat_interval,
            timeout=factory.timeout,
            max_frame=factory.max_frame,
            max_text=factory.max_text,
            seq=hub.seq,
        )
        hub.join(self)
        self.log.info("{name} connected from {peer}", name=self.name, peer=self.peer)

    def dataReceived(self, data):
        """
        Ignore whatever arrives once the connection is closing.  (Twisted API.)
        """
        if not self._closing:
            Int32StringReceiver.dataReceived(self, data)

    # Client-to-server messages, each handled by handle_<type>:
    #
    #   heartbeat {ts?}       -> heartbeat_ack {ts?, now} to the sender
    #   message   {text}      -> message {seq, from, text, time} to everyone
    #   nick      {name}      -> nick {seq, old, new} to everyone
    #   who       {}          -> who {names} to the sender
    #   quit      {message?}  -> the server closes the connection; leave "quit"
    #
    # A ProtocolError from a handler becomes an error frame for the sender.
    _HANDLED = frozenset(["heartbeat", "message", "nick", "who", "quit"])

    def stringReceived(self, payload):
        """
        Handle one frame: any frame at all proves the peer alive.
        (Twisted API.)
        """
        if self._closing:
            return
        self.resetTimeout()
        try:
            message = wire.decode(payload)
            kind = message["type"]
            if kind not in self._HANDLED:
                raise wire.ProtocolError(
                    wire.UNKNOWN_TYPE,
                    "unknown message type %r" % (kind[:_QUOTE_MAX],),
                )
            getattr(self, "handle_" + kind)(message)
        except wire.ProtocolError as e:
            self.send_error(e.code, e.message)

    def handle_heartbeat(self, message):
        """
        Answer a heartbeat, echoing its C{ts}.
        """
        ts = wire.check_optional_number(message, "ts")
        if ts is None:
            self.send("heartbeat_ack", now=self.factory.clock.seconds())
        else:
            self.send("heartbeat_ack", ts=ts, now=self.factory.clock.seconds())
        if self.factory.verbose:
            self.log.info("heartbeat from {name} ({peer})", name=self.name, peer=self.peer)

    def handle_message(self, message):
        """
        Broadcast a chat message.
        """
        text = wire.check_text(message.get("text"), self.factory.max_text)
        self.log.info("{name}: {text}", name=self.name, text=wire.sanitize(text))
        self.factory.hub.message(self, text)

    def handle_nick(self, message):
        """
        Rename the client.
        """
        old = self.name
        self.factory.hub.rename(self, message.get("name"))
        self.log.info(
            "{old} ({peer}) is now {name}", old=old, name=self.name, peer=self.peer
        )

    def handle_who(self, message):
        """
        List the room, in as many frames as max_frame requires.
        """
        pages = paginate_names(self.factory.hub.names(), self.factory.max_frame)
        for page in pages[:-1]:
            self.send("who", names=page, more=True)
        self.send("who", names=pages[-1])

    def handle_quit(self, message):
        """
        Close the connection at the client's request.
        """
        text = message.get("message")
        try:
            self._leave_message = wire.check_text(text, self.factory.max_text)
        except wire.ProtocolError:
            self._leave_message = None  # a bad farewell does not stop a quit
        self._close(wire.REASON_QUIT)

    def lengthLimitExceeded(self, length):
        """
        Refuse a frame longer than max_frame and close.  (Twisted API.)
        """
        self.send_error(
            wire.FRAME_TOO_LARGE,
            "frame of %d bytes exceeds max_frame %d" % (length, self.MAX_LENGTH),
        )
        self._close(wire.REASON_ERROR)

    def timeoutConnection(self):
        """
        The peer has been silent for C{timeout} seconds: it is gone.
        (Twisted API.)
        """
        self.log.info(
            "{name} ({peer}) expired after {timeout} s without a frame",
            name=self.name,
            peer=self.peer,
            timeout=self.timeOut,
        )
        self.abort(wire.REASON_TIMEOUT)

    def connectionLost(self, reason):
        """
        Cancel the timer and tell the room why the client left.
        (Twisted API.)
        """
        self.setTimeout(None)
        leave_reason = self._leave_reason
        if leave_reason is None:
            leave_reason = (
                wire.REASON_EOF if reason.check(ConnectionDone) else wire.REASON_RESET
            )
        self.log.info(
            "{name} ({peer}) left: {reason}",
            name=self.name,
            peer=self.peer,
            reason=leave_reason,
        )
        self.factory.hub.leave(self, leave_reason, self._leave_message)
        self.factory.connection_lost(self)

    def send(self, type, **fields):
        """
        Send one message to this client only.
        """
        fields["type"] = type
        self.transport.write(wire.encode_frame(fields))

    def send_error(self, code, message):
        """
        Send an error frame to this client.
        """
        self.send("error", code=code, message=message)

    def send_frame(self, data):
        """
        Write frame bytes prepared by the hub.  (L{IChatClient}.)
        """
        self.transport.write(data)

    def abort(self, reason):
        """
        Drop the connection at once.  (L{IChatClient}.)
        """
        if self._leave_reason is None:
            self._leave_reason = reason
        self._closing = True
        self.transport.abortConnection()

    def _close(self, reason):
        """
        Close after the queued frames are written; ignore further input.
        """
        if self._leave_reason is None:
            self._leave_reason = reason
        self._closing = True
        self.transport.loseConnection()


class ChatServerFactory(Factory):
    """
    The server's shared state: settings, the room, the open connections.

    @ivar clock: the L{IReactorTime} every protocol times itself with.
    @ivar connections: every open L{ChatServerProtocol}.
    """

    protocol = ChatServerProtocol
    log = Logger()

    def __init__(
        self,
        clock=None,
        heartbeat_interval=wire.DEFAULT_HEARTBEAT_INTERVAL,
        timeout=wire.DEFAULT_TIMEOUT,
        max_frame=wire.DEFAULT_MAX_FRAME,
        max_text=wire.DEFAULT_MAX_TEXT,
        verbose=False,
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.timeout = timeout
        self.max_frame = max_frame
        self.max_text = max_text
        self.verbose = verbose
        self.hub = ChatHub(clock)
        self.connections = set()
        self._drained = []
        self._abort_call = None

    def connection_made(self, protocol):
        """
        Track a new connection.
        """
        self.connections.add(protocol)

    def connection_lost(self, protocol):
        """
        Forget a connection; fire L{shutdown}'s Deferreds once none is left.
        """
        self.connections.discard(protocol)
        if not self.connections and self._drained:
            if self._abort_call is not None and self._abort_call.active():
                self._abort_call.cancel()
            self._abort_call = None
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def shutdown(self, message=DEFAULT_SHUTDOWN_MESSAGE, grace=DEFAULT_SHUTDOWN_GRACE):
        """
        Send every client C{shutdown} and close all connections.

        Queued frames get C{grace} seconds to flush; connections still open
        after that are aborted.

        @return: a Deferred that fires when every connection has closed.
        """
        if not self.connections:
            return defer.succeed(None)
        self.log.info(
            "shutting down: closing {count} connections", count=len(self.connections)
        )
        d = defer.Deferred()
        self._drained.append(d)
        self.hub.close(message)
        for protocol in list(self.connections):
            protocol._close(_SHUTDOWN)
        if self._abort_call is None and self.connections:
            self._abort_call = self.clock.callLater(grace, self._abort_all)
        return d

    def _abort_all(self):
        """
        Abort the connections that did not close within the grace period.
        """
        self._abort_call = None
        self.log.info(
            "aborting {count} connections that did not close in time",
            count=len(self.connections),
        )
        for protocol in list(self.connections):
            protocol.abort(_SHUTDOWN)
