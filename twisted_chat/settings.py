# -*- test-case-name: tests.unit.test_tap,tests.system.test_tap -*-
"""
The server's settings and every default of its policy, in one place.

L{ServerSettings} is everything about the server that an option of
C{twistd chat} can change; the C{DEFAULT_*} values below are its defaults,
and the factors and fixed values after them are policy no option changes.
Each says what it is and why it has the value it has.

The defaults a client needs before a server's C{welcome} tells it otherwise
(the port, C{max_frame}, C{max_text}, the heartbeat interval and the
timeout) are part of the protocol, so they live in L{twisted_chat.wire};
the server's defaults for them are those same values.

L{frame_limits} completes the four limits that must fit together
(C{max_frame}, C{max_text}, C{sendq_soft}, C{sendq}) from those given.

This module does no I/O and imports no reactor.
"""

from dataclasses import dataclass

from twisted_chat import wire

# Listening.

LISTEN_BACKLOG = 4096
"""
The listen backlog for a bare C{--port} number.  Twisted's default of 50
drops the SYNs of a burst of connects, and a dropped SYN is retried only
after 1, 3 and 7 seconds.  At 5000 connections a second, 1024 still
overflowed while the server broadcast the joins of the first members
(docs/performance.rst).  Linux caps it at C{net.core.somaxconn}, 4096 by
default since 5.4.
"""

# Options' defaults (ServerSettings fields).

DEFAULT_BACKLOG = 1024
"""
C{--backlog}: how many recent events the room keeps, as the bytes sent, so
that a client that lost its connection or lagged can resume without a gap.
Its memory is one frame per event, so 1024 events of ordinary chat lines
cost a few hundred KiB at most, while a resume after a short outage still
finds what it missed.
"""

DEFAULT_SENDQ_SOFT = 256 * 1024
"""
C{--sendq-soft}: bytes held for a client that does not read after which it
is sent C{lagged} and no more events until it resumes (the events it then
missed come from the backlog).  256 KiB is four frames of the default
C{max_frame} (it must hold one at least), and a quarter of L{DEFAULT_SENDQ}:
the ratio L{frame_limits} keeps when only one of the two is given.
"""

DEFAULT_SENDQ = 1024 * 1024
"""
C{--sendq}: bytes held for a client after which it is dropped (leave reason
C{sendq}); also how much a pending connection is owed beyond the backlog.
It bounds what one client can cost the server (docs/reliability.rst); four
times L{DEFAULT_SENDQ_SOFT} leaves room for the replies to a lagged
client's own requests, which are still queued.
"""

DEFAULT_RATE = 5.0
"""
C{--rate}: chat messages a client may send per second once its burst is
spent: more than a person types, so only a script that floods the room is
slowed.  0 turns flood control off (as the benchmarks run the server).
"""

DEFAULT_BURST = 20
"""
C{--burst}: chat messages a client may send at once before C{--rate}
applies: room for pasting a few lines, or for a client that reconnects and
sends what it had queued meanwhile.
"""

DEFAULT_NICK_RATE = 5
"""
C{--nick-rate}: name changes a session may make per C{--nick-period}; every
one is an event in every room the user is in, so a client renaming itself
in a loop would make the server send a frame to each member each time.
Five per twenty seconds is the anti-nick-flood default of IRC servers; 0
turns the limit off.
"""

DEFAULT_NICK_PERIOD = 20.0
"""
C{--nick-period}: the seconds over which C{--nick-rate} name changes are
allowed.
"""

DEFAULT_JOIN_RATE = 0.5
"""
C{--join-rate}: room joins a session may make per second once its
C{--join-burst} is spent (a part spends a token too, when there is one, but
is never refused): a user who parts and joins a room over and over would
make every member receive a leave and a join each time.  0 turns the limit
off.
"""

DEFAULT_JOIN_BURST = 24
"""
C{--join-burst}: room joins a session may make at once: more than the
twenty rooms an IRC client joins at start-up, and few enough that a burst
of part/join cycles ends after about two dozen events.
"""

