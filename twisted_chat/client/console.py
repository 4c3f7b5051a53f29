# -*- test-case-name: tests.unit.test_client -*-
"""
The client's console: what the user types and sees.

 - L{render}, L{rooms_lines} and L{shutdown_line} turn the server's frames
   into lines: the current room's as before rooms, another room's with its
   name (C{#dev > alice: hi}, C{* #dev: bob joined}), direct messages as
   C{*alice* hi} and, our own copy, C{-> *bob* hi}.
 - L{Console} is the user's side of a L{ChatSession}: the commands
   (C{do_<command>}), the lines it shows, and where problems go in batch
   mode.
 - L{ChatClient} is a session with its console, as one object.
 - L{ConsoleProtocol} connects a L{ChatClient} to stdin and stdout.

Text that came from the network is sanitized before it reaches the terminal.
"""

import re
import statistics
import sys

from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from twisted_chat import wire
from twisted_chat.client.protocol import ChatSession, IChatView, too_long_line
from twisted_chat.client.rooms import LOBBY, is_name, room_of, same_room
from twisted_chat.wire import sanitize

HELP = """\
* type a line to send it to the current room; a line starting with / is a command:
*   /join ROOM           join ROOM (made if new) and make it the current room
*   /part [ROOM]         leave ROOM (the current room)
*   /rooms [PREFIX]      list the rooms (those whose names start with PREFIX)
*   /msg NAME TEXT       send TEXT to NAME only
*   /who [ROOM]          list who is in ROOM (the current room; @ operators)
*   /topic [TEXT]        set the current room's topic (without TEXT: show it)
*   /kick NAME [REASON]  operators: put NAME out of the current room
*   /ban NAME            operators: keep NAME out of the current room
*   /unban NAME          operators: let NAME in again
*   /op NAME             operators: make NAME an operator too
*   /nick NAME           change your name
*   /status              the connection: server, round trip, seq, reconnections
*   /exit [TEXT]         leave (TEXT is your farewell)
*   /help                this help
*   //TEXT               send a line that starts with /"""

#: The room-scoped events: without a "room" member, they are the lobby's.
_ROOM_EVENTS = frozenset(["message", "join", "leave", "nick", "topic", "ban", "unban", "op"])

#: A plain line, or a command for the current room, with no room to go to.
NO_ROOM = "! you are in no room; /join one"

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


def _members(count):
    if not isinstance(count, int) or isinstance(count, bool):
        return "?"
    return "1 member" if count == 1 else "%d members" % (count,)


def render(message, current=LOBBY, name=None):
    """
    The line the user sees for a message from the server, or L{None} for
    messages that show nothing (heartbeat acks, unknown types).

    The current room's lines look as they did before rooms; another
    room's carry its name: C{#dev > alice: hi}, C{* #dev: bob joined},
    C{! #dev: ...}.

    @param current: the current room, or L{None} (in no room).
    @param name: our name, which tells our own copy of a direct message.
    """
    kind = message.get("type")
    get = lambda field: sanitize(message.get(field, "?"))
    line = _render(kind, message, get, current, name)
    if line is None:
        return None
    if kind in _ROOM_EVENTS or (kind == "error" and "room" in message):
        room = room_of(message)
        if not same_room(room, current):
            tag = "#" + sanitize(room)
            if line.startswith("> "):
                return tag + " " + line
            return "%s %s: %s" % (line[0], tag, line[2:])
    return line


