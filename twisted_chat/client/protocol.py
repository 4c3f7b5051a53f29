# -*- test-case-name: tests.unit.test_client -*-
"""
The client's session with the server.

 - L{ChatClientProtocol} is the network side: framing, a heartbeat
   L{LoopingCall} at the interval the server's welcome asks for, and a
   L{TimeoutMixin} timer that declares the server dead when nothing at all has
   arrived from it for the announced timeout.
 - L{ChatSession} is the session over those connections: the welcome, the
   login, resumes (after C{lagged}, or on a new connection), the outbox and
   its pacing, the requests waiting for answers, reconnection, and the exit
   status.  It tells an L{IChatView} what to show; the console
   (L{twisted_chat.client.console}) is one.
"""

from collections import deque

from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import Attribute, Interface

from twisted_chat import wire
from twisted_chat._timers import cancelled
from twisted_chat.client.failures import describe_connect_failure, describe_tls_failure
from twisted_chat.net import no_delay
from twisted_chat.ratelimit import TokenBucket
from twisted_chat.wire import sanitize

#: Seconds to wait, after stdin ends, for the server to answer what was sent.
DRAIN_TIMEOUT = 5.0
#: Seconds a Ctrl-C waits for the quit frame to go out.
INTERRUPT_GRACE = 1.0
#: The client sends messages at this fraction of the server's rate.
PACE_MARGIN = 0.9
#: Requests waiting to be sent above which stdin is no longer read, and
#: below which it is read again.
OUTBOX_HIGH = 1000
OUTBOX_LOW = 100
#: Seconds to wait for a server's welcome, which a server sends at once: a
#: server that says nothing is dead, or speaks something else (TLS).
WELCOME_TIMEOUT = 10.0
#: Reconnection backoff: the first delay, and the most, jitter included.
RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
#: Heartbeat round trips kept for the median that /status shows.
RTT_WINDOW = 20

# The client's exit statuses.  When several apply, the first of
# EXIT_INTERRUPTED, EXIT_FAILED, EXIT_SHUTDOWN, EXIT_REFUSED wins.

#: Everything sent was answered (or the user left with /exit or Ctrl-D).
EXIT_OK = 0
#: Cannot connect (refused, no such host, TLS certificate refused, login
#: refused), the connection was lost, the server stopped responding, or
#: replies did not come within L{DRAIN_TIMEOUT} after stdin ended.
EXIT_FAILED = 1
#: A bad command line.
EXIT_USAGE = 2
#: Batch mode (stdin is not a terminal): a line was refused by the server,
#: or could not be sent (too long, an unknown or incomplete command).
EXIT_REFUSED = 3
#: The server shut down gracefully (a C{shutdown} frame, then the close),
#: without C{--reconnect}.
EXIT_SHUTDOWN = 4
#: Stopped by Ctrl-C (or SIGTERM) before the session ended by itself.
EXIT_INTERRUPTED = 130


def _format_seconds(seconds):
    return "%g" % (seconds,)


def _pacer(rate, clock):
    """
    A L{TokenBucket} a little slower than the server's announced C{rate}
    (C{{"burst": B, "per_second": R}}), so that network jitter cannot make
    paced messages arrive faster than the server allows; L{None} if the
    server announces no limit.
    """
    if not isinstance(rate, dict):
        return None
    per_second = rate.get("per_second")
    burst = rate.get("burst")
    if not wire.is_number(per_second) or per_second <= 0:
        return None
    if not wire.is_whole(burst) or burst < 1:
        burst = 1
    return TokenBucket(per_second * PACE_MARGIN, max(1, burst - 1), clock)


def too_long_line(text, limit):
    """
    The line saying that C{text} is longer than the server's C{limit}.
    """
    return "! message too long (%d characters, the limit is %d)" % (len(text), limit)


def _positive(message, field, default):
    value = message.get(field)
    if not wire.is_number(value) or value <= 0:
        return default
    return value


