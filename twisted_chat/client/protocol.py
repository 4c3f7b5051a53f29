# -*- test-case-name: tests.test_client -*-
"""
The stdio chat client (for now all of it; L{twisted_chat.client} re-exports it).

Three parts, each testable alone:

 - L{ChatClientProtocol} is the network side: framing, a heartbeat
   L{LoopingCall} at the interval the server's welcome asks for, and a
   L{TimeoutMixin} timer that declares the server dead when nothing at all has
   arrived from it for the announced timeout.
 - L{ChatClient} is what the user sees and types: commands, rendering,
   and the orderly end of a piped batch (stdin EOF waits for the replies).
 - L{ConsoleProtocol} connects L{ChatClient} to stdin and stdout.

Text that came from the network is sanitized before it reaches the terminal.
"""

import getpass
import os
import re
import statistics
import sys
from collections import deque

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.interfaces import IHalfCloseableProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver, LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python import usage
from zope.interface import implementer

import twisted_chat
from twisted_chat import wire
from twisted_chat._timers import cancelled
from twisted_chat.ratelimit import TokenBucket
from twisted_chat.net import format_host_port, no_delay
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

HELP = """\
* type a line to send it to everybody; a line starting with / is a command:
*   /nick NAME    change your name
*   /who          list who is online
*   /status       the connection: server, round trip, seq, reconnections
*   /exit [TEXT]  leave (TEXT is your farewell)
*   /help         this help
*   //TEXT        send a line that starts with /"""

def _format_seconds(seconds):
    return "%g" % (seconds,)


#: What a shutdown message says that the line about it says already.
_SHUTTING_DOWN = re.compile(
    r"^\s*(the\s+)?server\s+(is\s+)?(shutting|shut)\s+down\b[\s:;,.!-]*", re.IGNORECASE)


def shutdown_line(message):
    """
    The line for a C{shutdown} frame's C{message}: that the server shut
    down, and whatever else the message says.
    """
    text = message if isinstance(message, str) else ""
    rest = _SHUTTING_DOWN.sub("", text, count=1).strip()
    if not rest:
        return "* the server shut down"
    return "* the server shut down: %s" % (sanitize(rest),)


def render(message):
    """
    The line the user sees for a message from the server, or L{None} for
    messages that show nothing (heartbeat acks, unknown types).
    """
    kind = message.get("type")
    get = lambda field: sanitize(message.get(field, "?"))
    if kind == "message":
        return "> %s: %s" % (get("from"), get("text"))
    if kind == "join":
        return "* %s joined" % (get("name"),)
    if kind == "leave":
        reason = get("reason")
        if message.get("message") is not None:
            reason = "%s: %s" % (reason, get("message"))
        return "* %s left (%s)" % (get("name"), reason)
    if kind == "nick":
        return "* %s is now %s" % (get("old"), get("new"))
    if kind == "who":
        names = message.get("names")
        if not isinstance(names, list):
            names = []
        return "* online: %s" % (", ".join(sanitize(name) for name in names),)
    if kind == "error":
        return "! %s" % (get("message"),)
    if kind == "shutdown":
        return shutdown_line(message.get("message"))
    return None


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


def _too_long(text, limit):
    return "! message too long (%d characters, the limit is %d)" % (len(text), limit)


def _format_ms(seconds):
    return "%.1f ms" % (seconds * 1000.0,)


def _format_age(seconds):
    return "%.1f" % (max(0.0, seconds),)


def _short(session):
    """
    The start of a session token, enough to tell sessions apart: the whole
    token would let whoever reads the screen take the session over.
    """
    if not isinstance(session, str) or not session:
        return "(none)"
    return sanitize(session[:6]) + "..."


def _positive(message, field, default):
    value = message.get(field)
    if not wire.is_number(value) or value <= 0:
        return default
    return value


