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
from twisted_chat.client.rooms import (
    LOBBY,
    MEMBERSHIP_ENDS,
    Room,
    pick_current,
    room_key,
    room_of,
    same_room,
)
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


def _request_id(message):
    """
    The C{id} a server frame echoes, if it is one of ours (a whole
    number), else L{None}.
    """
    request_id = message.get("id")
    return request_id if wire.is_whole(request_id) else None


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

    def refused(message, failed=1):
        """
        An C{error} frame: the server refused a line we sent (C{failed}
        lines; 0 when it refused something the session did by itself).
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
    token, the seq of the last event it saw in each room and the dseq of
    the last direct message, so that after falling behind (C{lagged}) or,
    with C{reconnect}, after losing the connection, it can resume and miss
    nothing.  Once the input has ended (L{end_of_input}), it waits for the
    answers to what was sent, then leaves.

    Rooms: every session is in the lobby from its welcome on.  Two rooms
    are "current": L{typing_room}, where lines typed now go (a C{/join}
    changes it at once, so that the lines typed after it go to the new
    room, in batch mode too), and L{current}, the room whose lines are
    shown as today's (it changes in turn, when the server has answered).
    Until a room is joined, the outbox waits: a line for a room the join
    of which was refused is not sent anywhere else.

    @ivar done: fires with the exit status once the session is over.
    @ivar name: our name, once welcomed.
    @ivar session: our session token.
    @ivar last_seq: the seq of the last event we saw in the lobby.
    @ivar rooms: the rooms we are in (the server has said so), by
        L{room_key}, in the order they were joined: L{Room}s.
    @ivar current: the room shown as the current one, or L{None}.
    @ivar typing_room: the room a line typed now goes to, or L{None}.
    @ivar last_dseq: the dseq of the last direct message we saw, or L{None}
        (a server without direct messages).
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
    current = LOBBY
    last_dseq = None
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
        # Pages of who answers, by room key; and of the rooms list.
        self._who = {}
        self._room_list = []
        self._drain_call = None
        # Rooms: the lobby's Room stays, for the resume's last_seq, even
        # when we have left it.
        self._lobby = Room(LOBBY)
        self.rooms = {}
        # The rooms as the typed lines leave them (key -> name), in the
        # order they were joined; see typing_room.
        self._planned = {LOBBY: LOBBY}
        self.typing_room = LOBBY
        # Whether the server has direct messages (its welcome has dseq).
        self._direct_known = False
        # The join in flight (the outbox waits for its answer), if one is:
        # (id, room, whether it makes the room current).
        self._joining = None
        # Parts sent and not answered: id -> room.
        self._parts = {}
        # Ids of requests answered by the heartbeat_ack that follows them
        # (or an error): topic and moderation, which the server may answer
        # with nothing else.
        self._barriers = set()
        # After a resume that failed: the rooms we were in, joined again
        # (key -> Room), so that what was missed in them is reported.
        self._rejoining = {}
        # The id of the rename in flight, if one is; and whether the outbox
        # waits for answers before it can go on (see _pump).
        self._renaming = None
        self._renaming_to = None
        self._request_ids = 0
        self._held_for_answers = False
        # "reconnect" or "lagged" while a resume is under way.
        self._resuming = None
        self._new_session = None
        self._new_name = None
        self._welcome_seq = None
        self._welcome_dseq = None
        self._reconnect_after = None
        self.backoff = backoffPolicy(
            initialDelay=RETRY_INITIAL, maxDelay=RETRY_MAX - 1.0, factor=2.0
        )

    @property
    def last_seq(self):
        """
        The seq of the last event we saw in the lobby.
        """
        return self._lobby.seq

    @last_seq.setter
    def last_seq(self, seq):
        self._lobby.seq = seq

    # What the user asks for.

    def enqueue(self, type, **fields):
        """
        Send a request in its turn: after what waits before it, and
        messages at the server's pace.

        @param type: a client frame's type (C{message}, C{nick}, C{who},
            C{quit}, C{join}, C{part}, C{rooms}, C{topic}, C{kick},
            C{ban}, C{unban}, C{op}), or C{show_topic} (show the topic of
            C{room} in its turn).
        @param fields: the frame's members; those starting with C{_} are
            the client's own: a message's C{_room} is the room it was typed
            for (it is sent only once we are in that room).
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

    def say(self, text):
        """
        A typed line: to the room lines go to now, in its turn.

        @return: L{False} if we are in no room, and nothing was queued.
        """
        if self.typing_room is None:
            return False
        self.enqueue("message", text=text, _room=self.typing_room)
        return True

    def join(self, room):
        """
        Join C{room}; the lines typed from now on go there.
        """
        self._planned.pop(room_key(room), None)
        self._planned[room_key(room)] = room
        self.typing_room = room
        self.enqueue("join", room=room, _switch=True)

    def part(self, room):
        """
        Leave C{room}; if lines went there, they go to the lobby from now
        on if we are in it, else to the room joined last.
        """
        self._planned.pop(room_key(room), None)
        if same_room(room, self.typing_room):
            self.typing_room = pick_current(self._planned.values())
        self.enqueue("part", room=room)

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

    #: Requests answered only by the heartbeat_ack sent right after them
    #: (or by an error): the server may answer them with nothing else (an
    #: unban of someone not banned; a kick in a room over the presence
    #: limit).
    _BARRIERED = frozenset(["topic", "kick", "ban", "unban", "op"])

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
            if self._joining is not None:
                # Nothing goes before we know whether we are in the room.
                self._held_for_answers = True
                break
            shown = problem = None
            if type == "problem":
                problem = fields["line"]
            elif type == "message":
                problem = self._unsendable(fields)
            elif type == "show_topic":
                shown, problem = self._topic_line(fields["room"])
            if problem is not None or shown is not None:
                if self.outstanding:
                    # Shown in its turn: after the answers to the lines
                    # before it (each answer pumps again).
                    self._held_for_answers = True
                    break
                outbox.popleft()
                if problem is not None:
                    self.view.problem(problem, failed=1)
                else:
                    self.view.show_event(shown)
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
            self._send_request(type, fields)
        if self._input_paused and len(outbox) <= OUTBOX_LOW:
            self._input_paused = False
            self.resume_input()
        self._maybe_finish()

    def _send_request(self, type, fields):
        """
        Send one request from the outbox, and note what will answer it.
        """
        self.outstanding += 1
        frame = {key: value for key, value in fields.items() if not key.startswith("_")}
        if type == "message":
            self._unconfirmed.append(fields)
            room = fields.get("_room")
            if room is not None and not same_room(room, LOBBY):
                frame["room"] = room
        elif type in ("nick", "join", "part") or type in self._BARRIERED:
            self._request_ids += 1
            frame["id"] = request_id = self._request_ids
            if type == "nick":
                self._renaming = request_id
                if not self.rooms:
                    # No room announces it: the ack of a heartbeat right
                    # after it says it is done.
                    self._renaming_to = fields["name"]
                    self.protocol.send(type, **frame)
                    self.protocol.send("heartbeat", id=request_id)
                    return
            elif type == "join":
                self._joining = (request_id, fields["room"], fields.get("_switch", False))
            elif type == "part":
                self._parts[request_id] = fields["room"]
            else:
                self._barriers.add(request_id)
                self.protocol.send(type, **frame)
                # The server answers frames in order: its ack comes after
                # whatever the request gives.
                self.protocol.send("heartbeat", id=request_id)
                return
        self.protocol.send(type, **frame)

    def _unsendable(self, fields):
        """
        Why a message from the outbox cannot be sent, or L{None}.
        """
        if len(fields["text"]) > self.max_text:
            return too_long_line(fields["text"], self.max_text)
        if "to" in fields and not self._direct_known:
            return "! not sent: this server has no direct messages"
        room = fields.get("_room")
        if room is not None and room_key(room) not in self.rooms:
            return "! not sent: you are not in #%s" % (sanitize(room),)
        return None

    def _topic_line(self, room):
        """
        What C{/topic} shows in its turn: the topic of C{room} (a
        C{topic} frame without C{by}), or a problem.
        """
        known = self.rooms.get(room_key(room))
        if known is None:
            return None, "! you are not in #%s" % (sanitize(room),)
        return {"type": "topic", "room": known.name, "topic": known.topic}, None

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
    #                  max_frame, max_text, rate?, login?, dseq?}
    #                                   -> a new session, or resume the old
    #                                      one on a new connection
    #   logged_in     {name}            -> the login is over: ready
    #   resumed       {replayed, name, rooms?, direct?}
    #                                   -> the resume is over (after its
    #                                      replayed events)
    #   lagged        {missed_from?, rooms?}
    #                                   -> resume on this connection
    #   error         {code, message, id?, room?, direct?}
    #                                   -> the login refused (the end), the
    #                                      resume failed (a new session; for
    #                                      one room or the direct stream,
    #                                      what was missed is reported), or
    #                                      a request refused (shown)
    #   message       {seq, from, text, time, room?}
    #                                   -> shown; our own answers a request
    #   direct        {dseq, from, to, text, time}
    #                                   -> shown; our own answers a request
    #   nick          {seq, old, new, room?}
    #                                   -> shown; our own answers a request
    #   who           {names, ops?, room?, more?}
    #                                   -> pages gathered, one line shown
    #   rooms         {rooms, more?}    -> pages gathered, then shown
    #   joined        {room, seq, topic, members, presence}
    #                                   -> we are in the room; answers a join
    #   parted        {room, seq}       -> we left the room; answers a part
    #   leave         {seq, name, reason, room?, by?, message?}
    #                                   -> shown; our own part or kick ends
    #                                      our membership
    #   topic         {room, seq, by, topic}
    #                                   -> shown; the room's topic follows
    #   heartbeat_ack {ts?, now, id?}   -> with a request's id, answers it
    #   shutdown      {message, reconnect_after?}
    #                                   -> shown; the close that follows is
    #                                      expected
    #   join, ban, unban, op, and any other type
    #                                   -> handle_event: shown if the view
    #                                      shows it
    #
    # Every frame but welcome, logged_in, resumed, lagged, joined, direct
    # and the login's and resume's errors is an event in its room's seq
    # order (L{_in_order}): one seen already is dropped, a gap is reported.
    # direct frames follow their own dseq likewise.  (ChatClientProtocol
    # measures heartbeat round trips and takes the welcome's limits
    # itself.)
    _HANDLED = frozenset([
        "welcome", "logged_in", "resumed", "lagged", "error", "message", "nick", "who",
        "shutdown", "join", "leave", "heartbeat_ack", "direct", "rooms", "joined", "parted",
        "topic", "ban", "unban", "op",
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
        dseq = message.get("dseq")
        dseq = dseq if wire.is_whole(dseq) else None
        if self.welcomed_once and self.session is not None and self.last_seq is not None:
            self._resume_session(message, seq, dseq)
        else:
            self._start_session(message, seq, dseq)

    def _resume_session(self, message, seq, dseq):
        """
        A new connection for an old session: pick up where we were (the
        welcome's session is ours if the resume fails).
        """
        self._resuming = "reconnect"
        self._welcome_seq = seq
        self._welcome_dseq = dseq
        self._new_session = message.get("session")
        self._new_name = message.get("name")
        self._send_resume()

    def _send_resume(self):
        """
        Ask for everything after what we saw: in the lobby (C{last_seq}),
        in each other room (C{rooms}) and of the direct messages
        (C{last_dseq}).  A session that never left the lobby sends
        today's frame.
        """
        fields = {"session": self.session, "last_seq": self.last_seq}
        rooms = {
            room.name: room.seq for key, room in self.rooms.items()
            if key != LOBBY and wire.is_whole(room.seq)
        }
        if rooms:
            fields["rooms"] = rooms
        if self._direct_known and self.last_dseq is not None:
            fields["last_dseq"] = self.last_dseq
        self.protocol.send("resume", **fields)

    def _start_session(self, message, seq, dseq):
        """
        The first welcome: the session it gives is ours; log in, or take
        our name, and start sending.
        """
        self.welcomed_once = True
        self.session = message.get("session")
        self.last_seq = seq
        self.rooms = {LOBBY: self._lobby}
        self.current = LOBBY
        self._direct_known = dseq is not None
        self.last_dseq = dseq
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
        self._requeue_requests()
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
        self._send_resume()

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
            if "room" in message or message.get("direct") is True:
                self._part_not_resumed(message)
            else:
                self._resume_failed(message)
            return
        if not self._in_order(message):
            return
        request_id = _request_id(message)
        if (self._resuming and request_id is None and isinstance(message.get("room"), str)
                and message.get("code") in (wire.BANNED, wire.TOO_MANY_ROOMS)):
            # The resume could not put us back in that room: no line of
            # ours was refused.
            self.view.refused(message, failed=0)
            self._left(message["room"])
            self._next_after_answers()
            return
        # Whatever it answers, something we sent was refused.
        self._answered()
        self.view.refused(message)
        if request_id is None:
            pass
        elif request_id == self._renaming:
            self._renaming = None
        elif self._joining is not None and request_id == self._joining[0]:
            self._join_refused()
        elif request_id in self._barriers:
            self._barriers.discard(request_id)
        elif request_id in self._parts:
            self._part_refused(self._parts.pop(request_id))
        self._next_after_answers()

    def handle_message(self, message):
        """
        A chat message; our own answers the oldest we sent.
        """
        if not self._in_order(message):
            return
        if message.get("from") == self.name:
            self._answered()
            self._confirm(("room", room_key(room_of(message))), message.get("text"))
        self._show(message)

    def handle_direct(self, message):
        """
        A direct message, to us or (our own copy) from us; ours answers
        the one we sent.
        """
        dseq = message.get("dseq")
        if wire.is_whole(dseq) and self.last_dseq is not None:
            if dseq <= self.last_dseq:
                return
            if dseq > self.last_dseq + 1:
                self._missed_direct(self.last_dseq + 1, dseq - 1)
        if wire.is_whole(dseq):
            self.last_dseq = dseq
        if message.get("from") == self.name:
            self._answered()
            to = message.get("to")
            self._confirm(("to", room_key(to) if isinstance(to, str) else to),
                          message.get("text"))
        self._show(message)

    def handle_nick(self, message):
        """
        A rename; ours answers our request, and our name follows.  (It
        comes in every room we are in: the first answers.)
        """
        if not self._in_order(message):
            return
        if message.get("old") == self.name:
            self.name = message.get("new")
            if self.nick is not None:
                # The name to take again after a resume is this one now.
                self.nick = self.name
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

    def handle_rooms(self, message):
        """
        A page of the answer to /rooms; the last one shows them all.
        """
        rooms = message.get("rooms")
        if isinstance(rooms, list):
            self._room_list.extend(room for room in rooms if isinstance(room, dict))
        if message.get("more"):
            return
        rooms, self._room_list = self._room_list, []
        self._answered()
        self._show({"type": "rooms", "rooms": rooms})

    def handle_joined(self, message):
        """
        We are in a room: the answer to our join (it becomes current if
        the user asked for it), a room the server joined us to, or, after
        a resume, a room whose missed events were not replayed.
        """
        name = message.get("room")
        if not isinstance(name, str):
            self.bad_frame("joined without a room")
            return
        key = room_key(name)
        joining = self._joining
        answers = joining is not None and (
            _request_id(message) == joining[0]
            if "id" in message else same_room(joining[1], name))
        room = self.rooms.get(key)
        fresh = False
        if room is None:
            room = self._rejoining.pop(key, None)
            if room is None:
                room = self._lobby if key == LOBBY else Room(name)
                fresh = True
            self.rooms[key] = room
        elif answers:
            # It is the room joined last now.
            self.rooms[key] = self.rooms.pop(key)
        room.name = name
        seq = message.get("seq")
        if wire.is_whole(seq):
            if not fresh and room.seq is not None and seq > room.seq:
                self._missed(room.seq + 1, seq, name)
            room.seq = seq
        topic = message.get("topic")
        room.topic = topic if isinstance(topic, str) else ""
        if key not in self._planned:
            self._planned[key] = name
        if answers:
            self._joining = None
            if joining[2]:
                self.current = name
            self._answered()
        if answers or fresh:
            self._show(message)
        else:
            self._next_after_answers()

    def handle_parted(self, message):
        """
        We have left a room (whose presence is off: no leave event came);
        the answer to our part, or a kick.
        """
        name = message.get("room")
        if not isinstance(name, str):
            self.bad_frame("parted without a room")
            return
        room = self.rooms.get(room_key(name))
        seq = message.get("seq")
        if room is not None and room.seq is not None and wire.is_whole(seq) and seq > room.seq:
            self._missed(room.seq + 1, seq, name)
        self.view.show_event(message)
        self._left(name)
        self._next_after_answers()

    def handle_leave(self, message):
        """
        Someone left a room; if it is us (a part, or a kick), we are no
        longer in it.  (Our own leave for another reason is our old
        connection's, replayed: the resume keeps the membership.)
        """
        if not self._in_order(message):
            return
        self.view.show_event(message)
        if message.get("name") == self.name and message.get("reason") in MEMBERSHIP_ENDS:
            self._left(room_of(message))
        self._next_after_answers()

    def handle_topic(self, message):
        """
        A room's topic was set.
        """
        if not self._in_order(message):
            return
        room = self.rooms.get(room_key(room_of(message)))
        topic = message.get("topic")
        if room is not None:
            room.topic = topic if isinstance(topic, str) else ""
        self._show(message)

    def handle_heartbeat_ack(self, message):
        """
        The answer to a heartbeat: to one of ours, or to the one that
        follows a request that may get no other answer.
        """
        request_id = _request_id(message)
        if request_id is not None and request_id in self._barriers:
            self._barriers.discard(request_id)
            self._answered()
        elif request_id is not None and request_id == self._renaming:
            # Renamed while in no room (see _send_request).
            self.name, self._renaming = self._renaming_to, None
            self._answered()
            self.view.show("* you are now %s" % (sanitize(self.name),))
        self.handle_event(message)

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
        join, ban, unban, op, heartbeat_ack, and types we do not know:
        shown if the view shows them.
        """
        if self._in_order(message):
            self._show(message)

    handle_join = handle_ban = handle_unban = handle_op = handle_event

    def _in_order(self, message):
        """
        Follow the seq of events, room by room: C{False} for one seen
        already (a replay overlapping what we had); a gap is reported as
        missed events.
        """
        seq = message.get("seq")
        if not wire.is_whole(seq):
            return True
        name = room_of(message)
        room = self.rooms.get(room_key(name))
        if room is None and same_room(name, LOBBY):
            room = self._lobby
        if room is None:
            return True
        if room.seq is not None and seq <= room.seq:
            return False
        if room.seq is not None and seq > room.seq + 1:
            self._missed(room.seq + 1, seq - 1, name)
        room.seq = seq
        return True

    def _left(self, name):
        """
        We are no longer in room C{name}: it answers our part, or we were
        kicked (then the typed lines no longer go there either).  If it
        was current, the lobby is now, if we are in it, else the room
        joined last.
        """
        key = room_key(name)
        self.rooms.pop(key, None)
        self._rejoining.pop(key, None)
        for request_id, room in list(self._parts.items()):
            if same_room(room, name):
                del self._parts[request_id]
                self._answered()
                break
        else:
            self._planned.pop(key, None)
            if same_room(self.typing_room, name):
                self.typing_room = pick_current(self._planned.values())
        self._current_gone(name)

    def _current_gone(self, name):
        """
        If room C{name} was current, the lobby is now, if we are in it,
        else the room joined last; say which.
        """
        if same_room(self.current, name):
            self.current = pick_current(room.name for room in self.rooms.values())
            if self.current is None:
                self.view.show("* you are in no room now; /join one")
            else:
                self.view.show("* current room: #%s" % (sanitize(self.current),))

    def _join_refused(self):
        """
        The join in flight was refused: unless we are in that room
        already, the typed lines no longer go there.
        """
        _, name, _ = self._joining
        self._joining = None
        key = room_key(name)
        if key in self.rooms:
            return
        self._planned.pop(key, None)
        if same_room(self.typing_room, name):
            self.typing_room = pick_current(self._planned.values())
        if self._rejoining.pop(key, None) is not None:
            # After a failed resume: the room we were in is lost.
            self._current_gone(name)

    def _part_refused(self, name):
        """
        A part was refused: if we are in that room, we still are; if the
        typed lines had nowhere to go, they go there again.
        """
        key = room_key(name)
        if key in self.rooms and key not in self._planned:
            self._planned[key] = self.rooms[key].name
            if self.typing_room is None:
                self.typing_room = pick_current(self._planned.values())

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

    def _missed(self, first, last, room=LOBBY):
        """
        Events C{first} to C{last} of C{room} never reached us; the line
        names the room unless it is the current one.
        """
        self.missed_events += last - first + 1
        where = "" if same_room(room, self.current) else "#%s: " % (sanitize(room),)
        self.view.problem("! %smissed events %d..%d" % (where, first, last))

    def _missed_direct(self, first, last):
        """
        Direct messages C{first} to C{last} (their dseq) never reached us.
        """
        self.missed_events += last - first + 1
        self.view.problem("! missed direct messages %d..%d" % (first, last))

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
        in_lobby = LOBBY in self.rooms
        if (
            in_lobby
            and self.last_seq is not None
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
        self.last_dseq = self._welcome_dseq
        self._direct_known = self._welcome_dseq is not None
        # The new session is in the lobby only: join our rooms again (what
        # we missed in each is reported when it is joined), and leave the
        # lobby again if we had.
        self._requeue_requests()
        rejoin = [("join", {"room": room.name})
                  for key, room in self.rooms.items() if key != LOBBY]
        if not in_lobby:
            rejoin.append(("part", {"room": LOBBY}))
        self._outbox.extendleft(reversed(rejoin))
        self._rejoining = {key: room for key, room in self.rooms.items() if key != LOBBY}
        self.rooms = {LOBBY: self._lobby}
        if self._login_required:
            self._log_in()
            return
        self._retake_nick()
        self._ready()

    def _requeue_requests(self):
        """
        The join and parts that were under way when the connection was
        lost, and did not happen: send them again, first.
        """
        requests = []
        if self._joining is not None:
            _, room, switch = self._joining
            if room_key(room) not in self.rooms:
                requests.append(("join", {"room": room, "_switch": switch}))
        for room in self._parts.values():
            if room_key(room) in self.rooms:
                requests.append(("part", {"room": room}))
        self._outbox.extendleft(reversed(requests))

    def _requeue_unconfirmed(self):
        self._outbox.extendleft(("message", fields) for fields in reversed(self._unconfirmed))
        self._unconfirmed.clear()

    def _confirm(self, target, text):
        """
        Our message to C{target} (C{("room", key)} or C{("to", key)})
        came back: it is no longer unconfirmed (the first one with that
        text, else the oldest).
        """
        for fields in self._unconfirmed:
            if "to" in fields:
                sent_to = ("to", room_key(fields["to"]))
            else:
                sent_to = ("room", room_key(fields.get("_room", LOBBY)))
            if sent_to == target and fields["text"] == text:
                self._unconfirmed.remove(fields)
                return
        if self._unconfirmed:
            self._unconfirmed.popleft()

    def _part_not_resumed(self, message):
        """
        The resume could not replay one room (its joined follows, with
        the current seq: what was missed is reported then) or the direct
        messages: those before the oldest the server has are lost.
        """
        if "room" in message:
            return
        oldest = message.get("oldest_dseq")
        if (wire.is_whole(oldest) and self.last_dseq is not None
                and oldest - 1 > self.last_dseq):
            self._missed_direct(self.last_dseq + 1, oldest - 1)
            self.last_dseq = oldest - 1
        else:
            self.view.problem("! some direct messages were missed (the server could not "
                              "replay them)")

    def _retake_nick(self):
        if self.nick is not None and self.name != self.nick and not self._login_required:
            self._outbox.appendleft(("nick", {"name": self.nick}))

    def _ready(self):
        self.ready = True
        self.offline_since = self.next_attempt = None
        self.outstanding = 0
        self._renaming = None
        self._joining = None
        self._parts.clear()
        self._barriers.clear()
        self._who.clear()
        self._room_list = []
        self._pump()
        self._maybe_finish()

    def _who_page(self, message):
        key = room_key(room_of(message))
        names, ops = self._who.setdefault(key, ([], []))
        for field, gathered in [("names", names), ("ops", ops)]:
            page = message.get(field)
            if isinstance(page, list):
                gathered.extend(page)
        if message.get("more"):
            return
        del self._who[key]
        self._answered()
        answer = {"type": "who", "names": names}
        if "room" in message:
            answer["room"] = message["room"]
        if ops:
            answer["ops"] = ops
        self.view.show_event(answer)

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