class IChatView(Interface):
    """
    What a L{ChatSession} shows, and where: the console is one.
    """

    failed_lines = Attribute(
        "How many lines were refused or not sent, in batch mode (they make the "
        "exit status EXIT_REFUSED).")

    def show(line):
        """
        A line for the user.
        """

    def show_event(message):
        """
        A message from the server, as the user sees it (if at all).
        """

    def refused(message):
        """
        An C{error} frame: the server refused a line we sent.
        """

    def problem(line, failed=0):
        """
        A line about a problem; C{failed} lines were refused or not sent.
        """

    def error(line):
        """
        A line about why the session cannot go on, or why a connection
        attempt failed.
        """


class ChatClientProtocol(Int32StringReceiver, TimeoutMixin):
    """
    The client's connection to the server.

    It reports to a listener (a L{ChatSession}): C{connected(protocol)},
    C{message_received(message)}, C{bad_frame(text)} and
    C{disconnected(reason, timed_out)}.

    @ivar heartbeat: the running heartbeat L{LoopingCall}, or L{None}.
    @ivar server_timeout: seconds of silence after which the server is dead.
    @ivar rtts: the last L{RTT_WINDOW} heartbeat round trips, in seconds.
    @ivar last_heard: when the last frame from the server arrived (the
        clock's time), or L{None}.
    """

    log = Logger()
    heartbeat = None
    welcomed = False
    timed_out = False
    # The last heartbeat round trip, in seconds.
    rtt = None
    last_heard = None

    def __init__(self, clock, listener, timeout=None):
        """
        @param clock: the L{IReactorTime} for heartbeats and the timeout.
        @param listener: told about everything that happens.
        @param timeout: seconds to wait for the welcome (L{WELCOME_TIMEOUT});
            the welcome then sets the server's own timeout.
        """
        if timeout is None:
            timeout = WELCOME_TIMEOUT
        self.clock = clock
        self.listener = listener
        self.server_timeout = timeout
        self.rtts = deque(maxlen=RTT_WINDOW)
        self.MAX_LENGTH = wire.DEFAULT_MAX_FRAME

    def connectionMade(self):
        """
        Start the liveness timer.  (Twisted API.)
        """
        self.callLater = self.clock.callLater
        no_delay(self.transport)
        self.setTimeout(self.server_timeout)
        self.listener.connected(self)

    def stringReceived(self, payload):
        """
        Any frame proves the server alive.  (Twisted API.)
        """
        self.resetTimeout()
        self.last_heard = self.clock.seconds()
        try:
            message = wire.decode(payload)
        except wire.ProtocolError as e:
            self.listener.bad_frame(e.message)
            return
        if message["type"] == "welcome" and not self.welcomed:
            self._welcome(message)
        elif message["type"] == "heartbeat_ack":
            ts = message.get("ts")
            if wire.is_number(ts):
                self.rtt = max(0.0, self.clock.seconds() - ts)
                self.rtts.append(self.rtt)
        self.listener.message_received(message)

    def _welcome(self, message):
        self.welcomed = True
        self.MAX_LENGTH = int(_positive(message, "max_frame", wire.DEFAULT_MAX_FRAME))
        self.server_timeout = _positive(message, "timeout", wire.DEFAULT_TIMEOUT)
        self.setTimeout(self.server_timeout)
        self.start_heartbeat(
            _positive(message, "heartbeat_interval", wire.DEFAULT_HEARTBEAT_INTERVAL)
        )

    def start_heartbeat(self, interval):
        """
        Send a heartbeat every C{interval} seconds, the first one interval
        from now.
        """
        self.stop_heartbeat()
        self.heartbeat = LoopingCall(self.send_heartbeat)
        self.heartbeat.clock = self.clock
        self.heartbeat.start(interval, now=False).addErrback(
            lambda failure: self.log.failure("heartbeat failed", failure)
        )

    def stop_heartbeat(self):
        """
        Stop the heartbeat, if it runs.
        """
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def send_heartbeat(self):
        """
        Send one heartbeat; its C{ts} comes back in the ack, and the round
        trip that gave is reported in the next (the server's metrics).
        """
        if self.rtt is None:
            self.send("heartbeat", ts=self.clock.seconds())
        else:
            self.send("heartbeat", ts=self.clock.seconds(), rtt=round(self.rtt, 6))

    def send(self, type, **fields):
        """
        Send one message to the server.
        """
        message = {"type": type}
        message.update(fields)
        self.sendString(wire.encode(message))

    def lengthLimitExceeded(self, length):
        """
        The server sent a frame larger than it announced.  (Twisted API.)
        """
        if not self.welcomed:
            self.listener.bad_frame(
                "the server does not speak the twisted-chat protocol (a TLS port? "
                "try --tls)")
        else:
            self.listener.bad_frame(
                "server sent a frame of %d bytes (max_frame %d)" % (length, self.MAX_LENGTH)
            )
        self.transport.abortConnection()

    def timeoutConnection(self):
        """
        Nothing arrived for C{server_timeout} seconds: the server is dead.
        (Twisted API.)
        """
        self.timed_out = True
        self.transport.abortConnection()

    def connectionLost(self, reason):
        """
        Stop the timer and the heartbeat.  (Twisted API.)
        """
        self.setTimeout(None)
        self.stop_heartbeat()
        self.listener.disconnected(reason, self.timed_out)


