# -*- test-case-name: tests.unit.test_server -*-
"""
The chat server's protocol and factory.

Each connection is a L{ChatServerProtocol}: it frames with
L{Int32StringReceiver}, turns frames into dicts, dispatches them to the
L{Room}, and keeps a L{TimeoutMixin} expiry timer on the factory's clock
that every received frame resets.  A connection that stays silent for
C{timeout} seconds is aborted and the room is told it left with reason
C{timeout}.

No client can hurt the others: what the server holds for a client that does
not read is bounded (L{SendQueue}), frames and messages are rate-limited
(L{TokenBucket}), the number of connections is capped, and so is what the
server holds of frames still arriving: each must be complete within
C{frame_timeout} seconds of its first byte, and all together fit in the
factory's L{ReadBudget}.
"""

import secrets
from random import Random

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from twisted_chat import accounts, heap, wire
from twisted_chat.admission import Admission
from twisted_chat._timers import cancelled
from twisted_chat.room import IChatClient
from twisted_chat.room.rooms import Rooms
from twisted_chat.logs import LineBudget
from twisted_chat.ratelimit import TokenBucket
from twisted_chat.lifecycle import CLOSING, JOINED, LOGIN, NEW, PENDING, RESUMING, move
from twisted_chat.net import format_peer, no_delay
from twisted_chat.outbox import Outbox
from twisted_chat.readbudget import ReadBudget
from twisted_chat.settings import (
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_MESSAGE,
    FLOOD_FACTOR,
    FRAME_RATE_FACTOR,
    JOIN_HOLD,
    RECONNECT_AFTER,
    TRIM_DELAY,
    ServerSettings,
)

#: How the log says a connection ended in a shutdown; the room is closing,
#: so no leave event carries it.
_SHUTDOWN = "shutdown"

#: Frames at least this long are gathered piece by piece while they arrive.
_GATHER_FROM = 4096

#: Bytes of a who frame that are not names: {"type":"who","names":[],...}.
_WHO_OVERHEAD = 64
#: How much of an unknown type is quoted back in the error message.
_QUOTE_MAX = 40
#: Round trips a heartbeat may report (seconds); longer ones are nonsense.
_RTT_MAX = 3600


def paginate(items, max_frame, reserved=0, cost=lambda name: len(name) + 3):
    """
    Split C{items} into lists whose frames (C{who}, C{rooms}) each fit in
    C{max_frame}.

    @param reserved: bytes the frames need for other members (an echoed
        C{id}, a room's name and operators).
    @param cost: the bytes an item takes in the frame's list (by default a
        name's: its quotes and a comma).
    @return: a non-empty list of lists of items.
    """
    budget = max_frame - _WHO_OVERHEAD - reserved
    pages, page, size = [], [], 0
    for item in items:
        taken = cost(item)
        if page and size + taken > budget:
            pages.append(page)
            page, size = [], 0
        page.append(item)
        size += taken
    pages.append(page)
    return pages


def paginate_names(names, max_frame, reserved=0):
    """
    Split C{names} into lists whose who frames each fit in C{max_frame};
    see L{paginate}.
    """
    return paginate(names, max_frame, reserved)


def _id_field(request_id):
    """
    The members a direct reply adds to echo a request's C{id}: none if it
    had none.
    """
    return {} if request_id is None else {"id": request_id}


def _echoable_id(message):
    """
    The C{id} of a decoded frame that is being refused, if it is one that
    can be echoed.
    """
    if message is None:
        return None
    try:
        return wire.check_request_id(message)
    except wire.ProtocolError:
        return None


def _peek_id(payload):
    """
    The C{id} of a frame not otherwise decoded (it is being refused), if it
    has a valid one.
    """
    try:
        return _echoable_id(wire.decode(payload))
    except wire.ProtocolError:
        return None


def _check_resume_rooms(message):
    """
    The C{rooms} of a resume message: the last seq seen in each room, by
    room name in lower case (none without one).

    @raise wire.ProtocolError: L{wire.BAD_FRAME} if it is malformed.
    """
    rooms = message.get("rooms", {})
    if not isinstance(rooms, dict):
        raise wire.ProtocolError(wire.BAD_FRAME, '"rooms" must map room names to seqs')
    wanted = {}
    for name, seq in rooms.items():
        if not wire.is_whole(seq) or seq < 0:
            raise wire.ProtocolError(
                wire.BAD_FRAME, '"rooms" must map room names to whole numbers, 0 or more')
        wanted[name.lower()] = seq
    return wanted


def _check_last_dseq(message):
    """
    The C{last_dseq} of a resume message, L{None} without one.

    @raise wire.ProtocolError: L{wire.BAD_FRAME} if it is malformed.
    """
    last_dseq = message.get("last_dseq")
    if last_dseq is not None and (not wire.is_whole(last_dseq) or last_dseq < 0):
        raise wire.ProtocolError(
            wire.BAD_FRAME, '"last_dseq" must be a whole number, 0 or more')
    return last_dseq


def _check_resume(message):
    """
    The session and last_seq of a resume message.

    @raise wire.ProtocolError: L{wire.BAD_FRAME} if either is malformed.
    """
    token = message.get("session")
    last_seq = message.get("last_seq")
    if not isinstance(token, str) or not 0 < len(token) <= wire.SESSION_MAX:
        raise wire.ProtocolError(wire.BAD_FRAME, '"session" must be a session token')
    if not wire.is_whole(last_seq) or last_seq < 0:
        raise wire.ProtocolError(
            wire.BAD_FRAME, '"last_seq" must be a whole number, 0 or more'
        )
    return token, last_seq