DEFAULT_MAX_CLIENTS = 10000
"""
C{--max-clients}: connections at once; the next is refused with
C{server_full}.  10,000 is what one process is measured to serve (about
3 KiB each, docs/performance.rst); the cap keeps a connect storm from
running the process out of memory or file descriptors.
"""

DEFAULT_MAX_PER_IP = 100
"""
C{--max-per-ip}: connections from one address (an IPv6 address counts with
the rest of its /64, which one host usually has whole); 0 means no limit.

IRC servers are the guide, and they allow one address few connections, for
a person: UnrealIRCd's example allow block C{maxperip 3}, the ratbox and
charybdis family's C{number_per_ip} of 10 or so per class (with IPv6
counted per /64 by C{cidr_ipv6_bitlen} and UnrealIRCd's C{ipv6-clone-mask}).
They can keep it that low because an operator raises it by hand for each
known gateway, a university's or an office's NAT.  This server has no such
list, so its default must already fit a gateway: 100 lets an office of
fifty people each with two clients (a laptop and a phone) through, with
room for a reconnecting client whose old connection has not timed out yet,
while one host still gets at most 1% of L{DEFAULT_MAX_CLIENTS}, and
filling the server takes a hundred addresses.  A larger gateway (a
carrier's NAT, a proxy in front of the server) needs a larger value, or 0.
"""

DEFAULT_READ_BUDGET = 32 * 1024 * 1024
"""
C{--read-budget}: bytes of incoming frames not yet complete that the server
holds, all connections together.  Past it, the connections holding the
most are dropped (error C{frame_timeout}, leave reason C{error}), the
largest first, until the total is back under L{READ_BUDGET_LOW} of it.
Without it, a host that opens connections and sends each all of a 64 KiB
frame but its last byte makes the server hold 64 KiB per connection, about
650 MB at the default C{--max-clients}.  32 MiB is 512 frames of the
default C{--max-frame} in flight at once, far more than ordinary traffic
ever leaves unfinished (a chat line arrives whole, or in a couple of reads
within a round trip), and about what 10,000 connections themselves take.
It must hold one frame of C{--max-frame}.

Stopping reading from the largest holders instead (TCP back-pressure)
would keep the rest of their frames in the peer's kernel, but not what was
already read: Twisted reads up to 64 KiB at once, so each new connection's
first read brings its whole half-sent frame into memory before anything can
be decided, and a paused frame can never finish.  Dropping frees the memory
at once, and costs an ordinary client nothing: its frames arrive whole or
nearly so, while the largest unfinished frames at such a moment are the
attacker's.
"""

READ_BUDGET_LOW = 7 / 8
"""
Once over C{--read-budget}, connections are dropped until the bytes held are
at most this fraction of it: one pass, over the holders sorted by size,
then frees an eighth of the budget (4 MiB by default), so a flood of many
small holders costs one sort per 4 MiB received, not one per read.
"""

TRIM_AFTER = 4 * 1024 * 1024
"""
Bytes of unfinished frames held at once that make a burst.  Once the total
falls back under a quarter of this (the burst is over, or nearly), the C
heap's free pages are given back to the system L{TRIM_DELAY} seconds
later (L{twisted_chat.heap}).  Below this there is little worth giving
back, and an attacker must make the server hold this much again for each
trim (a few milliseconds) it causes.
"""

TRIM_DELAY = 1.0
"""
Seconds between the end of a burst of unfinished frames and the trim of
the heap: the last of its connections usually close within them, so one
trim gives back all their memory.
"""

DEFAULT_FRAME_TIMEOUT = 10.0
"""
C{--frame-timeout}: seconds within which a frame, once its first byte has
arrived, must be complete; past it the client gets C{frame_timeout} and is
dropped (leave reason C{error}).  Later bytes of the frame do not extend
it, so a peer trickling a byte a second holds its buffer 10 s at most, not
until C{--timeout} (which any whole frame resets).  10 s is a 64 KiB frame
at 52 kbit/s, slower than any link a chat client uses; it is at most
C{--timeout}, and when C{--timeout} is shorter it defaults to that.
"""