class ChatSession:
    """
    The chat session with the server, over one connection after another.

    It listens to a L{ChatClientProtocol} (C{connected}, C{message_received},
    C{bad_frame}, C{disconnected}) and to connection attempts
    (C{connection_failed}, C{retry_delay}), and tells an L{IChatView} what
    to show.

    Everything the user asks for goes through one ordered outbox
    (L{enqueue}); chat messages leave it no faster than the server's
    announced rate, so a piped file is never refused.  The session keeps its
    token and the seq of the last event it saw, so that after falling
    behind (C{lagged}) or, with C{reconnect}, after losing the connection,
    it can resume and miss nothing.  Once the input has ended
    (L{end_of_input}), it waits for the answers to what was sent, then
    leaves.

    @ivar done: fires with the exit status once the session is over.
    @ivar name: our name in the room, once welcomed.
    @ivar session: our session token.
    @ivar last_seq: the seq of the last event we saw.
    @ivar max_text: the longest message text the server takes.
    @ivar outstanding: requests sent that the server has not answered yet.
    @ivar missed_events: events we know we never saw.
    @ivar replayed_events: events replayed to us by resumes.
    @ivar reconnections: connections that replaced a lost one.
    @ivar welcomed_once: whether a server has welcomed us yet.
    @ivar offline_since: since when we have been without a connection after
        losing one (or failing to make the first), or L{None}.
    @ivar next_attempt: when the next connection attempt is due, or L{None}.
    @ivar backoff: the reconnection delay for an attempt number, when the
        server's shutdown did not say (exponential, with jitter).
    @ivar pause_input: called to stop reading the input while the outbox is
        long; C{resume_input}, to read it again.
    """

    log = Logger()
    protocol = None
    name = None
    session = None
    last_seq = None
    max_text = wire.DEFAULT_MAX_TEXT

    def __init__(self, clock, address, view, nick=None, reconnect=False, password=None,
                 tls=False):
        """
        @param clock: an L{IReactorTime}.
        @param address: C{host:port}, for messages about the connection.
        @param view: the L{IChatView} that shows what happens.
        @param nick: a name to ask for once welcomed (and again after a
            reconnection).
        @param reconnect: whether a lost connection is reconnected (by
            whoever calls L{retry_delay}) instead of ending the session.
        @param password: log in as C{nick} with it, where the server has
            accounts.
        @param tls: whether the connection is over TLS (for /status).
        """
        self.tls = tls
        self.missed_events = 0
        self.replayed_events = 0
        self.reconnections = 0
        # Set when the end is not an orderly one: Ctrl-C, or replies that
        # never came.
        self._interrupted = False
        self._gave_up = False
        # Whether the server sent shutdown on this connection.
        self._shutting_down = False
        self.offline_since = None
        self.next_attempt = None
        # Whether the user has been told that lines wait while offline.
        self._told_queued = False
        self.password = password
        # Whether the server wants a login, and one is under way.
        self._login_required = False
        self._logging_in = False
        self.clock = clock
        self.address = address
        self.view = view
        self.nick = nick
        self.reconnect = reconnect
        self.done = defer.Deferred()
        self.ready = False
        self.input_ended = False
        self.quitting = False
        self.finished = False
        self.outstanding = 0
        self.pause_input = self.resume_input = lambda: None
        self._input_paused = False
        self.welcomed_once = False
        self._outbox = deque()
        # Texts of our messages sent but not yet seen coming back.
        self._unconfirmed = deque()
        self._pace = None
        self._pace_call = None
        self._who = []
        self._drain_call = None
        # The id of the rename in flight, if one is; and whether the outbox
        # waits for answers before it can go on (see _pump).
        self._renaming = None
        self._request_ids = 0
        self._held_for_answers = False
        # "reconnect" or "lagged" while a resume is under way.
        self._resuming = None
        self._new_session = None
        self._new_name = None
        self._welcome_seq = None
        self._reconnect_after = None
        self.backoff = backoffPolicy(
            initialDelay=RETRY_INITIAL, maxDelay=RETRY_MAX - 1.0, factor=2.0
        )

    # What the user asks for.

    def enqueue(self, type, **fields):
        """
        Send a request (C{message}, C{nick}, C{who} or C{quit}) in its turn:
        after what waits before it, and messages at the server's pace.
        """
        if (
            self.offline_since is not None
            and not self._told_queued
            and type != "quit"
        ):
            self._told_queued = True
            self.view.show("* not connected: what you type is kept and sent once the "
                           "connection is back")
        self._outbox.append((type, fields))
        if len(self._outbox) > OUTBOX_HIGH and not self._input_paused:
            self._input_paused = True
            self.pause_input()
        self._pump()

    def report_in_turn(self, line):
        """
        A line about a typed line that cannot be sent, shown in its turn:
        after the answers to what was sent before it.
        """
        self._outbox.append(("problem", {"line": line}))
        self._pump()

    def leave(self, message=None):
        """
        Leave when what was typed before has gone (C{/exit}); between
        connections, at once.
        """
        if self.welcomed_once and not self.ready:
            # Between connections: nothing to wait for.
            self.quit(message)
        else:
            self.enqueue("quit", message=message)

    def _pump(self):
        """
        Send what waits in the outbox, as fast as the rate allows.
        """
        if not self.ready or self._pace_call is not None or self.quitting:
            return
        outbox = self._outbox
        self._held_for_answers = False
        while outbox:
            type, fields = outbox[0]
            problem = None
            if type == "problem":
                problem = fields["line"]
            elif type == "message" and len(fields["text"]) > self.max_text:
                problem = too_long_line(fields["text"], self.max_text)
            if problem is not None:
                if self.outstanding:
                    # Shown in its turn: after the answers to the lines
                    # before it (each answer pumps again).
                    self._held_for_answers = True
                    break
                outbox.popleft()
                self.view.problem(problem, failed=1)
                continue
            if type == "nick":
                if self._renaming is not None:
                    # One rename at a time: the next is judged by the name
                    # this one gives.
                    self._held_for_answers = True
                    break
                if fields["name"] == self.name:
                    # The server would do nothing, and answer nothing.
                    outbox.popleft()
                    self.view.show("* you are already %s" % (sanitize(self.name),))
                    continue
            if type == "message" and self._pace is not None:
                delay = self._pace.take()
                if delay:
                    self._pace_call = self.clock.callLater(delay, self._paced)
                    return
            outbox.popleft()
            if type == "quit":
                self.quit(fields.get("message"))
                return
            self.outstanding += 1
            if type == "message":
                self._unconfirmed.append(fields["text"])
            elif type == "nick":
                self._request_ids += 1
                self._renaming = self._request_ids
                fields = dict(fields, id=self._renaming)
            self.protocol.send(type, **fields)
        if self._input_paused and len(outbox) <= OUTBOX_LOW:
            self._input_paused = False
            self.resume_input()
        self._maybe_finish()

    def _paced(self):
        self._pace_call = None
        self._pump()

    def end_of_input(self):
        """
        stdin ended: finish once everything is sent and answered, waiting at
        most L{DRAIN_TIMEOUT} seconds for the answers.
        """
        self.input_ended = True
        self._maybe_finish()

    def output_lost(self):
        """
        stdout is gone: nobody can read us any more, so leave.
        """
        self.input_ended = True
        self.quit()

    def quit(self, message=None):
        """
        Leave the room now and close the connection.
        """
        if self.quitting or self.finished:
            return
        self.quitting = True
        self._cancel_timers()
        if self.protocol is None:
            self._finish(self._end_status())
            return
        if message is None:
            self.protocol.send("quit")
        else:
            self.protocol.send("quit", message=message)
        self.protocol.transport.loseConnection()

    def interrupt(self):
        """
        The program is being stopped (Ctrl-C): send quit and give it
        L{INTERRUPT_GRACE} seconds to go out.

        @return: a Deferred that fires when we may stop.
        """
        if self.finished:
            return None
        self._interrupted = True
        self.quit()
        d = defer.Deferred()
        timer = self.clock.callLater(INTERRUPT_GRACE, d.callback, None)

        def ended(result):
            if timer.active():
                timer.cancel()
                d.callback(None)
            return result

        self.done.addBoth(ended)
        return d

    # What the connection does.

    def retry_delay(self, attempt):
        """
        Seconds to wait before reconnection attempt C{attempt}: what the
        server's shutdown asked for, else exponential backoff with jitter,
        at most L{RETRY_MAX}.  (A L{ClientService} retry policy.)
        """
        if self._reconnect_after is not None:
            delay, self._reconnect_after = self._reconnect_after, None
        else:
            delay = self.backoff(attempt)
        self.next_attempt = self.clock.seconds() + delay
        return delay

    def connection_failed(self, failure):
        """
        A connection attempt failed: without C{reconnect}, that is the end.
        """
        if self.finished or self.quitting or failure.check(
                defer.CancelledError, ConnectingCancelledError):
            # We stopped it (Ctrl-C, or the session ended meanwhile).
            return
        text = describe_connect_failure(failure)
        if self.reconnect:
            if self.offline_since is None:
                self.offline_since = self.clock.seconds()
            self.view.error("cannot connect to %s: %s; will retry" % (self.address, text))
            return
        self.view.error("cannot connect to %s: %s" % (self.address, text))
        self._finish(EXIT_FAILED)

    def connected(self, protocol):
        """
        The connection is up (with TLS, the handshake may still be under
        way: success is announced with the welcome).
        """
        self.protocol = protocol
        self._shutting_down = False

    # Server-to-client frames, each handled by handle_<type>:
    #
    #   welcome       {session, name, seq, heartbeat_interval, timeout,
    #                  max_frame, max_text, rate?, login?}
    #                                   -> a new session, or resume the old
    #                                      one on a new connection
    #   logged_in     {name}            -> the login is over: ready
    #   resumed       {replayed, name}  -> the resume is over (after its
    #                                      replayed events)
    #   lagged        {missed_from}     -> resume on this connection
    #   error         {code, message, id?}
    #                                   -> the login refused (the end), the
    #                                      resume failed (a new session), or
    #                                      a request refused (shown)
    #   message       {seq, from, text, time}
    #                                   -> shown; our own answers a request
    #   nick          {seq, old, new}   -> shown; our own answers a request
    #   who           {names, more?}    -> pages gathered, one line shown
    #   shutdown      {message, reconnect_after?}
    #                                   -> shown; the close that follows is
    #                                      expected
    #   join, leave, heartbeat_ack, and any other type
    #                                   -> handle_event: shown if the view
    #                                      shows it
    #
    # Every frame but welcome, logged_in, resumed, lagged and the login's
    # and resume's errors is an event in seq order (L{_in_order}): one seen
    # already is dropped, a gap is reported.  (ChatClientProtocol measures
    # heartbeat round trips and takes the welcome's limits itself.)
    _HANDLED = frozenset([
        "welcome", "logged_in", "resumed", "lagged", "error", "message", "nick", "who",
        "shutdown", "join", "leave", "heartbeat_ack",
    ])

    def message_received(self, message):
        """
        Handle one message from the server, by its type.
        """
        kind = message["type"]
        if kind in self._HANDLED:
            getattr(self, "handle_" + kind)(message)
        else:
            self.handle_event(message)

    def handle_welcome(self, message):
        """
        A connection's first frame: start the session, or, on a new
        connection for an old one, resume it.
        """
        if self.welcomed_once:
            self.reconnections += 1
        else:
            # Only now is the connection known to work (TLS verified too).
            self.view.show("chatting server(%s) connect success!" % (self.address,))
        self.max_text = int(_positive(message, "max_text", wire.DEFAULT_MAX_TEXT))
        self._pace = _pacer(message.get("rate"), self.clock)
        seq = message.get("seq")
        seq = seq if wire.is_whole(seq) else None
        if self.welcomed_once and self.session is not None and self.last_seq is not None:
            self._resume_session(message, seq)
        else:
            self._start_session(message, seq)

    def _resume_session(self, message, seq):
        """
        A new connection for an old session: pick up where we were (the
        welcome's session is ours if the resume fails).
        """
        self._resuming = "reconnect"
        self._welcome_seq = seq
        self._new_session = message.get("session")
        self._new_name = message.get("name")
        self.protocol.send("resume", session=self.session, last_seq=self.last_seq)

    def _start_session(self, message, seq):
        """
        The first welcome: the session it gives is ours; log in, or take
        our name, and start sending.
        """
        self.welcomed_once = True
        self.session = message.get("session")
        self.last_seq = seq
        self.name = message.get("name")
        if message.get("login") is True:
            self._login_required = True
            self._log_in()
            return
        # Ask for the name before anything is shown, so that nothing the
        # user (or a caller woken by the output) sends can overtake it.
        if self.nick is not None:
            self._outbox.appendleft(("nick", {"name": self.nick}))
        self.view.show("* you are %s; type /help for help" % (sanitize(self.name),))
        self._ready()

    def handle_logged_in(self, message):
        """
        Our login was accepted.
        """
        self._logging_in = False
        self.name = message.get("name", self.nick)
        self.view.show("* logged in as %s; type /help for help" % (sanitize(self.name),))
        self._ready()

    def handle_resumed(self, message):
        """
        Our resume is over: the replayed events have come.
        """
        how, self._resuming = self._resuming, None
        self.name = message.get("name", self.name)
        replayed = message.get("replayed", 0)
        if wire.is_whole(replayed) and replayed > 0:
            self.replayed_events += replayed
        if how == "lagged":
            self.view.show("* caught up, %s missed events replayed" % (replayed,))
            return
        self.view.show("* reconnected, %s missed events replayed" % (replayed,))
        # Whatever we sent that never came back was lost with the old
        # connection: the replay covered everything the server accepted.
        self._requeue_unconfirmed()
        self._retake_nick()
        self._ready()

    def handle_lagged(self, message):
        """
        The server stopped sending us events because we fell behind; all
        before this frame has arrived, so ask for the rest.
        """
        self.view.show("* fell behind; catching up")
        self._resuming = "lagged"
        self.protocol.send("resume", session=self.session, last_seq=self.last_seq)

    def handle_error(self, message):
        """
        Something we sent was refused: our login (the end), our resume (we
        go on as a new session), or a request (shown, in its turn).
        """
        if self._logging_in:
            self._logging_in = False
            self.view.error("cannot log in as %s: %s" % (
                self.nick, sanitize(message.get("message", ""))))
            self._finish(EXIT_FAILED)
            return
        if message.get("code") == wire.RESUME_FAILED and self._resuming:
            self._resume_failed(message)
            return
        if not self._in_order(message):
            return
        # Whatever it answers, something we sent was refused.
        if message.get("id", False) == self._renaming:
            self._renaming = None
        self._answered()
        self.view.refused(message)
        self._next_after_answers()

    def handle_message(self, message):
        """
        A chat message; our own answers the oldest we sent.
        """
        if not self._in_order(message):
            return
        if message.get("from") == self.name:
            self._answered()
            if self._unconfirmed:
                self._unconfirmed.popleft()
        self._show(message)

    def handle_nick(self, message):
        """
        A rename; ours answers our request, and our name follows.
        """
        if not self._in_order(message):
            return
        if message.get("old") == self.name:
            self.name = message.get("new")
            self._renaming = None
            self._answered()
        self._show(message)

    def handle_who(self, message):
        """
        A page of the answer to /who; the last one shows them all.
        """
        if not self._in_order(message):
            return
        self._who_page(message)
        self._next_after_answers()

    def handle_shutdown(self, message):
        """
        The server is stopping: the close that follows is expected, and it
        may say when to come back.
        """
        if not self._in_order(message):
            return
        self._shutting_down = True
        delay = message.get("reconnect_after")
        if wire.is_number(delay) and 0 <= delay <= RETRY_MAX:
            self._reconnect_after = delay
        self._show(message)

    def handle_event(self, message):
        """
        join, leave, heartbeat_ack, and types we do not know: shown if
        the view shows them.
        """
        if self._in_order(message):
            self._show(message)

    handle_join = handle_leave = handle_heartbeat_ack = handle_event

    def _in_order(self, message):
        """
        Follow the seq of events: C{False} for one seen already (a replay
        overlapping what we had); a gap is reported as missed events.
        """
        seq = message.get("seq")
        if wire.is_whole(seq):
            if self.last_seq is not None and seq <= self.last_seq:
                return False
            if self.last_seq is not None and seq > self.last_seq + 1:
                self._missed(self.last_seq + 1, seq - 1)
            self.last_seq = seq
        return True

    def _show(self, message):
        """
        Show a message from the server (if the view shows it), then let
        what waits for answers follow.
        """
        self.view.show_event(message)
        self._next_after_answers()

    def _next_after_answers(self):
        """
        A message has been shown: what waited in the outbox for answers
        may now follow (L{_pump}), and the session may be over.
        """
        if self._outbox:
            self._pump()
        else:
            self._maybe_finish()

    def bad_frame(self, text):
        """
        The server sent something we cannot read.
        """
        self.view.problem("! bad frame from server: %s" % (sanitize(text),))

    def _missed(self, first, last):
        self.missed_events += last - first + 1
        self.view.problem("! missed events %d..%d" % (first, last))

    def disconnected(self, reason, timed_out):
        """
        The connection is gone; why decides the exit status, or, with
        C{reconnect}, what we tell the user while reconnecting.
        """
        self._cancel_timers()
        lost, self.protocol = self.protocol, None
        self.ready = False
        self._resuming = None
        shut_down, self._shutting_down = self._shutting_down, False
        if self.finished:
            return
        if self.quitting:
            self._finish(self._end_status())
            return
        tls = describe_tls_failure(reason)
        if tls is not None and not (lost and lost.welcomed):
            # No retry mends a certificate: stop, with or without reconnect.
            self.view.error("cannot connect to %s: %s" % (self.address, tls))
            self._finish(EXIT_FAILED)
            return
        if shut_down:
            # Expected: the shutdown frame said so, and the user saw it.
            if self.reconnect:
                self._went_offline()
                if self._reconnect_after is not None:
                    self.view.show("* reconnecting in %s s" % (
                        _format_seconds(self._reconnect_after),))
                else:
                    self.view.show("* reconnecting")
                return
            self._finish(EXIT_SHUTDOWN)
            return
        if timed_out and not lost.welcomed:
            why = ("no welcome from the server within %s s (is it a TLS port? "
                   "try --tls)" % (_format_seconds(lost.server_timeout),))
        elif timed_out:
            why = "server not responding (no data for %s s)" % (
                _format_seconds(lost.server_timeout),
            )
        else:
            why = "server terminated prematurely"
        if self.reconnect:
            self._went_offline()
            self.view.show("* %s; reconnecting" % (why,))
            return
        self.view.error(why)
        self._finish(EXIT_FAILED)

    def _went_offline(self):
        self.offline_since = self.clock.seconds()
        self.next_attempt = None
        self._told_queued = False

    # Internals.

    def _log_in(self):
        """
        The server has accounts: log in as C{nick}, or stop if we cannot.
        """
        if self.nick is None or self.password is None:
            self.view.error("the server wants a login: use --login --name NAME")
            self._finish(EXIT_FAILED)
            return
        self._logging_in = True
        self.protocol.send("login", name=self.nick, password=self.password)

    def _resume_failed(self, message):
        """
        The server no longer has our session: after C{lagged}, say so; on a
        new connection, go on as the session its welcome gave, saying what
        may have been lost.
        """
        how, self._resuming = self._resuming, None
        if how == "lagged":
            self.view.problem("! could not catch up: %s" % (sanitize(message.get("message", "")),))
            return
        self.view.show("* reconnected as a new session (the server no longer had ours)")
        if (
            self.last_seq is not None
            and self._welcome_seq is not None
            and self._welcome_seq > self.last_seq
        ):
            self._missed(self.last_seq + 1, self._welcome_seq)
        if self._unconfirmed:
            self.view.problem(
                "! %d of your messages may not have been delivered"
                % (len(self._unconfirmed),),
                failed=len(self._unconfirmed),
            )
            self._unconfirmed.clear()
        self.session = self._new_session
        self.last_seq = self._welcome_seq
        self.name = self._new_name
        if self._login_required:
            self._log_in()
            return
        self._retake_nick()
        self._ready()

    def _requeue_unconfirmed(self):
        for text in reversed(self._unconfirmed):
            self._outbox.appendleft(("message", {"text": text}))
        self._unconfirmed.clear()

    def _retake_nick(self):
        if self.nick is not None and self.name != self.nick and not self._login_required:
            self._outbox.appendleft(("nick", {"name": self.nick}))

    def _ready(self):
        self.ready = True
        self.offline_since = self.next_attempt = None
        self.outstanding = 0
        self._renaming = None
        self._pump()
        self._maybe_finish()

    def _who_page(self, message):
        names = message.get("names")
        if isinstance(names, list):
            self._who.extend(names)
        if message.get("more"):
            return
        names, self._who = self._who, []
        self._answered()
        self.view.show_event({"type": "who", "names": names})

    def _answered(self):
        if self.outstanding > 0:
            self.outstanding -= 1

    def _maybe_finish(self):
        if not (self.input_ended and self.ready) or self.quitting or self.finished:
            return
        if self._outbox and not self._held_for_answers:
            return
        if self.outstanding == 0 and not self._outbox:
            self.quit()
        elif self._drain_call is None:
            self._drain_call = self.clock.callLater(DRAIN_TIMEOUT, self._drain_expired)

    def _drain_expired(self):
        self._drain_call = None
        self._gave_up = True
        self.view.problem(
            "! gave up waiting for %d replies from the server" % (self.outstanding,)
        )
        self.quit()

    def _end_status(self):
        """
        The exit status of a session that ends because we leave.
        """
        if self._interrupted:
            return EXIT_INTERRUPTED
        if self._gave_up:
            return EXIT_FAILED
        if self.view.failed_lines:
            return EXIT_REFUSED
        return EXIT_OK

    def _cancel_timers(self):
        self._drain_call = cancelled(self._drain_call)
        self._pace_call = cancelled(self._pace_call)

    def _finish(self, status):
        if self.finished:
            return
        self.finished = True
        self._cancel_timers()
        self.done.callback(status)