@implementer(IChatClient)
class ChatServerProtocol(Int32StringReceiver, TimeoutMixin):
    """
    One client connection.

    The protocol frames, and dispatches each frame to its C{handle_<type>};
    the connection's life (pending, login, resuming, joined, closing) is
    its C{state} (L{twisted_chat.lifecycle} draws it), what it sends
    goes through its L{Outbox}, and who may connect is the factory's
    L{Admission}.

    @ivar name: the client's name in the room.
    @ivar peer: the client's address, as the log shows it.
    @ivar session: the client's session token.
    @ivar state: where the connection is in its life: a
        L{twisted_chat.lifecycle} state.
    @ivar outbox: the L{Outbox} of what it is sent.
    """

    log = Logger()
    name = None
    peer = None
    session = None
    outbox = None
    state = NEW
    # Whether the factory let this connection in (see ChatServerFactory.admit).
    _admitted = False
    # How the connection is ending, once we know better than connectionLost's
    # reason can tell (quit, timeout, error, ...); None while it is running.
    _leave_reason = None
    _leave_message = None
    _welcome_seq = 0
    _join_call = None
    # Whether dataReceived is framing (see _resume_reading).
    _in_read = False
    # Frames refused by flood control since the last one accepted.
    _rejected = 0
    # The address this connection counts against in --max-per-ip.
    counted_host = None
    # What IntNStringReceiver has not framed yet (its own default too; set
    # here so that reading it stays cheap whatever Twisted does).
    _unprocessed = b""
    # The pieces of an incomplete large frame, their total length, and the
    # length at which the frame is whole (see _gather_large_frame).
    _gathering = None
    _gathered = 0
    _frame_end = 0
    # The bytes of unfinished frames this connection holds, as the
    # factory's ReadBudget last counted them; the timer of --frame-timeout
    # while a frame is unfinished, and when that frame began (see
    # _account_read).
    _held = 0
    _frame_call = None
    _frame_started = 0.0
    # With accounts: whether a login check is running.
    _logging_in = False
    # The buckets of name changes and room joins, made at the first one (a
    # quiet connection keeps neither).
    _nicks = None
    _joins = None
    # When the last whole frame arrived (for the expiry metric).
    _last_frame = 0.0

    def connectionMade(self):
        """
        Greet the client, unless the server cannot take it.  (Twisted API.)
        """
        factory = self.factory
        settings = factory.settings
        clock = factory.clock
        room = factory.room
        self.callLater = clock.callLater
        self.peer = format_peer(self.transport.getPeer())
        refusal = factory.admit(self)
        if refusal is not None:
            self.state = move(self.state, CLOSING)
            factory.stats.errors[refusal.code] += 1
            # Not yet named: "-", so that every client line reads the same.
            self.log.info(
                "{name} ({peer}) refused: {reason}",
                name="-", peer=self.peer, reason=refusal.message,
            )
            self.transport.write(
                wire.encode_frame(
                    {"type": "error", "code": refusal.code, "message": refusal.message}
                )
            )
            self.transport.loseConnection()
            return
        self._admitted = True
        self._last_frame = clock.seconds()
        self.MAX_LENGTH = settings.max_frame
        no_delay(self.transport)
        self.outbox = Outbox(self, self.transport, settings, factory.stats, clock)
        self.setTimeout(settings.timeout)
        self._messages = TokenBucket(settings.rate, settings.burst, clock)
        self._frames = TokenBucket(
            settings.rate * FRAME_RATE_FACTOR,
            settings.burst * FRAME_RATE_FACTOR,
            clock,
        )
        self.name = room.new_guest_name()
        self.session = factory.new_session_token()
        # Every event from here on is kept for this connection until it
        # joins or resumes, whatever --backlog is.
        self._welcome_seq = room.expect(self)
        self.send(
            "welcome",
            protocol=wire.PROTOCOL_VERSION,
            name=self.name,
            heartbeat_interval=settings.heartbeat_interval,
            timeout=settings.timeout,
            max_frame=settings.max_frame,
            max_text=settings.max_text,
            seq=self._welcome_seq,
            session=self.session,
            backlog=settings.backlog,
            sendq=settings.sendq,
            rate={"burst": settings.burst, "per_second": settings.rate},
            presence=room.room_size < settings.presence_limit,
            resume_window=factory.join_hold,
            dseq=0,
            **({} if factory.portal is None else {"login": True}),
        )
        if factory.portal is None:
            self.state = move(self.state, PENDING)
            self._join_call = clock.callLater(factory.join_hold, self._join)
        else:
            self.state = move(self.state, LOGIN)
        self._log_routine("connected", "connected")

    def _log_routine(self, kind, event_format, **fields):
        """
        Log a routine line, within the factory's L{LineBudget} (or always,
        with C{verbose}).
        """
        factory = self.factory
        if factory.settings.verbose or factory.line_budget.allow(kind):
            self._log(event_format, **fields)

    def _log(self, event_format, **fields):
        """
        Log an event about this client; every such line names it the same
        way: C{name (address)}.
        """
        self.log.info(
            "{name} ({peer}) " + event_format, name=self.name, peer=self.peer, **fields
        )

    def dataReceived(self, data):
        """
        Frame what arrives, gathering the pieces of a large frame first;
        ignore everything once the connection is closing.  (Twisted API.)
        """
        if self.state is CLOSING:
            return
        if self._gathering is not None:
            self._gathering.append(data)
            self._gathered += len(data)
            if self._gathered < self._frame_end:
                self._account_read()
                return
            data = b"".join(self._gathering)
            self._gathering = None
        self._in_read = True
        try:
            with self.factory.room.batch():
                Int32StringReceiver.dataReceived(self, data)
        finally:
            self._in_read = False
        # Whole frames only, nothing held before or after: nothing to do.
        if self._unprocessed or self._held:
            self._after_read()

    def _after_read(self):
        """
        A read left bytes of an unfinished frame, or finished one that was
        held: gather a large frame's pieces, and account for what is held.
        """
        if self.state is CLOSING:
            # (Closed while framing: what came after is ignored.)
            self._drop_unfinished()
            return
        self._gather_large_frame()
        self._account_read()

    def _account_read(self):
        """
        Count the bytes of unfinished frames this connection holds against
        the server's L{ReadBudget} (dropping those it names), and time the
        frame they belong to: it must be complete within C{frame_timeout}
        seconds of its first byte, whatever arrives meanwhile.
        """
        held = len(self._unprocessed)
        if self._gathering is not None:
            held += self._gathered
        self._held = held
        factory = self.factory
        shed = factory.read_budget.hold(self, held)
        if held and not self.paused:
            call = self._frame_call
            if call is None:
                self._frame_started = factory.clock.seconds()
                self._frame_call = factory.clock.callLater(
                    factory.frame_timeout, self._frame_expired)
            elif self._last_frame > self._frame_started:
                # The frame it timed is complete: what is held now began
                # after it.
                self._frame_started = factory.clock.seconds()
                call.reset(factory.frame_timeout)
        else:
            # (A paused connection holds frames it has not looked at yet,
            # waiting for an answer: they are timed once it reads again.)
            self._frame_call = cancelled(self._frame_call)
        if shed:
            factory.shed(shed)

    def _frame_expired(self):
        """
        A frame begun C{frame_timeout} seconds ago is not complete: drop
        the connection, telling it why.
        """
        self._frame_call = None
        timeout = self.factory.frame_timeout
        self._log_routine(
            "dropped: frame timeout",
            "dropped: a frame begun {timeout} s ago is not complete ({held} bytes held)",
            timeout=timeout, held=self._held)
        self.drop_unfinished(wire.ProtocolError(
            wire.FRAME_TIMEOUT, "a frame must be complete within %g s of its first byte" % (
                timeout,)))

    def drop_unfinished(self, error):
        """
        Drop the connection for the frame it has not finished: free what it
        holds of it at once, and send C{error} as its last frame (unless
        frames already wait for it: it does not read, and is aborted).
        """
        if self.state is CLOSING:
            return
        self._drop_unfinished()
        self.send_error(error)
        if self.outbox.queue.size:
            self.abort(wire.REASON_ERROR)
        else:
            self.close(wire.REASON_ERROR)

    def _drop_unfinished(self):
        """
        Forget the unfinished frame: its bytes, its budget, its timer.
        """
        self._unprocessed = b""
        self._gathering = None
        self._frame_call = cancelled(self._frame_call)
        if self._held:
            self._held = 0
            self.factory.read_budget.release(self)

    def _gather_large_frame(self):
        """
        If an incomplete large frame is waiting, collect its pieces in a
        list until it is whole.

        L{IntNStringReceiver} adds each read to everything buffered before
        it, so a frame of N bytes arriving a byte at a time costs it N**2/2
        bytes of copying: a client trickling 64 KiB frames would cost the
        server a fraction of a second each.  This reads the receiver's
        buffer, C{_unprocessed}, which is private to Twisted but has been
        stable for many releases; tests/system/test_canary.py fails loudly if a
        Twisted release changes it.
        """
        waiting = getattr(self, "_unprocessed", None)
        if (not isinstance(waiting, bytes) or len(waiting) < wire.PREFIX.size
                or self.state is CLOSING):
            # (A Twisted without that buffer just does its own framing.)
            return
        (length,) = wire.PREFIX.unpack_from(waiting)
        end = wire.PREFIX.size + length
        if length < _GATHER_FROM or length > self.MAX_LENGTH or len(waiting) >= end:
            return
        self._unprocessed = b""
        self._gathering = [waiting]
        self._gathered = len(waiting)
        self._frame_end = end

    # Client-to-server messages, each handled by handle_<type>:
    #
    #   heartbeat {ts?}                -> heartbeat_ack {ts?, now} to the sender
    #   message   {text}               -> message {seq, from, text, time} to all
    #   nick      {name}               -> nick {seq, old, new} to everyone
    #   who       {}                   -> who {names, more?} to the sender
    #   quit      {message?}           -> the server closes; leave "quit"
    #   resume    {session, last_seq}  -> replayed events, then resumed
    #                                     {replayed, name} to the sender
    #   login     {name, password}     -> logged_in {name} (with accounts)
    #
    # A ProtocolError from a handler becomes an error frame for the sender.
    # Any frame may carry an "id", which its direct reply or error echoes.
    _HANDLED = frozenset([
        "heartbeat", "message", "nick", "who", "quit", "resume", "login",
        "join", "part", "rooms", "topic", "kick", "ban", "unban", "op",
    ])

    def stringReceived(self, payload):
        """
        Handle one frame: any frame at all proves the peer alive.
        (Twisted API.)
        """
        state = self.state
        if state is CLOSING:
            return
        self.resetTimeout()
        stats = self.factory.stats
        stats.frames_in += 1
        stats.bytes_in += len(payload) + 4
        self._last_frame = self.factory.clock.seconds()
        if not self._admit_frame(self._frames, payload):
            return
        message = None
        try:
            message = wire.decode(payload)
            request_id = wire.check_request_id(message)
            kind = message["type"]
            if kind not in self._HANDLED:
                raise wire.ProtocolError(
                    wire.UNKNOWN_TYPE,
                    "unknown message type %r" % (kind[:_QUOTE_MAX],),
                )
        except wire.ProtocolError as e:
            self._join()
            self.send_error(e, _echoable_id(message))
            return
        if state is LOGIN:
            self._before_login(kind, message, request_id)
            return
        if state is PENDING:
            if kind == "resume":
                self._resume_first(message, request_id)
                return
            self._enter_room()
        if kind == "message" and not self._admit_frame(self._messages, request_id=request_id):
            return
        self._rejected = 0
        try:
            getattr(self, "handle_" + kind)(message, request_id)
        except wire.ProtocolError as e:
            self.send_error(e, request_id)

    def _admit_frame(self, bucket, payload=None, request_id=None):
        """
        Take a token from C{bucket}; refuse the frame if there is none, and
        drop a client that keeps flooding, telling it why.

        @param payload: the frame, not yet decoded, if its C{id} (for the
            refusal to echo) must be read from it.
        """
        delay = bucket.take()
        if not delay:
            return True
        self.factory.stats.rate_limited += 1
        self._rejected += 1
        if payload is not None:
            request_id = _peek_id(payload)
        limit = FLOOD_FACTOR * self.factory.settings.burst
        if self._rejected >= limit:
            self._log("dropped for flooding")
            self._drop_flooder(limit, request_id)
        else:
            self.send_error(
                wire.ProtocolError(
                    wire.RATE_LIMITED,
                    "too fast, slow down",
                    retry_after=round(delay, 3),
                ),
                request_id,
            )
        return False

    def _drop_flooder(self, refused, request_id):
        """
        Drop a client that kept sending after C{refused} refusals in a row:
        its last frame says why, after what it was sent, unless frames
        already wait in its send queue (its connection stopped taking
        them); then the connection is aborted at once, for a flooder that
        does not read must not cost more.
        """
        self.send_error(
            wire.ProtocolError(
                wire.FLOODING,
                "dropped for flooding: %d frames in a row were refused" % (refused,),
            ),
            request_id,
        )
        if self.outbox.queue.size:
            self.abort(wire.REASON_FLOOD)
        else:
            self.close(wire.REASON_FLOOD)

    def _join(self):
        """
        End the pending state, if the connection is in it: the client joins
        the room (with accounts it must log in first; a resume waits for its
        answer).
        """
        if self.state is PENDING:
            self._enter_room()

    def _enter_room(self):
        """
        Join the room as the session the welcome announced.
        """
        self.state = move(self.state, JOINED)
        self._join_call = cancelled(self._join_call)
        self.factory.rooms.enter_lobby(self, self._welcome_seq).addErrback(self._not_entered)

    def _not_entered(self, failure):
        """
        The store refused the client's name (with accounts, the account is
        logged in on another node of a cluster): it is told, and closed.
        """
        self._refused(failure)
        if failure.check(wire.ProtocolError) and failure.value.code == wire.NICK_TAKEN:
            self.close(wire.REASON_ERROR)

    def _read_after(self, d):
        """
        What later frames do depends on the answer C{d} brings (the name a
        resume or a rename gives): if it has not come yet (a store that asks
        Redis), read nothing more until it has.  Frames that arrive
        meanwhile wait, in order, in the receiver's buffer and the kernel.
        """
        if d.called:
            return
        self.pauseProducing()
        d.addBoth(self._go_on_reading)

    def _go_on_reading(self, result):
        """
        Go on reading, and handle the frames that waited.
        """
        if self.state is not CLOSING:
            self.paused = False
            self.transport.resumeProducing()
            if not self._in_read:
                # (Inside dataReceived, its loop goes on by itself.)
                self.dataReceived(b"")
        return result


    # Accounts (--auth-file).

    def _before_login(self, kind, message, request_id):
        """
        With accounts, a connection must log in (or resume a session that
        did) before anything else.
        """
        if kind == "login":
            try:
                self._login(message, request_id)
            except wire.ProtocolError as e:
                self.send_error(e, request_id)
        elif kind == "resume":
            if self._logging_in:
                self.send_error(
                    wire.ProtocolError(wire.BAD_FRAME, "a login is under way"), request_id)
                return
            self._resume_first(message, request_id)
        elif kind == "quit":
            self.handle_quit(message, request_id)
        else:
            self.send_error(wire.ProtocolError(wire.AUTH_FAILED, "log in first"), request_id)
            self.close(wire.REASON_ERROR)

    def _login(self, message, request_id):
        name, password = message.get("name"), message.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not (
            0 < len(password) <= wire.PASSWORD_MAX
        ):
            raise wire.ProtocolError(wire.BAD_FRAME, "login needs a name and a password")
        if self._logging_in:
            raise wire.ProtocolError(wire.BAD_FRAME, "a login is under way")
        factory = self.factory
        if not ISSLTransport.providedBy(self.transport) and not (
            factory.settings.allow_plaintext_login
        ):
            self._log("tried to log in without TLS")
            self.send_error(wire.ProtocolError(
                wire.AUTH_FAILED,
                "log in over TLS (this server does not allow passwords in the clear)"),
                request_id)
            self.close(wire.REASON_ERROR)
            return
        host = getattr(self.transport.getPeer(), "host", self.peer)
        delay = factory.admission.login_bucket(host).take()
        if delay:
            self.factory.stats.rate_limited += 1
            raise wire.ProtocolError(
                wire.RATE_LIMITED, "too many logins from your address",
                retry_after=round(delay, 3))
        self._logging_in = True
        d = accounts.login(factory.portal, name, password)
        d.addCallbacks(
            self._logged_in, self._login_failed,
            callbackArgs=(request_id,), errbackArgs=(name, request_id))
        d.addErrback(lambda failure: self.log.failure("login", failure))

    def _logged_in(self, name, request_id):
        self._logging_in = False
        if self.state is CLOSING:
            return
        if name.lower() in self.factory.rooms.users:
            self._log("logged in as {account}, who is already here", account=name)
            self.send_error(wire.ProtocolError(
                wire.NICK_TAKEN, "%s is already logged in" % (name,)), request_id)
            return
        self._log("logged in as {account}", account=name)
        self.name = name
        self.send("logged_in", name=name, **_id_field(request_id))
        self._enter_room()

    def _login_failed(self, failure, name, request_id):
        self._logging_in = False
        failure.trap(UnauthorizedLogin)
        if self.state is CLOSING:
            return
        self._log("failed to log in as {account}", account=wire.sanitize(name[:wire.NAME_MAX]))
        self.send_error(
            wire.ProtocolError(wire.AUTH_FAILED, "wrong name or password"), request_id)

    def handle_login(self, message, request_id):
        """
        A login after joining: too late (and without accounts, unknown).
        """
        if self.factory.portal is None:
            raise wire.ProtocolError(wire.UNKNOWN_TYPE, "this server has no accounts")
        raise wire.ProtocolError(wire.BAD_FRAME, "already logged in")

    def _resume_first(self, message, request_id):
        """
        A resume as the first frame: continue the old session, or, if that
        cannot be done, join as the new session the welcome announced.
        """
        try:
            token, last_seq = _check_resume(message)
            wanted = _check_resume_rooms(message)
            last_dseq = _check_last_dseq(message)
        except wire.ProtocolError as e:
            self.send_error(e, request_id)
            self._join()
            return
        was, self.state = self.state, move(self.state, RESUMING)
        self._join_call = cancelled(self._join_call)
        rooms = self.factory.rooms
        listed = "rooms" in message
        lobby = rooms.lobby
        if listed and 0 <= last_seq and lobby.replay(last_seq) is None:
            # With rooms the lobby answers for itself, as any room does: it
            # says it cannot replay, and the session goes on from now.
            self.send_error(wire.ProtocolError(
                wire.RESUME_FAILED, "event %d of the lobby is no longer kept" % (
                    last_seq + 1,), room=lobby.name, oldest_seq=lobby.oldest_seq),
                request_id)
            last_seq, lobby_lost = lobby.seq, True
        else:
            lobby_lost = False
        old = rooms.member_of_session(token)
        # The store may have to ask elsewhere (Redis); meanwhile the
        # connection is in no room and reads nothing more, and a failure
        # joins it as its new session (with accounts, it must log in).
        rooms.resuming(token)
        d = lobby.resume(self, token, last_seq)
        d.addCallbacks(
            self._resumed_first, self._resume_refused,
            callbackArgs=(request_id, old, listed and wanted, last_dseq, lobby_lost),
            errbackArgs=(request_id, was))
        d.addBoth(self._resume_over, token)
        self._read_after(d)

    def _resume_over(self, result, token):
        self.factory.rooms.resume_over(
            self if self.session == token and self.state is not CLOSING else None, token)
        return result

    def _resumed_first(self, replayed, request_id, old, wanted, last_dseq, lobby_lost):
        """
        The session is this connection's now, in the lobby: bring back its
        other rooms and its direct messages, each replaying what the client
        missed, then say C{resumed}.  (With a store that answers later,
        the rooms and the direct messages may be answered later too.)
        """
        if self.state is CLOSING:
            return
        self.state = move(self.state, JOINED)
        rooms = self.factory.rooms
        counts = [(rooms.lobby, replayed)]
        if lobby_lost:
            self._send_joined(rooms.lobby)
        d = defer.maybeDeferred(rooms.resume_rooms, self, old)
        d.addCallbacks(self._rooms_back, self._resume_step_failed,
                       callbackArgs=(counts, wanted, old), errbackArgs=(request_id,))
        if last_dseq is not None:
            d.addCallback(lambda _: defer.maybeDeferred(rooms.direct_after, self, last_dseq))
            d.addCallbacks(self._resume_direct, self._resume_step_failed,
                           callbackArgs=(last_dseq, request_id), errbackArgs=(request_id,))
        d.addCallback(self._resumed_all, counts, request_id, wanted, last_dseq)
        d.addErrback(self._refused, request_id)
        return d

    def _resume_step_failed(self, failure, request_id):
        """
        Bringing back the rooms or the direct messages failed (the store
        could not be asked): say so; the resume goes on with what it has.
        """
        self._refused(failure, request_id)
        return 0

    def _rooms_back(self, back, counts, wanted, old):
        if old is not None and old is not self and old.state is not CLOSING:
            # The session's stale connection (out of the lobby, so the
            # lobby did not replace it): this one has its rooms now.
            old.abort(wire.REASON_QUIT)
        if self.state is CLOSING:
            return
        for room, refusal, rejoin in back:
            if refusal is not None:
                self.send_error(refusal)
            if room is None:
                continue
            counts.append((room, self._resume_room(room, wanted, rejoin)))

    def _resumed_all(self, direct, counts, request_id, wanted, last_dseq):
        fields = {}
        if wanted is not False:
            fields["rooms"] = {room.name: count for room, count in counts}
        if last_dseq is not None:
            fields["direct"] = direct
        self._resumed(sum(count for _, count in counts) + (direct or 0), request_id, **fields)

    def _resume_room(self, room, wanted, rejoin):
        """
        One room of a session resumed on a new connection: replay what the
        client missed there (if it listed the room and the room still keeps
        it), or say it cannot; C{rejoin} if its connection had left the
        room, which is told it joined again.

        @return: how many events were replayed.
        """
        seen = wanted.get(room.key) if wanted else None
        frames = None if seen is None else room.replay(seen)
        if frames is None:
            if seen is not None:
                self.send_error(wire.ProtocolError(
                    wire.RESUME_FAILED, "event %d of %s is no longer kept" % (
                        seen + 1, room.name), room=room.name, oldest_seq=room.oldest_seq))
            self._send_joined(room, joining=rejoin)
            seen = room.seq
            frames = ()
        if rejoin:
            room.join(self, seen).addErrback(self._refused)
        elif frames:
            room.resume(self, self.session, seen).addErrback(self._refused)
        return len(frames)

    def _resume_direct(self, after, last_dseq, request_id):
        """
        Replay the session's direct messages after C{last_dseq} (C{after},
        from L{Rooms.direct_after}); if some are no longer kept, say so
        first, then send those that are.

        @return: how many were replayed.
        """
        data, count, oldest = after
        if self.state is CLOSING:
            return 0
        if oldest is not None:
            self.send_error(wire.ProtocolError(
                wire.RESUME_FAILED, "direct message %d is no longer kept" % (last_dseq + 1,),
                direct=True, oldest_dseq=oldest), request_id)
        if data:
            self.deliver_direct(data)
        return count

    def _resume_refused(self, failure, request_id, was):
        if self.state is CLOSING:
            return
        self._refused(failure, request_id)
        if was is LOGIN:
            self.state = move(self.state, LOGIN)
        else:
            self._enter_room()

    def handle_resume(self, message, request_id):
        """
        Catch up on this connection's own session, after a lagged: replay,
        in every room it is in, what it was not sent, and nothing it was.
        """
        token, last_seq = _check_resume(message)
        wanted = _check_resume_rooms(message)
        rooms = self.factory.rooms
        # Events still pending go out first (and skip us while we lag);
        # whatever happens next, we get events again from now on.
        rooms.flush()
        mine = rooms.rooms_of(self)
        sent = [self.outbox.sent_through(room) for room in mine]
        self.outbox.caught_up()
        if token != self.session:
            raise wire.ProtocolError(
                wire.RESUME_FAILED,
                "only the first frame may resume another session",
                oldest_seq=rooms.lobby.oldest_seq,
            )
        # With "rooms" (clients that know rooms) every room, the lobby too,
        # answers for itself; without, the lobby's failure is the resume's,
        # as it was before there were rooms.
        listed = "rooms" in message
        results = []
        for room, sent_through in zip(mine, sent):
            seen = last_seq if room.lobby else wanted.get(room.key)
            if seen is None:
                # Not asked for: it goes on from now.
                self._send_joined(room)
                results.append(defer.succeed((room, 0)))
                continue
            d = room.resume(self, token, max(seen, sent_through))
            d.addErrback(self._room_resume_failed, room, request_id, listed)
            results.append(d.addCallback(lambda count, room=room: (room, count)))
        defer.gatherResults(results).addCallbacks(
            self._resumed_rooms, self._refused,
            callbackArgs=(request_id, listed), errbackArgs=(request_id,))

    def _room_resume_failed(self, failure, room, request_id, listed):
        """
        A room whose missed events are no longer kept: it says so (with its
        name) and goes on from now, the client staying in it; or, for the
        lobby of a resume without C{rooms}, the whole resume fails.

        @return: 0 events replayed, or L{None} if the resume failed.
        """
        failure.trap(wire.ProtocolError)
        error = failure.value
        if room.lobby and not listed:
            self.send_error(error, request_id)
            return None
        self.send_error(wire.ProtocolError(
            error.code, error.message, room=room.name, **error.fields), request_id)
        self._send_joined(room)
        return 0

    def _resumed_rooms(self, counts, request_id, listed):
        if any(count is None for _, count in counts):
            return
        replayed = sum(count for _, count in counts)
        fields = {}
        if listed:
            fields["rooms"] = {room.name: count for room, count in counts}
        self._resumed(replayed, request_id, **fields)

    def _resumed(self, replayed, request_id, **fields):
        if self.state is CLOSING:
            return
        self.send("resumed", replayed=replayed, name=self.name, **fields,
                  **_id_field(request_id))
        self._log("resumed its session, {replayed} events replayed", replayed=replayed)

    def handle_heartbeat(self, message, request_id):
        """
        Answer a heartbeat, echoing its C{ts}.
        """
        ts = wire.check_optional_number(message, "ts")
        rtt = message.get("rtt")
        if wire.is_number(rtt) and 0 <= rtt < _RTT_MAX:
            self.factory.stats.heartbeat_rtt.observe(rtt)
        now = self.factory.clock.seconds()
        if request_id is None:
            self._reply(wire.heartbeat_ack_frame(ts, now))
        else:
            self.send("heartbeat_ack", **({} if ts is None else {"ts": ts}),
                      now=now, id=request_id)
        if self.factory.settings.verbose:
            self._log("sent a heartbeat")

    def handle_message(self, message, request_id):
        """
        Broadcast a chat message to a room (the lobby without C{room}).
        """
        text = wire.check_text(message.get("text"), self.factory.settings.max_text)
        if "to" in message:
            if "room" in message:
                raise wire.ProtocolError(
                    wire.BAD_FRAME, 'a message has "to" or "room", not both')
            defer.maybeDeferred(self.factory.rooms.direct, self, message["to"], text
                                ).addErrback(self._refused, request_id)
            return
        room = self._room_of(message)
        if self.factory.settings.verbose:
            self._log("says: {text}", text=wire.sanitize(text))
        room.message(self, text).addErrback(self._refused, request_id)

    def _room_of(self, message):
        """
        The room a frame is for, which this client must be in.

        @raise wire.ProtocolError: L{wire.BAD_ROOM}, L{wire.NOT_IN_ROOM}.
        """
        return self.factory.rooms.in_room(self, wire.check_room(message))

    def handle_nick(self, message, request_id):
        """
        Rename the client; a rename to the name it has is nothing to do.
        """
        if self.factory.portal is not None:
            raise wire.ProtocolError(wire.BAD_NICK, "names come from accounts on this server")
        new_name = message.get("name")
        if not isinstance(new_name, str):
            raise wire.ProtocolError(wire.BAD_FRAME, '"name" must be a string')
        if new_name == self.name:
            return
        settings = self.factory.settings
        if self._nicks is None:
            self._nicks = TokenBucket(
                settings.nick_rate / settings.nick_period, settings.nick_rate,
                self.factory.clock)
        self._check_bucket(self._nicks, "name changes")
        old = self.name

        def renamed(_):
            self.log.info(
                "{old} ({peer}) is now {name}", old=old, name=self.name, peer=self.peer
            )

        # Later frames (a message) must act under the name this gives.
        d = self.factory.rooms.rename(self, new_name)
        d.addCallbacks(renamed, self._refused, errbackArgs=(request_id,))
        self._read_after(d)

    def handle_who(self, message, request_id):
        """
        List a room (the lobby without C{room}; any room may be listed), in
        as many frames as max_frame requires.
        """
        self.factory.rooms.names(wire.check_room(message)).addCallbacks(
            self._send_who, self._refused,
            callbackArgs=(request_id,), errbackArgs=(request_id,))

    def _send_who(self, listed, request_id):
        """
        Send the names of a room in as many who frames as max_frame
        requires; a room other than the lobby also says who its operators
        are.
        """
        if self.state is CLOSING:
            return
        name, names, ops = listed
        fields = _id_field(request_id)
        if name.lower() != wire.LOBBY:
            fields = dict(fields, room=name, ops=ops)
        pages = paginate_names(
            names, self.factory.settings.max_frame, len(wire.encode(fields)) if fields else 0)
        for page in pages[:-1]:
            self.send("who", names=page, more=True, **fields)
        self.send("who", names=pages[-1], **fields)

    def handle_join(self, message, request_id):
        """
        Enter a room, making it if it does not exist: C{joined} first, then
        every event of the room from its next seq.
        """
        rooms = self.factory.rooms
        name = wire.check_room(message)
        known = rooms.get(name)
        if known is None or self not in known:
            self._check_bucket(
                self._join_bucket(), "room joins", name if known is None else known.name)

        def announce(room, already, seq):
            self._send_joined(room, request_id, joining=not already, seq=seq)

        # Later frames (a message to the room) must find it joined.
        d = rooms.enter(self, name, announce)
        d.addErrback(self._refused, request_id)
        self._read_after(d)

    def _join_bucket(self):
        """
        The bucket of this session's room joins (and parts).
        """
        if self._joins is None:
            settings = self.factory.settings
            self._joins = TokenBucket(
                settings.join_rate, settings.join_burst, self.factory.clock)
        return self._joins

    def _check_bucket(self, bucket, what, room=None):
        """
        Take a token from C{bucket}, one of this session's limits on
        C{what} it does.

        @raise wire.ProtocolError: L{wire.RATE_LIMITED}, with
            C{retry_after}, if there is none.
        """
        delay = bucket.take()
        if delay:
            self.factory.stats.rate_limited += 1
            raise wire.ProtocolError(
                wire.RATE_LIMITED, "too many %s, slow down" % (what,),
                retry_after=round(delay, 3),
                **({} if room is None or room.lower() == wire.LOBBY else {"room": room}))

    def _send_joined(self, room, request_id=None, joining=False, seq=None):
        """
        Tell the client it is in C{room}, from the event after C{seq} (by
        default the room's last) on.
        """
        members = room.room_size + (1 if joining else 0)
        self.send(
            "joined", room=room.name, seq=room.seq if seq is None else seq,
            topic=room.topic, members=members,
            presence=members <= room.presence_limit, **_id_field(request_id))

    def handle_part(self, message, request_id):
        """
        Leave one room; the client gets its own leave event as its last of
        the room, or C{parted} when the room is too large to announce it.
        """
        name = wire.check_room(message)
        farewell = message.get("message")
        try:
            farewell = wire.check_text(farewell, self.factory.settings.max_text, "message")
        except wire.ProtocolError:
            farewell = None
        d = self.factory.rooms.part(self, name, farewell)
        # A part is never refused, but it counts: part and join in a loop
        # soon runs out of joins.
        self._join_bucket().spend()
        d.addCallbacks(
            self._parted, self._refused,
            callbackArgs=(request_id,), errbackArgs=(request_id,))

    def _parted(self, result, request_id):
        room, told = result
        if not told and self.state is not CLOSING:
            self.send("parted", room=room.name, seq=room.seq, **_id_field(request_id))

    def handle_rooms(self, message, request_id):
        """
        List the rooms (those whose name starts with C{match}), in as many
        frames as max_frame requires.
        """
        match = message.get("match")
        if match is not None and (not isinstance(match, str) or len(match) > wire.NAME_MAX):
            raise wire.ProtocolError(wire.BAD_FRAME, '"match" must be a room name prefix')
        defer.maybeDeferred(self.factory.rooms.listing, match).addCallbacks(
            self._send_rooms, self._refused,
            callbackArgs=(request_id,), errbackArgs=(request_id,))

    def _send_rooms(self, listed, request_id):
        if self.state is CLOSING:
            return
        echo = _id_field(request_id)
        pages = paginate(
            listed, self.factory.settings.max_frame,
            len(wire.encode(echo)), lambda entry: len(wire.encode(entry)) + 1)
        for page in pages[:-1]:
            self.send("rooms", rooms=page, more=True, **echo)
        self.send("rooms", rooms=pages[-1], **echo)

    def handle_kick(self, message, request_id):
        """
        As an operator, take someone out of a room; the reason arrives as
        the leave's message.
        """
        reason = message.get("reason")
        if reason is not None:
            reason = wire.check_text(reason, self.factory.settings.max_text, "reason")
        self.factory.rooms.kick(
            self, wire.check_room(message), message.get("name"), reason).addCallbacks(
                self._kicked, self._refused, errbackArgs=(request_id,))

    def _kicked(self, result):
        """
        The kicked member gets its own leave, or, in a room too large to
        announce it, C{parted}.
        """
        if result is None:
            return
        room, kicked, told = result
        if not told:
            kicked.parted(room, room.seq)

    def handle_ban(self, message, request_id):
        """
        As an operator, ban a name (and, if its user is online, its address)
        from a room, kicking it out.
        """
        self.factory.rooms.ban(
            self, wire.check_room(message), message.get("name")).addCallbacks(
                self._kicked, self._refused, errbackArgs=(request_id,))

    def handle_unban(self, message, request_id):
        """
        As an operator, lift a ban.
        """
        self.factory.rooms.unban(
            self, wire.check_room(message), message.get("name")).addErrback(
                self._refused, request_id)

    def handle_op(self, message, request_id):
        """
        As an operator, make another member of the room one.
        """
        self.factory.rooms.make_op(
            self, wire.check_room(message), message.get("name")).addErrback(
                self._refused, request_id)

    def handle_topic(self, message, request_id):
        """
        Set the topic of a room, as one of its operators.
        """
        name = wire.check_room(message)
        topic = message.get("topic")
        if not isinstance(topic, str):
            raise wire.ProtocolError(wire.BAD_FRAME, '"topic" must be a string')
        if len(topic) > wire.TOPIC_MAX:
            raise wire.ProtocolError(
                wire.TEXT_TOO_LONG, "a topic is at most %d characters" % (wire.TOPIC_MAX,),
                **({} if name.lower() == wire.LOBBY else {"room": name}))
        self.factory.rooms.set_topic(self, name, topic).addErrback(self._refused, request_id)

    def _refused(self, failure, request_id=None):
        """
        Tell the client that what it asked could not be done.
        """
        if failure.check(wire.ProtocolError):
            error = failure.value
        else:
            self.log.failure("{name} ({peer}): request failed", failure,
                             name=self.name, peer=self.peer)
            error = wire.ProtocolError(wire.UNAVAILABLE, "the request failed; try again")
        if self.state is not CLOSING:
            self.send_error(error, request_id)

    def handle_quit(self, message, request_id):
        """
        Close the connection at the client's request.
        """
        text = message.get("message")
        try:
            self._leave_message = wire.check_text(
                text, self.factory.settings.max_text
            )
        except wire.ProtocolError:
            self._leave_message = None  # a bad farewell does not stop a quit
        self.close(wire.REASON_QUIT)

    def lengthLimitExceeded(self, length):
        """
        Refuse a frame longer than max_frame and close.  (Twisted API.)
        """
        if self.state is CLOSING:
            return
        self.send_error(
            wire.ProtocolError(
                wire.FRAME_TOO_LARGE,
                "frame of %d bytes exceeds max_frame %d" % (length, self.MAX_LENGTH),
            )
        )
        self.close(wire.REASON_ERROR)

    def timeoutConnection(self):
        """
        The peer has been silent for C{timeout} seconds: it is gone.
        (Twisted API.)
        """
        self._log("expired after {timeout} s without a frame", timeout=self.timeOut)
        self.factory.stats.expiry_delay.observe(
            self.factory.clock.seconds() - self._last_frame)
        self.abort(wire.REASON_TIMEOUT)

    def connectionLost(self, reason):
        """
        Cancel the timers and tell the room why the client left.
        (Twisted API.)
        """
        # Whatever was under way for it (a login, a resume) ends here.
        self._stop()
        self.setTimeout(None)
        if self.outbox is not None:
            self.outbox.stop()
        if not self._admitted:
            return
        leave_reason = self._leave_reason
        if leave_reason is None:
            leave_reason = (
                wire.REASON_EOF if reason.check(ConnectionDone) else wire.REASON_RESET
            )
        if type(reason.value).__module__.startswith(("OpenSSL", "service_identity")):
            self._log("TLS failed: {error}", error=reason.getErrorMessage())
        self._log_routine("left: " + leave_reason, "left: {reason}", reason=leave_reason)
        self.factory.stats.leaves[leave_reason] += 1
        self.factory.rooms.leave(self, leave_reason, self._leave_message).addErrback(
            lambda failure: self.log.failure(
                "{name} ({peer}): leaving failed", failure, name=self.name, peer=self.peer))
        self.factory.connection_lost(self)

    # Writing.

    def send(self, type, **fields):
        """
        Send one message to this client only.
        """
        message = {"type": type}
        message.update(fields)
        self._reply(wire.encode_frame(message))

    def _reply(self, data):
        """
        Send frame bytes to this client only.
        """
        self.factory.stats.replies += 1
        # Broadcasts caused by earlier frames reach us before this reply.
        self.factory.rooms.flush_to(self)
        self.outbox.write(data)

    def send_error(self, error, request_id=None):
        """
        Send a L{wire.ProtocolError} to this client as an error frame,
        echoing the C{id} of the frame it answers, if that had one.
        """
        self.factory.stats.errors[error.code] += 1
        self.send("error", code=error.code, message=error.message, **error.fields,
                  **_id_field(request_id))

    def deliver(self, seq, data, room):
        """
        Send the frames of events of C{room} from C{seq} on, unless the
        client lags too far behind to take them, or its connection is
        closing (what it was sent last stays its last frame); see
        L{Outbox.deliver}.  (L{IChatClient}.)
        """
        self.outbox.deliver(seq, data, room)

    def deliver_direct(self, data):
        """
        Send the frames of direct messages to this client's session: as
        replies, after the room events it is owed, and also while it lags
        (they are few, and their sender was told they were sent).
        (L{IChatClient}.)
        """
        if self.state is CLOSING:
            return
        self._reply(data)

    def parted(self, room, seq):
        """
        Say the client is out of C{room}, whose last event it was sent is
        C{seq} (a kick in a room too large to announce one).
        (L{IChatClient}.)
        """
        if self.state is not CLOSING:
            self.send("parted", room=room.name, seq=seq)

    def fell_behind(self, seq, room):
        """
        Events of C{room} from C{seq} on are lost to this node: the client
        is told it lagged, and resumes.  (L{IChatClient}.)
        """
        self.outbox.fell_behind(seq, room)

    def lag_report(self, lagged):
        """
        What a C{lagged} frame says: for every room the client is in, the
        first event it was not sent (C{missed_from} for the lobby, as it
        always was; C{rooms} for the others).  (For L{Outbox}.)
        """
        fields = {}
        others = {}
        for room in self.factory.rooms.rooms_of(self) or list(lagged):
            first = lagged[room] if room in lagged else room.next_for(self)
            if room.lobby:
                fields["missed_from"] = first
            else:
                others[room.name] = first
        if others:
            fields["rooms"] = others
        return fields

    # Ending.

    def abort(self, reason):
        """
        Drop the connection at once.  (L{IChatClient}.)
        """
        if self._leave_reason is None:
            self._leave_reason = reason
        self._stop()
        self.transport.abortConnection()

    def close(self, reason):
        """
        Close after the queued frames are written; ignore further input.
        """
        if self._leave_reason is None:
            self._leave_reason = reason
        self._stop()
        self.outbox.close()

    def _stop(self):
        """
        The connection is closing: read nothing more, send no more events,
        and let no timer join it to the room.
        """
        if self.state is CLOSING:
            return
        self.state = move(self.state, CLOSING)
        self._join_call = cancelled(self._join_call)
        if self.outbox is not None:
            self.outbox.closing = True
        # Not when the garbage collector gets round to the connection: a
        # burst of half-sent frames must not outlive its connections.
        self._drop_unfinished()