DEFAULT_MAX_ROOMS_PER_CLIENT = 100
"""
C{--max-rooms-per-client}: rooms one connection may be in at once (the
lobby counts); enough for any person, and a bound on what one client's
joins cost the server.
"""

DEFAULT_MAX_ROOMS = 10000
"""
C{--max-rooms}: rooms the server keeps at once (the lobby counts); a room
that empties is forgotten, so this bounds what clients making rooms can
cost it.
"""

DEFAULT_PRESENCE_LIMIT = 1000
"""
C{--presence-limit}: join and leave are broadcast only while the room has at
most this many members, as large public chat services do.  Past that every
arrival costs a frame to everyone, which is quadratic in a connect burst
(docs/performance.rst); C{welcome} says C{"presence": false} then, and
C{who} still answers.
"""

DEFAULT_LOG_RATE = 100
"""
C{--log-rate}: lines a second, at most, about clients connecting and
leaving; the rest are counted and summed up once a second
(L{twisted_chat.logs.LineBudget}).  Logging every one of 10,000 connects
took a third of the server's time in the burst (docs/performance.rst);
100 a second is still a line per client for ordinary traffic.
"""

DEFAULT_SHUTDOWN_GRACE = 2.0
"""
C{--shutdown-grace}: seconds a graceful stop waits for connections to flush
their C{shutdown} frame and close before it aborts the rest; a dead peer
never acknowledges a FIN, so the stop must not wait for it.
"""

# Policy no option changes.

DEFAULT_SHUTDOWN_MESSAGE = "server is shutting down"
"""
The C{message} of the C{shutdown} frame every client is sent in a graceful
stop; the client shows it.
"""

RECONNECT_AFTER = (1.0, 5.0)
"""
The range, in seconds, of a C{shutdown} frame's C{reconnect_after}: each
client draws its own, so that a restarted server is not met by every client
at once.
"""

FRAME_RATE_FACTOR = 10
"""
The bucket for all frames (heartbeats, who, nick...) allows this many times
the message C{rate} and C{burst}, so that ordinary clients never meet it
while a flood of any frame is still bounded.
"""

FLOOD_FACTOR = 3
"""
Consecutive refused frames, in multiples of the burst, after which a client
is dropped for flooding: a client that waits the C{retry_after} it is told
is refused once at a time, while one that ignores it reaches this at once.
"""

JOIN_HOLD = 1.0
"""
Seconds a new connection may stay silent before the room is told it joined
(announced as C{resume_window} in C{welcome}).  Its first frame ends the wait
at once; a C{resume} in its place continues the old session without a
join and leave in between.  A reconnecting client sends its resume as soon
as it has the welcome, well within a second, and a second of waiting is
hardly noticed by the others.
"""

LOGIN_BURST = 5
"""
With accounts: login attempts an address may make at once, before
L{LOGIN_INTERVAL} applies: enough to mistype a password a few times.
"""

LOGIN_INTERVAL = 10.0
"""
With accounts: seconds between login attempts from one address once its
L{LOGIN_BURST} is spent: guessing passwords gets six tries a minute.
"""

LOGIN_ADDRESSES = 10000
"""
How many addresses' login attempts are remembered (the oldest forgotten
first), so that the memory of the login limit is bounded.
"""


