# -*- test-case-name: tests.unit.test_client -*-
"""
The client's console: what the user types and sees.

 - L{render} and L{shutdown_line} turn the server's frames into lines.
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
from twisted_chat.wire import sanitize

HELP = """\
* type a line to send it to everybody; a line starting with / is a command:
*   /nick NAME    change your name
*   /who          list who is online
*   /status       the connection: server, round trip, seq, reconnections
*   /exit [TEXT]  leave (TEXT is your farewell)
*   /help         this help
*   //TEXT        send a line that starts with /"""

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
    other line is a message.  In batch mode (stdin is not a terminal) the
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
        Send a chat message.
        """
        session = self.session
        if session.welcomed_once and not self.batch and len(text) > session.max_text:
            # Say so at once; in batch mode, in its turn (the session's
            # outbox).
            self.problem(too_long_line(text, session.max_text), failed=1)
            return
        session.enqueue("message", text=text)

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
        /who: list who is online.
        """
        self.session.enqueue("who")

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
        line = render(message)
        if line is not None:
            self.out(line)

    def refused(self, message):
        """
        The server refused a line we sent: a problem, and a failed line.
        (L{IChatView}.)
        """
        self.problem(render(message), failed=1)

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