def _render(kind, message, get, current, name):
    """
    L{render}'s line, as in the current room.
    """
    if kind == "message":
        return "> %s: %s" % (get("from"), get("text"))
    if kind == "direct":
        if name is not None and message.get("from") == name:
            return "-> *%s* %s" % (get("to"), get("text"))
        return "*%s* %s" % (get("from"), get("text"))
    if kind == "join":
        return "* %s joined" % (get("name"),)
    if kind == "leave":
        reason = get("reason")
        if isinstance(message.get("by"), str):
            reason = "%s by %s" % (reason, get("by"))
        if message.get("message") is not None:
            reason = "%s: %s" % (reason, get("message"))
        return "* %s left (%s)" % (get("name"), reason)
    if kind == "nick":
        return "* %s is now %s" % (get("old"), get("new"))
    if kind == "who":
        return _who_line(message, current)
    if kind == "topic":
        topic = message.get("topic")
        if "by" not in message:
            # Not an event: what /topic shows.
            return "* topic: %s" % (sanitize(topic),) if topic else "* no topic"
        if topic:
            return "* topic set by %s: %s" % (get("by"), sanitize(topic))
        return "* topic cleared by %s" % (get("by"),)
    if kind == "ban":
        return "* %s was banned by %s" % (get("name"), get("by"))
    if kind == "unban":
        return "* %s was unbanned by %s" % (get("name"), get("by"))
    if kind == "op":
        if isinstance(message.get("by"), str):
            return "* %s was made an operator by %s" % (get("name"), get("by"))
        return "* %s became an operator" % (get("name"),)
    if kind == "joined":
        line = "* you joined #%s (%s)" % (get("room"), _members(message.get("members")))
        if message.get("topic"):
            line += "; topic: %s" % (get("topic"),)
        return line
    if kind == "parted":
        return "* you left #%s" % (get("room"),)
    if kind == "error":
        return "! %s" % (get("message"),)
    if kind == "shutdown":
        return shutdown_line(message.get("message"))
    return None


def _who_line(message, current):
    """
    The answer to /who: its names, operators marked C{@}; for a room that
    is not the current one, its name.
    """
    names = message.get("names")
    if not isinstance(names, list):
        names = []
    ops = message.get("ops")
    ops = {op for op in ops if isinstance(op, str)} if isinstance(ops, list) else set()
    shown = ", ".join(
        ("@" if isinstance(name, str) and name in ops else "") + sanitize(name)
        for name in names)
    room = room_of(message)
    if same_room(room, current):
        return "* online: %s" % (shown,)
    return "* in #%s: %s" % (sanitize(room), shown)


def rooms_lines(rooms):
    """
    The lines of the answer to /rooms: one for each room (its name, how
    many are in it, its topic).
    """
    if not rooms:
        return ["* no rooms"]
    lines = ["* rooms:"]
    for room in rooms:
        line = "*   #%s (%s)" % (sanitize(room.get("room", "?")), _members(room.get("members")))
        if room.get("topic"):
            line += ": %s" % (sanitize(room["topic"]),)
        lines.append(line)
    return lines


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