class ChatClientProtocol(Int32StringReceiver, TimeoutMixin):
    """
    The client's connection to the server.

    It reports to a listener (a L{ChatClient}): C{connected(protocol)},
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


class ChatClient:
    """
    The chat as the user sees it: typed lines in, rendered lines out.

    Everything the user asks for goes through one ordered outbox; chat
    messages leave it no faster than the server's announced rate, so a piped
    file is never refused.  The client keeps its session token and the seq
    of the last event it saw, so that after falling behind (C{lagged}) or,
    with C{reconnect}, after losing the connection, it can resume and miss
    nothing.

    In batch mode (stdin is not a terminal) the lines about problems
    (C{! ...}) go to stderr instead of stdout, and a line that was refused
    or could not be sent ends the session with L{EXIT_REFUSED}.  Problems
    with what was read before the connection was ready are reported in
    their turn, after the connection's own lines.

    @ivar done: fires with the exit status once the session is over.
    @ivar name: our name in the room, once welcomed.
    @ivar session: our session token.
    @ivar last_seq: the seq of the last event we saw.
    @ivar outstanding: requests sent that the server has not answered yet.
    @ivar failed_lines: in batch mode, lines refused or not sent.
    @ivar missed_events: events we know we never saw.
    @ivar replayed_events: events replayed to us by resumes.
    @ivar reconnections: connections that replaced a lost one.
    """

    log = Logger()
    protocol = None
    name = None
    session = None
    last_seq = None
    max_text = wire.DEFAULT_MAX_TEXT

    def __init__(self, clock, address, out, err, nick=None, reconnect=False, password=None,
                 batch=False, tls=False):
        """
        @param clock: an L{IReactorTime}.
        @param address: C{host:port}, for messages about the connection.
        @param out: called with each line for the user (stdout).
        @param err: called with each line about a failure (stderr).
        @param nick: a name to ask for once welcomed (and again after a
            reconnection).
        @param reconnect: whether a lost connection is reconnected (by
            whoever calls L{retry_delay}) instead of ending the session.
        @param password: log in as C{nick} with it, where the server has
            accounts.
        @param batch: whether stdin is a pipe or a file, not a terminal.
        @param tls: whether the connection is over TLS (for /status).
        """
        self.batch = batch
        self.tls = tls
        self.failed_lines = 0
        self.missed_events = 0
        self.replayed_events = 0
        self.reconnections = 0
        # Set when the end is not an orderly one: Ctrl-C, or replies that
        # never came.
        self._interrupted = False
        self._gave_up = False
        # Whether the server sent shutdown on this connection.
        self._shutting_down = False
        # Since when we have been without a connection after losing one (or
        # failing to make the first); when the next attempt is due; whether
        # the user has been told that lines wait meanwhile.
        self._offline_since = None
        self._next_attempt = None
        self._told_queued = False
        self.password = password
        # Whether the server wants a login, and one is under way.
        self._login_required = False
        self._logging_in = False
        self.clock = clock
        self.address = address
        self.out = out
        self.err = err
        self.nick = nick
        self.reconnect = reconnect
        self.done = defer.Deferred()
        self.ready = False
        self.input_ended = False
        self.quitting = False
        self.finished = False
        self.outstanding = 0
        # Called to stop and restart reading stdin while the outbox is long.
        self.pause_input = self.resume_input = lambda: None
        self._input_paused = False
        self._welcomed_once = False
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
        self._backoff = backoffPolicy(
            initialDelay=RETRY_INITIAL, maxDelay=RETRY_MAX - 1.0, factor=2.0
        )

    # What the user does.

    def line_received(self, line):
        """
        A line from the user: a command or a message.
        """
        if self.finished or self.quitting:
            return
        if line.startswith("//"):
            self._send_text(line[1:])
        elif line.startswith("/"):
            self._command(line)
        elif line:
            self._send_text(line)

    def line_too_long(self, limit):
        """
        stdin had a line of more than C{limit} bytes, which was not read.
        """
        if self.finished or self.quitting:
            return
        self._local_problem("! line too long (more than %d bytes), not sent" % (limit,))

    def _command(self, line):
        command, _, argument = line.partition(" ")
        argument = argument.strip()
        if command == "/exit":
            if self._welcomed_once and not self.ready:
                # Between connections: nothing to wait for.
                self.quit(argument or None)
            else:
                self._enqueue("quit", message=argument or None)
        elif command == "/nick":
            if argument:
                self._enqueue("nick", name=argument)
            else:
                self._local_problem("! usage: /nick NAME")
        elif command == "/who":
            self._enqueue("who")
        elif command == "/status":
            for status_line in self.status_lines():
                self.out(status_line)
        elif command == "/help":
            for help_line in HELP.splitlines():
                self.out(help_line)
        else:
            self._local_problem("! unknown command %s (try /help)" % (sanitize(line),))

    def _send_text(self, text):
        if self._welcomed_once and not self.batch and len(text) > self.max_text:
            # Say so at once; in batch mode, in its turn (L{_pump}).
            self._problem(_too_long(text, self.max_text), failed=1)
            return
        self._enqueue("message", text=text)

    def _problem(self, line, failed=0):
        """
        Show a line about a problem: on stderr in batch mode, where
        C{failed} lines that were refused or not sent also count against
        the exit status; on stdout otherwise.
        """
        if self.batch:
            self.failed_lines += failed
            self.err(line)
        else:
            self.out(line)

    def _local_problem(self, line):
        """
        A typed line cannot be sent: say so now, or, in batch mode, in its
        turn with the others.
        """
        if self.batch:
            self._outbox.append(("problem", {"line": line}))
            self._pump()
        else:
            self._problem(line, failed=1)

    def _enqueue(self, type, **fields):
        if (
            self._offline_since is not None
            and not self._told_queued
            and type != "quit"
        ):
            self._told_queued = True
            self.out("* not connected: what you type is kept and sent once the "
                     "connection is back")
        self._outbox.append((type, fields))
        if len(self._outbox) > OUTBOX_HIGH and not self._input_paused:
            self._input_paused = True
            self.pause_input()
        self._pump()

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
                problem = _too_long(fields["text"], self.max_text)
            if problem is not None:
                if self.outstanding:
                    # Shown in its turn: after the answers to the lines
                    # before it (each answer pumps again).
                    self._held_for_answers = True
                    break
                outbox.popleft()
                self._problem(problem, failed=1)
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
                    self.out("* you are already %s" % (sanitize(self.name),))
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

    def status_lines(self):
        """
        What /status shows: the connection, its liveness, and the session.
        """
        now = self.clock.seconds()
        protocol = self.protocol
        how = "TLS" if self.tls else "plain TCP, not encrypted"
        lines = []
        if protocol is not None and protocol.welcomed:
            lines.append("* connected to %s (%s) as %s, session %s" % (
                self.address, how, sanitize(self.name or "?"), _short(self.session)))
            if protocol.rtts:
                rtt = "heartbeat round trip %s (median %s of the last %d)" % (
                    _format_ms(protocol.rtts[-1]), _format_ms(statistics.median(protocol.rtts)),
                    len(protocol.rtts))
            else:
                rtt = "no heartbeat answered yet"
            lines.append("* %s; last heard from the server %s s ago" % (
                rtt, _format_age(now - protocol.last_heard)))
        elif protocol is not None:
            lines.append("* connecting to %s (%s): waiting for the server's welcome" % (
                self.address, how))
        elif self._offline_since is not None:
            if self._next_attempt is not None and self._next_attempt > now:
                attempt = "next try in %s s" % (_format_age(self._next_attempt - now),)
            else:
                attempt = "trying now"
            lines.append("* not connected (to %s, %s) for %s s; %s" % (
                self.address, how, _format_age(now - self._offline_since), attempt))
        else:
            lines.append("* not connected: connecting to %s (%s)" % (self.address, how))
        if self._welcomed_once:
            lines.append("* seq %s; %d missed events, %d replayed; %d reconnections" % (
                "?" if self.last_seq is None else self.last_seq, self.missed_events,
                self.replayed_events, self.reconnections))
        return lines

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
            delay = self._backoff(attempt)
        self._next_attempt = self.clock.seconds() + delay
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
            if self._offline_since is None:
                self._offline_since = self.clock.seconds()
            self.err("cannot connect to %s: %s; will retry" % (self.address, text))
            return
        self.err("cannot connect to %s: %s" % (self.address, text))
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
    #                                   -> handle_event: shown if render
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
        self._welcome(message)

    def handle_logged_in(self, message):
        """
        Our login was accepted.
        """
        self._logged_in(message)

    def handle_resumed(self, message):
        """
        Our resume is over: the replayed events have come.
        """
        self._resumed(message)

    def handle_lagged(self, message):
        """
        We fell behind: resume on this connection.
        """
        self._lagged()

    def handle_error(self, message):
        """
        Something we sent was refused: our login (the end), our resume (we
        go on as a new session), or a request (shown, in its turn).
        """
        if self._logging_in:
            self._logging_in = False
            self.err("cannot log in as %s: %s" % (
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
        self._problem(render(message), failed=1)
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
        L{render} shows them.
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
        Show a message from the server (if it shows as a line), then let
        what waits for answers follow.
        """
        line = render(message)
        if line is not None:
            self.out(line)
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
        self._problem("! bad frame from server: %s" % (sanitize(text),))

    def _missed(self, first, last):
        self.missed_events += last - first + 1
        self._problem("! missed events %d..%d" % (first, last))

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
            self.err("cannot connect to %s: %s" % (self.address, tls))
            self._finish(EXIT_FAILED)
            return
        if shut_down:
            # Expected: the shutdown frame said so, and the user saw it.
            if self.reconnect:
                self._went_offline()
                if self._reconnect_after is not None:
                    self.out("* reconnecting in %s s" % (_format_seconds(self._reconnect_after),))
                else:
                    self.out("* reconnecting")
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
            self.out("* %s; reconnecting" % (why,))
            return
        self.err(why)
        self._finish(EXIT_FAILED)

    def _went_offline(self):
        self._offline_since = self.clock.seconds()
        self._next_attempt = None
        self._told_queued = False

    # Internals.

    def _welcome(self, message):
        if self._welcomed_once:
            self.reconnections += 1
        else:
            # Only now is the connection known to work (TLS verified too).
            self.out("chatting server(%s) connect success!" % (self.address,))
        self.max_text = int(_positive(message, "max_text", wire.DEFAULT_MAX_TEXT))
        self._pace = _pacer(message.get("rate"), self.clock)
        seq = message.get("seq")
        seq = seq if wire.is_whole(seq) else None
        if self._welcomed_once and self.session is not None and self.last_seq is not None:
            # A new connection for an old session: pick up where we were.
            self._resuming = "reconnect"
            self._welcome_seq = seq
            self._new_session = message.get("session")
            self._new_name = message.get("name")
            self.protocol.send("resume", session=self.session, last_seq=self.last_seq)
            return
        self._welcomed_once = True
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
        self.out("* you are %s; type /help for help" % (sanitize(self.name),))
        self._ready()

    def _log_in(self):
        """
        The server has accounts: log in as C{nick}, or stop if we cannot.
        """
        if self.nick is None or self.password is None:
            self.err("the server wants a login: use --login --name NAME")
            self._finish(EXIT_FAILED)
            return
        self._logging_in = True
        self.protocol.send("login", name=self.nick, password=self.password)

    def _logged_in(self, message):
        self._logging_in = False
        self.name = message.get("name", self.nick)
        self.out("* logged in as %s; type /help for help" % (sanitize(self.name),))
        self._ready()

    def _resumed(self, message):
        how, self._resuming = self._resuming, None
        self.name = message.get("name", self.name)
        replayed = message.get("replayed", 0)
        if wire.is_whole(replayed) and replayed > 0:
            self.replayed_events += replayed
        if how == "lagged":
            self.out("* caught up, %s missed events replayed" % (replayed,))
            return
        self.out("* reconnected, %s missed events replayed" % (replayed,))
        # Whatever we sent that never came back was lost with the old
        # connection: the replay covered everything the server accepted.
        self._requeue_unconfirmed()
        self._retake_nick()
        self._ready()

    def _resume_failed(self, message):
        how, self._resuming = self._resuming, None
        if how == "lagged":
            self._problem("! could not catch up: %s" % (sanitize(message.get("message", "")),))
            return
        self.out("* reconnected as a new session (the server no longer had ours)")
        if (
            self.last_seq is not None
            and self._welcome_seq is not None
            and self._welcome_seq > self.last_seq
        ):
            self._missed(self.last_seq + 1, self._welcome_seq)
        if self._unconfirmed:
            self._problem(
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

    def _lagged(self):
        """
        The server stopped sending us events because we fell behind; all
        before this frame has arrived, so ask for the rest.
        """
        self.out("* fell behind; catching up")
        self._resuming = "lagged"
        self.protocol.send("resume", session=self.session, last_seq=self.last_seq)

    def _requeue_unconfirmed(self):
        for text in reversed(self._unconfirmed):
            self._outbox.appendleft(("message", {"text": text}))
        self._unconfirmed.clear()

    def _retake_nick(self):
        if self.nick is not None and self.name != self.nick and not self._login_required:
            self._outbox.appendleft(("nick", {"name": self.nick}))

    def _ready(self):
        self.ready = True
        self._offline_since = self._next_attempt = None
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
        self.out(render({"type": "who", "names": names}))

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
        self._problem(
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
        if self.failed_lines:
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


@implementer(IHalfCloseableProtocol)
class ConsoleProtocol(LineReceiver):
    """
    stdin and stdout for a L{ChatClient}.

    It is half-closeable, so stdin ending leaves stdout open for the replies.
    """

    delimiter = b"\n"
    _discarding = False
    _leftover = b""

    def __init__(self, client, stderr=None):
        """
        @param client: the L{ChatClient}.
        @param stderr: where L{write_error} writes (C{sys.stderr}).
        """
        self.client = client
        self.stderr = sys.stderr if stderr is None else stderr
        self._closed = defer.Deferred()
        self.MAX_LENGTH = wire.DEFAULT_MAX_FRAME

    def lineReceived(self, line):
        """
        Pass a typed line on.  (Twisted API.)
        """
        text = line.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        self.client.line_received(text)

    def dataReceived(self, data):
        """
        Split stdin into lines, skipping the rest of an over-long line.
        (Twisted API.)
        """
        while data:
            if self._discarding:
                _, found, data = data.partition(self.delimiter)
                if not found:
                    return
                self._discarding = False
            self._leftover = b""
            LineReceiver.dataReceived(self, data)
            data, self._leftover = self._leftover, b""

    def lineLengthExceeded(self, line):
        """
        Refuse an over-long line but keep reading.  (Twisted API.)
        """
        self.client.line_too_long(self.MAX_LENGTH)
        _, found, rest = line.partition(self.delimiter)
        if found:
            self._leftover = rest
        else:
            self._discarding = True

    def _final_line(self):
        """
        What is left after the last newline when stdin ends is a line too.
        """
        rest, self._buffer = self._buffer, b""
        if rest and not self._discarding:
            if len(rest) > self.MAX_LENGTH:
                self.lineLengthExceeded(rest)
            else:
                self.lineReceived(rest)
        self._discarding = False

    def write_line(self, text):
        """
        Write one line to stdout.
        """
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace") + b"\n")

    def write_error(self, text):
        """
        Write one line to stderr, after what is waiting to go to stdout, so
        that a terminal (or C{2>&1}) shows both in the order they happened.
        """
        # StandardIO holds stdout's lines until the reactor finds it
        # writable; stderr is written at once.  Hand stdout what waits first
        # (what a full pipe does not take stays queued, as before).
        writer = getattr(self.transport, "_writer", None)
        if writer is not None and writer.connected and not writer.disconnecting:
            writer.doWrite()
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def readConnectionLost(self):
        """
        stdin ended.  (L{IHalfCloseableProtocol}.)
        """
        self._final_line()
        self.client.end_of_input()

    def writeConnectionLost(self):
        """
        stdout closed.  (L{IHalfCloseableProtocol}.)
        """
        self.client.output_lost()

    def connectionLost(self, reason):
        """
        stdio is closed.  (Twisted API.)
        """
        self._final_line()
        if not self._closed.called:
            self._closed.callback(None)
        if not self.client.finished:
            self.client.output_lost()

    def close(self):
        """
        Flush stdout and close stdio.

        @return: a Deferred that fires once it is closed.
        """
        d = defer.Deferred()
        self._closed.addBoth(lambda result: d.callback(None))
        if not self._closed.called:
            self.transport.loseConnection()
        return d


class Options(usage.Options):
    """
    Command-line options of the stdio client.
    """

    synopsis = (
        "Usage: python -m twisted_chat.client [--host HOST] [--port PORT] "
        "[--server HOST:PORT ...] [--name NAME [--login]] [--reconnect] "
        "[--tls [--cafile PATH | --insecure]]"
    )
    longdesc = "Chat on a twisted-chat server from a terminal or a pipe."

    optParameters = [
        ["host", None, "127.0.0.1", "The server's host name or address."],
        ["port", "p", wire.DEFAULT_PORT, "The server's port.", usage.portCoerce],
        ["name", "n", None, "The name to take once connected."],
        ["cafile", None, None, "With --tls: trust the CA certificates in this PEM "
         "file (a private CA) instead of the system's."],
    ]

    optFlags = [
        [
            "reconnect",
            "r",
            "When the connection is lost, reconnect (with backoff) and resume "
            "the session instead of exiting.",
        ],
        [
            "tls",
            None,
            "Connect with TLS and check the server's certificate and host name.",
        ],
        [
            "login",
            "l",
            "Log in as --name on a server with accounts; the password is asked "
            "for, or taken from TWISTED_CHAT_PASSWORD.",
        ],
        [
            "insecure",
            None,
            "With --tls: do NOT check the server's certificate (anyone on the "
            "way can read and change the chat).  For tests only.",
        ],
    ]

    def __init__(self):
        super().__init__()
        self["servers"] = []

    def opt_server(self, value):
        try:
            self["servers"].append(parse_server(value))
        except ValueError as e:
            raise usage.UsageError("--server: %s" % (e,))

    # One line: usage keeps a docstring's indentation in --help.
    opt_server.__doc__ = (
        "A server as HOST:PORT; give it several times for the nodes of a cluster: "
        "--reconnect then goes to the next one each time.")
    opt_s = opt_server

    def opt_help(self):
        """
        Display this help and exit.
        """
        super().opt_help()

    opt_h = opt_help

    def opt_version(self):
        """
        Display the version of twisted-chat and exit.
        """
        sys.stdout.write("twisted-chat %s\n" % (twisted_chat.__version__,))
        sys.exit(0)

    def postOptions(self):
        """
        Check the name before connecting.  (Twisted API.)
        """
        if not self["servers"]:
            self["servers"] = [(self["host"], self["port"])]
        if self["login"] and self["name"] is None:
            raise usage.UsageError("--login needs --name")
        if self["cafile"] is not None or self["insecure"]:
            self["tls"] = True
        if self["cafile"] is not None and self["insecure"]:
            raise usage.UsageError("--cafile and --insecure contradict each other")
        if self["tls"]:
            try:
                self["tls_options"] = tls_options(self["cafile"], self["insecure"])
            except ImportError as e:
                raise usage.UsageError(
                    "--tls needs the tls extra: pip install 'twisted-chat[tls]' (%s)" % (e,))
            except (OSError, ValueError) as e:
                raise usage.UsageError("--cafile: %s" % (e,))
        else:
            self["tls_options"] = None
        if self["name"] is not None:
            try:
                wire.check_nick(self["name"])
            except wire.ProtocolError as e:
                raise usage.UsageError("--name: %s" % (e.message,))


def parse_server(value):
    """
    C{(host, port)} from C{HOST:PORT}, C{[V6ADDR]:PORT} or C{HOST} (the
    default port).

    @raise ValueError: for anything else.
    """
    host, port = value, str(wire.DEFAULT_PORT)
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("%r is not HOST:PORT" % (value,))
        if rest:
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%r is not HOST:PORT" % (value,))
    return host, int(port)


def tls_options(cafile=None, insecure=False):
    """
    What C{--tls} connects with: a function of the host name giving the
    TLS client options for it.

    @param cafile: a PEM file of CA certificates to trust instead of the
        platform's.
    @param insecure: check nothing (C{--insecure}).
    @raise ImportError: without pyOpenSSL and service_identity.
    """
    import service_identity  # noqa: F401 (host name checks need it)
    from twisted.internet import ssl

    if insecure:
        options = ssl.CertificateOptions(verify=False)
        return lambda host: options
    trust = None
    if cafile is not None:
        with open(cafile, "rb") as f:
            pem = f.read()
        blocks = [
            block + b"-----END CERTIFICATE-----\n"
            for block in pem.split(b"-----END CERTIFICATE-----")
            if b"-----BEGIN CERTIFICATE-----" in block
        ]
        if not blocks:
            raise ValueError("%s holds no PEM certificate" % (cafile,))
        trust = ssl.trustRootFromCertificates(
            [ssl.Certificate.loadPEM(block) for block in blocks])
    return lambda host: ssl.optionsForClientTLS(host, trustRoot=trust)


def describe_connect_failure(reason):
    """
    Why a connection attempt failed, in words: never the repr of an object.
    """
    error = reason.value
    if isinstance(error, (defer.CancelledError, ConnectingCancelledError)):
        return "the attempt was cancelled"
    if isinstance(error, ConnectError) and isinstance(error.osError, int):
        return os.strerror(error.osError)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if all(isinstance(arg, (str, int, float)) for arg in error.args):
        text = str(error).rstrip(".")
        if text:
            return text
    return type(error).__name__


def _mismatched(error):
    """
    The names a certificate was checked for, from a service_identity
    error.
    """
    names = []
    for mismatch in getattr(error, "errors", []):
        wanted = getattr(mismatch, "mismatched_id", None)
        for field in ("hostname", "ip", "pattern"):
            value = getattr(wanted, field, None)
            if value is not None:
                if isinstance(value, bytes):
                    value = value.decode("ascii", "replace")
                names.append(sanitize(str(value)))
                break
    return names


def _openssl_reasons(error):
    """
    The reasons in a pyOpenSSL error (a list of (library, function, reason)).
    """
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(entry, tuple) and entry and isinstance(entry[-1], str) and entry[-1]:
            reasons.append(entry[-1])
    return "; ".join(reasons) or type(error).__name__


def describe_tls_failure(reason):
    """
    A line saying why TLS failed, from a connection's end reason; L{None}
    if it did not end because of TLS.
    """
    error = reason.value
    module = type(error).__module__ or ""
    if module.startswith("service_identity"):
        names = _mismatched(error)
        if names:
            return "the server's certificate is not for this host name (%s)" % (
                ", ".join(names),)
        return "the server's certificate is not for this host name"
    if not module.startswith("OpenSSL"):
        return None
    text = _openssl_reasons(error)
    if "certificate verify failed" in text:
        return ("the server's certificate is not trusted (certificate verify "
                "failed); --cafile trusts a private CA")
    if "wrong version number" in text or "record layer failure" in text:
        return "TLS handshake failed: the server does not speak TLS on this port"
    return "TLS handshake failed: %s" % (sanitize(text),)


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """
    An endpoint that goes to the next of several servers on each attempt and
    tells the client about each failed one, for L{ClientService}, which
    otherwise only retries.
    """

    def __init__(self, reactor, servers, client, tls=None, endpoint=HostnameEndpoint):
        """
        @param tls: with C{--tls}, what L{tls_options} returned.
        @param endpoint: makes the endpoint for C{(reactor, host, port)}.
        """
        self._reactor = reactor
        self._servers = servers
        self._next = 0
        self._client = client
        self._tls = tls
        self._endpoint = endpoint

    def connect(self, factory):
        host, port = self._servers[self._next % len(self._servers)]
        self._next += 1
        self._client.address = format_host_port(host, port)
        endpoint = self._endpoint(self._reactor, host, port)
        if self._tls is not None:
            endpoint = wrapClientTLS(self._tls(host), endpoint)
        d = endpoint.connect(factory)

        def failed(failure):
            self._client.connection_failed(failure)
            return failure

        return d.addErrback(failed)


class _ClientFactory(Factory):
    """
    Builds a L{ChatClientProtocol} for each connection of one L{ChatClient}.
    """

    def __init__(self, clock, client):
        self.clock = clock
        self.client = client

    def buildProtocol(self, addr):
        protocol = ChatClientProtocol(self.clock, self.client)
        protocol.factory = self
        return protocol


#: Where --login takes the password from, if set; else it is asked for.
PASSWORD_VARIABLE = "TWISTED_CHAT_PASSWORD"


def ask_password(name):
    """
    Ask for C{name}'s password on the terminal (before anything is
    connected, so that nothing waits on the reactor meanwhile).
    """
    try:
        return getpass.getpass("password for %s: " % (name,))
    except (EOFError, KeyboardInterrupt):
        return None


def _write_err(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _is_terminal(stream):
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def main(reactor, *argv, ask=None):
    """
    Run the client until the session ends.  (L{react} API.)

    @param ask: with C{--login} and no C{TWISTED_CHAT_PASSWORD}, what gives
        the password: L{run} asks for it before the reactor starts.

    @return: a Deferred that fires once, when the session is over; it fails
        with L{SystemExit} for a non-zero exit status (the C{EXIT_*}
        constants).
    """
    from twisted.internet.stdio import StandardIO

    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        _write_err("twisted-chat: %s" % (e,))
        _write_err("try --help for the options")
        return defer.fail(SystemExit(EXIT_USAGE))

    password = None
    if options["login"]:
        password = os.environ.get(PASSWORD_VARIABLE)
        if password is None and ask is not None:
            password = ask(options["name"])
        if not password:
            _write_err("twisted-chat: no password given")
            return defer.fail(SystemExit(EXIT_USAGE))
    servers = options["servers"]
    address = format_host_port(*servers[0])
    console = ConsoleProtocol(None)
    client = ChatClient(
        reactor,
        address,
        console.write_line,
        console.write_error,
        nick=options["name"],
        reconnect=bool(options["reconnect"]),
        password=password,
        batch=not _is_terminal(sys.stdin),
        tls=options["tls_options"] is not None,
    )
    console.client = client
    stdio = StandardIO(console, reactor=reactor)
    client.pause_input = stdio.pauseProducing
    client.resume_input = stdio.resumeProducing

    if options["insecure"]:
        _write_err(
            "twisted-chat: WARNING: --insecure: the server's certificate is NOT "
            "checked; anyone on the way can read and change this chat")
    endpoint = _ReportingEndpoint(reactor, servers, client, options["tls_options"])
    factory = _ClientFactory(reactor, client)
    if options["reconnect"]:
        service = ClientService(
            endpoint,
            factory,
            retryPolicy=client.retry_delay,
            clock=reactor,
        )
        service.startService()
        client.done.addBoth(
            lambda result: service.stopService().addBoth(lambda _: result)
        )
    else:
        # The endpoint has told the client of a failure.
        endpoint.connect(factory).addErrback(lambda failure: None)
    reactor.addSystemEventTrigger("before", "shutdown", client.interrupt)

    def close_console(status):
        d = console.close()
        d.addCallback(lambda _: status)
        return d

    def exit_with(status):
        if status:
            raise SystemExit(status)

    return client.done.addCallback(close_console).addCallback(exit_with)


def run():
    """
    Console-script entry point.
    """
    from twisted.internet.task import react

    argv = sys.argv[1:]
    answer = {}
    if PASSWORD_VARIABLE not in os.environ:
        # Ask now, before the reactor runs: getpass blocks.
        options = Options()
        try:
            options.parseOptions(argv)
        except usage.UsageError:
            pass  # main says so
        else:
            if options["login"]:
                answer[options["name"]] = ask_password(options["name"])
    react(lambda reactor, *args: main(reactor, *args, ask=answer.get), argv)