@dataclass(frozen=True)
class ServerSettings:
    """
    Everything about the server that an option can change; each field is
    the option of the same name with dashes (C{max_frame} is
    C{--max-frame}), and its default that option's.

    @ivar heartbeat_interval: seconds between client heartbeats, announced
        in C{welcome} (L{wire.DEFAULT_HEARTBEAT_INTERVAL}).
    @ivar timeout: seconds without any frame after which a client is
        dropped (L{wire.DEFAULT_TIMEOUT}).
    @ivar max_frame: the largest frame payload, in bytes, either way
        (L{wire.DEFAULT_MAX_FRAME}).
    @ivar max_text: the longest chat message, in characters
        (L{wire.DEFAULT_MAX_TEXT}).
    @ivar backlog: see L{DEFAULT_BACKLOG}.
    @ivar sendq_soft: see L{DEFAULT_SENDQ_SOFT}.
    @ivar sendq: see L{DEFAULT_SENDQ}.
    @ivar rate: see L{DEFAULT_RATE}.
    @ivar burst: see L{DEFAULT_BURST}.
    @ivar nick_rate: see L{DEFAULT_NICK_RATE}.
    @ivar nick_period: see L{DEFAULT_NICK_PERIOD}.
    @ivar join_rate: see L{DEFAULT_JOIN_RATE}.
    @ivar join_burst: see L{DEFAULT_JOIN_BURST}.
    @ivar max_clients: see L{DEFAULT_MAX_CLIENTS}.
    @ivar max_per_ip: see L{DEFAULT_MAX_PER_IP}.
    @ivar read_budget: see L{DEFAULT_READ_BUDGET}.
    @ivar frame_timeout: see L{DEFAULT_FRAME_TIMEOUT}; the server applies
        at most C{timeout}.
    @ivar presence_limit: see L{DEFAULT_PRESENCE_LIMIT}.
    @ivar max_rooms_per_client: see L{DEFAULT_MAX_ROOMS_PER_CLIENT}.
    @ivar max_rooms: see L{DEFAULT_MAX_ROOMS}.
    @ivar log_rate: see L{DEFAULT_LOG_RATE}.
    @ivar allow_plaintext_login: with accounts, accept passwords without
        TLS; off, since a password sent in the clear can be read.
    @ivar verbose: log every chat message and heartbeat too; off, since that
        is a line per frame.
    """

    heartbeat_interval: float = wire.DEFAULT_HEARTBEAT_INTERVAL
    timeout: float = wire.DEFAULT_TIMEOUT
    max_frame: int = wire.DEFAULT_MAX_FRAME
    max_text: int = wire.DEFAULT_MAX_TEXT
    backlog: int = DEFAULT_BACKLOG
    sendq_soft: int = DEFAULT_SENDQ_SOFT
    sendq: int = DEFAULT_SENDQ
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    nick_rate: int = DEFAULT_NICK_RATE
    nick_period: float = DEFAULT_NICK_PERIOD
    join_rate: float = DEFAULT_JOIN_RATE
    join_burst: int = DEFAULT_JOIN_BURST
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_per_ip: int = DEFAULT_MAX_PER_IP
    read_budget: int = DEFAULT_READ_BUDGET
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT
    presence_limit: int = DEFAULT_PRESENCE_LIMIT
    max_rooms_per_client: int = DEFAULT_MAX_ROOMS_PER_CLIENT
    max_rooms: int = DEFAULT_MAX_ROOMS
    log_rate: int = DEFAULT_LOG_RATE
    allow_plaintext_login: bool = False
    verbose: bool = False


class LimitsError(ValueError):
    """
    Frame and send-queue limits that do not fit together; the message says
    which option to change (C{twistd chat} shows it as a usage error).
    """


def text_for_frame(max_frame):
    """
    The longest C{--max-text} that C{max_frame} always carries: the inverse
    of L{wire.max_frame_for_text}.

    It searches over L{wire.max_frame_for_text} itself (which only has to
    grow with its argument), so it stays exact if that formula changes.

    @return: the largest C{t} with C{max_frame_for_text(t) <= max_frame},
        or 0 if not even one character fits.
    """
    # Invariant: max_frame_for_text(low) <= max_frame, or low == 0;
    # max_frame_for_text(high) > max_frame.  A character takes at least a
    # byte, so max_frame + 1 characters never fit.
    low, high = 0, max_frame + 1
    while high - low > 1:
        middle = (low + high) // 2
        if wire.max_frame_for_text(middle) <= max_frame:
            low = middle
        else:
            high = middle
    return low