@implementer(IChatView)
class Console:
    """
    The chat as the user sees it: typed lines in, rendered lines out.

    A line starting with C{/} is a command, run by C{do_<command>}; any
    other line is a message to the current room.  In batch mode (stdin is not a terminal) the
    lines about problems (C{! ...}) go to stderr instead of stdout, and a
    line that was refused or could not be sent ends the session with
    L{EXIT_REFUSED}.  Problems with what was read before the connection was
    ready are reported in their turn, after the connection's own lines.

    @ivar session: the L{ChatSession} it shows and sends to.
    @ivar failed_lines: in batch mode, lines refused or not sent.
    """

    def __init__(self, session, out, err, batch=False):
        """
        @param session: the L{ChatSession}.
        @param out: called with each line for the user (stdout).
        @param err: called with each line about a failure (stderr).
        @param batch: whether stdin is a pipe or a file, not a terminal.
        """
        self.session = session
        self.out = out
        self.err = err
        self.batch = batch
        self.failed_lines = 0

    # What the user does.

    def line_received(self, line):
        """
        A line from the user: a command or a message.
        """
        if self.session.finished or self.session.quitting:
            return
        if line.startswith("//"):
            self.send_text(line[1:])
        elif line.startswith("/"):
            self.command(line)
        elif line:
            self.send_text(line)

    def line_too_long(self, limit):
        """
        stdin had a line of more than C{limit} bytes, which was not read.
        """
        if self.session.finished or self.session.quitting:
            return
        self.local_problem("! line too long (more than %d bytes), not sent" % (limit,))

    def send_text(self, text):
        """
        Send a chat message to the current room.
        """
        session = self.session
        if session.typing_room is None:
            self.local_problem(NO_ROOM)
            return
        if session.welcomed_once and not self.batch and len(text) > session.max_text:
            # Say so at once; in batch mode, in its turn (the session's
            # outbox).
            self.problem(too_long_line(text, session.max_text), failed=1)
            return
        session.say(text)

    def command(self, line):
        """
        Run a command line: C{/name argument} calls C{do_name(argument)}.
        """
        command, _, argument = line.partition(" ")
        handler = getattr(self, "do_" + command[1:], None)
        if handler is None:
            self.local_problem("! unknown command %s (try /help)" % (sanitize(line),))
        else:
            handler(argument.strip())

    # The commands, as HELP lists them.

    def do_nick(self, argument):
        """
        /nick NAME: change your name.
        """
        if argument:
            self.session.enqueue("nick", name=argument)
        else:
            self.local_problem("! usage: /nick NAME")

    def do_who(self, argument):
        """
        /who [ROOM]: list who is in ROOM, by default the current room (the
        lobby when in none).
        """
        room = self._room_argument(argument, "/who [ROOM]") if argument else (
            self.session.typing_room or LOBBY)
        if room is None:
            return
        if same_room(room, LOBBY):
            self.session.enqueue("who")
        else:
            self.session.enqueue("who", room=room)

    def do_join(self, argument):
        """
        /join ROOM: join ROOM (the server makes it if it is new); the lines
        typed after go there.
        """
        room = self._room_argument(argument, "/join ROOM")
        if room is not None:
            self.session.join(room)

    def do_part(self, argument):
        """
        /part [ROOM]: leave ROOM, by default the current room.
        """
        if argument:
            room = self._room_argument(argument, "/part [ROOM]")
        else:
            room = self._current_room()
        if room is not None:
            self.session.part(room)

    def do_rooms(self, argument):
        """
        /rooms [PREFIX]: list the rooms, or those whose names start with
        PREFIX.
        """
        prefix = argument[1:] if argument.startswith("#") else argument
        if prefix:
            self.session.enqueue("rooms", match=prefix)
        else:
            self.session.enqueue("rooms")

    def do_msg(self, argument):
        """
        /msg NAME TEXT: a direct message, to NAME only.
        """
        name, _, text = argument.partition(" ")
        text = text.lstrip(" ")
        if not name or not text:
            self.local_problem("! usage: /msg NAME TEXT")
            return
        session = self.session
        if session.welcomed_once and not self.batch and len(text) > session.max_text:
            self.problem(too_long_line(text, session.max_text), failed=1)
            return
        session.enqueue("message", to=name, text=text)

    def do_topic(self, argument):
        """
        /topic [TEXT]: set the current room's topic (operators); without
        TEXT, show it.
        """
        room = self._current_room()
        if room is None:
            return
        if argument:
            self.session.enqueue("topic", room=room, topic=argument)
        else:
            self.session.enqueue("show_topic", room=room)

    def do_kick(self, argument):
        """
        /kick NAME [REASON]: put NAME out of the current room (operators).
        """
        name, _, reason = argument.partition(" ")
        reason = reason.strip()
        self._moderate("kick", name, "/kick NAME [REASON]", **({"reason": reason} if reason else {}))

    def do_ban(self, argument):
        """
        /ban NAME: keep NAME out of the current room (operators).
        """
        self._moderate("ban", argument, "/ban NAME")

    def do_unban(self, argument):
        """
        /unban NAME: let NAME into the current room again (operators).
        """
        self._moderate("unban", argument, "/unban NAME")

    def do_op(self, argument):
        """
        /op NAME: make NAME an operator of the current room (operators).
        """
        self._moderate("op", argument, "/op NAME")

    def _moderate(self, type, name, usage, **fields):
        """
        Send a moderation request of C{type} about C{name} for the current
        room.
        """
        if not name or " " in name:
            self.local_problem("! usage: %s" % (usage,))
            return
        room = self._current_room()
        if room is not None:
            self.session.enqueue(type, room=room, name=name, **fields)

    def _current_room(self):
        """
        The room typed lines go to; if there is none, say so and give
        L{None}.
        """
        room = self.session.typing_room
        if room is None:
            self.local_problem(NO_ROOM)
        return room

    def _room_argument(self, argument, usage):
        """
        The room a command names (a leading C{#} is allowed), or L{None}
        after saying what is wrong with it.
        """
        room = argument[1:] if argument.startswith("#") else argument
        if not room:
            self.local_problem("! usage: %s" % (usage,))
            return None
        if not is_name(room):
            self.local_problem(
                "! bad room name %s: 1 to 32 of A-Z a-z 0-9 _ -" % (sanitize(room),))
            return None
        return room

    def do_status(self, argument):
        """
        /status: the connection, its liveness, and the session.
        """
        for status_line in self.status_lines():
            self.out(status_line)

    def do_exit(self, argument):
        """
        /exit [TEXT]: leave, with TEXT as the farewell.
        """
        self.session.leave(argument or None)

    def do_help(self, argument):
        """
        /help: the commands.
        """
        for help_line in HELP.splitlines():
            self.out(help_line)

    # What the session shows.  (IChatView.)

    def show(self, line):
        """
        A line for the user, on stdout.  (L{IChatView}.)
        """
        self.out(line)

    def show_event(self, message):
        """
        A message from the server, rendered, if it shows as a line.
        (L{IChatView}.)
        """
        if message.get("type") == "rooms":
            for line in rooms_lines(message.get("rooms")):
                self.out(line)
            return
        line = self.render(message)
        if line is not None:
            self.out(line)

    def refused(self, message, failed=1):
        """
        The server refused a line we sent: a problem, and (in batch mode)
        C{failed} lines that count against the exit status.
        (L{IChatView}.)
        """
        self.problem(self.render(message), failed=failed)

    def render(self, message):
        """
        L{render} C{message} for this session: its current room, its name.
        """
        return render(message, self.session.current, self.session.name)

    def problem(self, line, failed=0):
        """
        Show a line about a problem: on stderr in batch mode, where
        C{failed} lines that were refused or not sent also count against
        the exit status; on stdout otherwise.  (L{IChatView}.)
        """
        if self.batch:
            self.failed_lines += failed
            self.err(line)
        else:
            self.out(line)

    def local_problem(self, line):
        """
        A typed line cannot be sent: say so now, or, in batch mode, in its
        turn with the others.
        """
        if self.batch:
            self.session.report_in_turn(line)
        else:
            self.problem(line, failed=1)

    def error(self, line):
        """
        A line about a failure, on stderr.  (L{IChatView}.)
        """
        self.err(line)

    def status_lines(self):
        """
        What /status shows: the connection, its liveness, and the session.
        """
        session = self.session
        now = session.clock.seconds()
        protocol = session.protocol
        how = "TLS" if session.tls else "plain TCP, not encrypted"
        lines = []
        if protocol is not None and protocol.welcomed:
            lines.append("* connected to %s (%s) as %s, session %s" % (
                session.address, how, sanitize(session.name or "?"), _short(session.session)))
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
                session.address, how))
        elif session.offline_since is not None:
            if session.next_attempt is not None and session.next_attempt > now:
                attempt = "next try in %s s" % (_format_age(session.next_attempt - now),)
            else:
                attempt = "trying now"
            lines.append("* not connected (to %s, %s) for %s s; %s" % (
                session.address, how, _format_age(now - session.offline_since), attempt))
        else:
            lines.append("* not connected: connecting to %s (%s)" % (session.address, how))
        if session.welcomed_once:
            lines.append("* seq %s; %d missed events, %d replayed; %d reconnections" % (
                "?" if session.last_seq is None else session.last_seq, session.missed_events,
                session.replayed_events, session.reconnections))
            rooms = list(session.rooms.values())
            if [room.name for room in rooms] != [LOBBY] or session.current != LOBBY:
                lines.append("* rooms: %s; current: %s" % (
                    ", ".join("#%s (seq %s)" % (sanitize(room.name),
                                                "?" if room.seq is None else room.seq)
                              for room in rooms) or "none",
                    "none" if session.current is None else "#" + sanitize(session.current)))
        return lines


class ChatClient(ChatSession):
    """
    A L{ChatSession} with its L{Console}: what C{main}, the tests and the
    loopback helpers build.  Connections report to it as the session; the
    lines read from stdin go to its console.

    @ivar console: the L{Console}.
    """

    def __init__(self, clock, address, out, err, nick=None, reconnect=False, password=None,
                 batch=False, tls=False):
        """
        @param out: called with each line for the user (stdout).
        @param err: called with each line about a failure (stderr).
        @param batch: whether stdin is a pipe or a file, not a terminal.

        The other parameters are L{ChatSession}'s.
        """
        self.console = Console(self, out, err, batch=batch)
        ChatSession.__init__(self, clock, address, self.console, nick=nick,
                             reconnect=reconnect, password=password, tls=tls)

    def line_received(self, line):
        """
        A line from the user: to the console.
        """
        self.console.line_received(line)

    def line_too_long(self, limit):
        """
        stdin had a line of more than C{limit} bytes: the console says so.
        """
        self.console.line_too_long(limit)


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