class ChatServerFactory(Factory):
    """
    The server's shared state: settings, the room, the open connections.

    @ivar clock: the L{IReactorTime} every protocol times itself with.
    @ivar settings: the L{ServerSettings}.
    @ivar room: the L{Room}.
    @ivar connections: every admitted L{ChatServerProtocol}.
    @ivar join_hold: see L{JOIN_HOLD}.
    @ivar read_budget: the L{ReadBudget} of bytes held in unfinished
        frames, all connections together.
    @ivar frame_timeout: seconds within which a frame must be complete
        once begun: the setting, or C{timeout} if that is shorter.
    """

    protocol = ChatServerProtocol
    log = Logger()
    join_hold = JOIN_HOLD

    def __init__(
        self, clock=None, random=None, coalesce=False, store=None, portal=None, **settings
    ):
        """
        @param clock: an L{IReactorTime}; the global reactor by default.
        @param random: a L{Random} for the reconnect delays in shutdown.
        @param coalesce: gather broadcasts for a whole reactor iteration
            (see L{Room}); the twistd plugin turns it on.
        @param store: the L{IRoomStore} the room keeps its shared state
            in; a new L{MemoryStore} by default (a cluster node passes a
            L{twisted_chat.cluster.RedisStore}).
        @param portal: with accounts, the L{twisted.cred} portal logins go
            through (L{accounts.portal}); L{None} for guests.
        @param settings: L{ServerSettings} fields.
        """
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.random = Random() if random is None else random
        self.settings = ServerSettings(**settings)
        self.rooms = getattr(store, "rooms_type", Rooms)(
            clock,
            backlog=self.settings.backlog,
            presence_limit=self.settings.presence_limit,
            coalesce=coalesce,
            hold_limit=self.settings.sendq,
            store=store,
            max_rooms=self.settings.max_rooms,
            max_rooms_per_client=self.settings.max_rooms_per_client,
            accounts=portal is not None,
        )
        self.room = self.rooms.lobby
        self.stats = self.room.stats
        self.portal = portal
        self.line_budget = LineBudget(clock, self.settings.log_rate)
        self.admission = Admission(self.settings, clock)
        self.read_budget = ReadBudget(self.settings.read_budget, self._burst_ended)
        self.frame_timeout = min(self.settings.frame_timeout, self.settings.timeout)
        self._trim_call = None
        self.connections = set()
        self._drained = []
        self._abort_call = None

    def stopFactory(self):
        """
        Log the lines the budget still holds back.  (Twisted API.)
        """
        self.line_budget.sum_up()
        self._trim_call = cancelled(self._trim_call)

    def shed(self, holders):
        """
        The server holds more than C{--read-budget} bytes of unfinished
        frames: drop C{holders}, the connections that hold the most, as
        (protocol, bytes held) pairs; L{ReadBudget} chose them.
        """
        self.log.info(
            "over the read budget ({limit} bytes of unfinished frames): dropping the "
            "{count} largest holders ({total} bytes)",
            limit=self.read_budget.limit, count=len(holders),
            total=sum(held for _, held in holders))
        for protocol, held in holders:
            protocol.drop_unfinished(wire.ProtocolError(
                wire.FRAME_TIMEOUT,
                "the server holds too many unfinished frames, and yours (%d bytes so "
                "far) is among the largest" % (held,)))

    def _burst_ended(self, peak):
        """
        The server held C{peak} bytes of unfinished frames and now holds
        few: give the freed memory back to the system a moment later (the
        C heap keeps it otherwise; L{twisted_chat.heap}).
        """
        if self._trim_call is None and heap.can_trim():
            self._trim_call = self.clock.callLater(TRIM_DELAY, self._trim, peak)

    def _trim(self, peak):
        """
        Give the C heap's free pages back, after a burst of C{peak} bytes.
        """
        self._trim_call = None
        heap.trim()
        self.log.info(
            "a burst of unfinished frames is over (up to {peak} bytes held): freed "
            "memory given back to the system", peak=peak)

    def new_session_token(self):
        """
        A new unguessable session token.
        """
        return secrets.token_urlsafe(18)

    def admit(self, protocol):
        """
        Let a new connection in, or say why not.

        @return: L{None} if admitted (it is then tracked), else a
            L{wire.ProtocolError} to send it before closing.
        """
        if self.room.closing:
            return wire.ProtocolError(wire.SERVER_FULL, "the server is shutting down")
        if not self.room.ready:
            return wire.ProtocolError(
                wire.UNAVAILABLE, "the server is not yet connected to the room"
            )
        host = getattr(protocol.transport.getPeer(), "host", None)
        refusal = self.admission.refusal(host, len(self.connections))
        if refusal is not None:
            return refusal
        protocol.counted_host = host
        self.connections.add(protocol)
        self.stats.connected(len(self.connections))
        return None

    def connection_lost(self, protocol):
        """
        Forget a connection; fire L{shutdown}'s Deferreds once none is left.
        """
        self.connections.discard(protocol)
        self.stats.connected(len(self.connections))
        self.admission.release(protocol.counted_host)
        if not self.connections and self._drained:
            self._abort_call = cancelled(self._abort_call)
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def shutdown(self, message=DEFAULT_SHUTDOWN_MESSAGE, grace=DEFAULT_SHUTDOWN_GRACE):
        """
        Send every client C{shutdown} and close all connections.

        Each client is told to wait a different C{reconnect_after}, between
        L{RECONNECT_AFTER} seconds, so that they do not all come back at
        once.  Queued frames get C{grace} seconds to flush; connections still
        open after that are aborted.

        @return: a Deferred that fires when every connection has closed.
        """
        self.rooms.close()
        if not self.connections:
            return defer.succeed(None)
        self.log.info(
            "shutting down: closing {count} connections", count=len(self.connections)
        )
        d = defer.Deferred()
        self._drained.append(d)
        low, high = RECONNECT_AFTER
        for protocol in list(self.connections):
            protocol.send(
                "shutdown",
                message=message,
                reconnect_after=round(self.random.uniform(low, high), 3),
            )
            protocol.close(_SHUTDOWN)
        if self._abort_call is None and self.connections:
            self._abort_call = self.clock.callLater(grace, self.abort_all)
        return d

    def abort_all(self):
        """
        Abort every connection now (the end of a shutdown's grace period, or
        a second signal).
        """
        self._abort_call = cancelled(self._abort_call)
        if self.connections:
            self.log.info(
                "aborting {count} connections", count=len(self.connections)
            )
        for protocol in list(self.connections):
            protocol.abort(_SHUTDOWN)