def frame_limits(max_frame=None, max_text=None, sendq_soft=None, sendq=None):
    """
    Complete the frame and send-queue limits from those the user gave.

    The four must fit together: C{max_frame} carries a message of
    C{max_text} characters (L{wire.max_frame_for_text}), C{sendq_soft}
    holds at least one frame, and C{sendq} is more than C{sendq_soft}.  A
    limit not given (L{None}) starts at its default and moves only as far
    as the given ones need: C{--max-frame 4096} alone lowers C{max_text} to
    the 640 characters that fit, and C{--max-text 20000} alone raises
    C{max_frame} to 120256.  Given limits that conflict are refused.

    @return: C{(max_frame, max_text, sendq_soft, sendq)}.

    @raise LimitsError: saying which option to change.
    """
    if max_frame is not None and not (
        wire.MIN_FRAME_LIMIT <= max_frame <= wire.MAX_FRAME_LIMIT
    ):
        raise LimitsError(
            "--max-frame must be between %d and %d"
            % (wire.MIN_FRAME_LIMIT, wire.MAX_FRAME_LIMIT)
        )
    if max_text is not None and max_text < 1:
        raise LimitsError("--max-text must be at least 1")
    needed = None if max_text is None else wire.max_frame_for_text(max_text)
    if needed is not None and needed > wire.MAX_FRAME_LIMIT:
        raise LimitsError(
            "--max-text %d is too long: the largest --max-frame (%d) carries "
            "%d characters; lower --max-text"
            % (max_text, wire.MAX_FRAME_LIMIT, text_for_frame(wire.MAX_FRAME_LIMIT))
        )

    frame_given = max_frame is not None
    if max_frame is None:
        max_frame = wire.DEFAULT_MAX_FRAME
        if sendq is not None and sendq_soft is None:
            # Room for the defaults' ratio: a quarter of --sendq before
            # lagged, and that a frame at least.
            if sendq // 4 < wire.MIN_FRAME_LIMIT:
                raise LimitsError(
                    "--sendq (%d) must hold at least four of the smallest frames "
                    "(%d bytes); raise --sendq" % (sendq, 4 * wire.MIN_FRAME_LIMIT)
                )
            max_frame = min(max_frame, sendq // 4)
        if sendq_soft is not None:
            if sendq_soft < wire.MIN_FRAME_LIMIT:
                raise LimitsError(
                    "--sendq-soft (%d) must hold at least one frame of the "
                    "smallest --max-frame (%d); raise --sendq-soft"
                    % (sendq_soft, wire.MIN_FRAME_LIMIT)
                )
            max_frame = min(max_frame, sendq_soft)
        if needed is not None and needed > max_frame:
            if sendq_soft is not None and needed > sendq_soft:
                raise LimitsError(
                    "--max-text %d needs frames of %d bytes, more than "
                    "--sendq-soft (%d); raise --sendq-soft or lower --max-text"
                    % (max_text, needed, sendq_soft)
                )
            max_frame = needed

    if max_text is None:
        max_text = min(wire.DEFAULT_MAX_TEXT, text_for_frame(max_frame))
    elif needed > max_frame:
        raise LimitsError(
            "--max-text %d needs --max-frame of at least %d; raise "
            "--max-frame or lower --max-text" % (max_text, needed)
        )

    if sendq_soft is None:
        sendq_soft = max(DEFAULT_SENDQ_SOFT, max_frame)
        if sendq is not None and sendq_soft >= sendq:
            # The defaults' ratio, but never less than one frame.
            sendq_soft = max(max_frame, sendq // 4)
            if sendq_soft >= sendq:
                raise LimitsError(
                    "--sendq (%d) must be more than one frame (--max-frame "
                    "%d); raise --sendq or lower %s"
                    % (sendq, max_frame, "--max-frame" if frame_given else "--max-text")
                )
    elif sendq_soft < max_frame:
        raise LimitsError(
            "--sendq-soft (%d) must hold at least one frame (--max-frame %d); "
            "raise --sendq-soft or lower --max-frame" % (sendq_soft, max_frame)
        )

    if sendq is None:
        sendq = DEFAULT_SENDQ
        if sendq <= sendq_soft:
            sendq = 4 * sendq_soft
    elif sendq <= sendq_soft:
        raise LimitsError(
            "--sendq (%d) must be more than --sendq-soft (%d); raise --sendq "
            "or lower --sendq-soft" % (sendq, sendq_soft)
        )
    return max_frame, max_text, sendq_soft, sendq
