# -*- test-case-name: tests.unit.test_wire -*-
"""
The twisted-chat wire protocol, version 1: constants, frames and validators.

A frame is a 4-byte unsigned big-endian length N followed by N bytes of UTF-8
JSON holding one object with a string member C{"type"}.  This module turns
dicts into frame bytes and payload bytes back into dicts, and checks the
fields the server acts on.  It does no I/O; docs/protocol.rst is the
specification it implements.
"""

import json
import math
import re
import struct

PROTOCOL_VERSION = 1

# What a client assumes until a server's welcome says otherwise; a server
# started without options announces these same values
# (twisted_chat.settings holds the rest of the server's defaults).

#: The port a client connects to and a server listens on.
DEFAULT_PORT = 56562
#: Seconds between heartbeats.
DEFAULT_HEARTBEAT_INTERVAL = 10.0
#: Seconds without any frame after which a peer is considered dead: three
#: heartbeat intervals, so one lost or late heartbeat is no false alarm.
DEFAULT_TIMEOUT = 30.0
#: The largest frame payload, in bytes, either way.
DEFAULT_MAX_FRAME = 65536
#: The longest chat message, in characters.
DEFAULT_MAX_TEXT = 4096

#: The largest frame a peer may announce or configure: 16 MiB.
MAX_FRAME_LIMIT = 16 * 1024 * 1024
#: The smallest max_frame that still carries every fixed-size frame.
MIN_FRAME_LIMIT = 1024

NAME_MAX = 32
GUEST_PREFIX = "guest-"
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % (NAME_MAX,), re.ASCII)

# Error codes (the "code" member of an error frame).
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
FRAME_TOO_LARGE = "frame_too_large"
BAD_NICK = "bad_nick"
NICK_TAKEN = "nick_taken"
TEXT_TOO_LONG = "text_too_long"
RESUME_FAILED = "resume_failed"
RATE_LIMITED = "rate_limited"
SERVER_FULL = "server_full"
TOO_MANY_CONNECTIONS = "too_many_connections"
#: A node of a cluster cannot reach Redis: what the client asked was not
#: done (and a chat message was not sent); it may try again later.
UNAVAILABLE = "unavailable"
#: With accounts (--auth-file): the login failed, was not allowed, or a
#: frame came before it.
AUTH_FAILED = "auth_failed"
#: The client was dropped for flooding; the last frame it is sent.
FLOODING = "flooding"
#: Rooms (docs/protocol.rst, "Rooms"): a room name that is not one.
BAD_ROOM = "bad_room"
#: Asked about a room that does not exist.
NO_SUCH_ROOM = "no_such_room"
#: A frame for a room the client is not in.
NOT_IN_ROOM = "not_in_room"
#: Moderation by someone who is not an operator of the room.
NOT_OP = "not_op"
#: A join of a room the client is banned from.
BANNED = "banned"
#: A direct message, kick or op for a name nobody online has.
NO_SUCH_USER = "no_such_user"
#: --max-rooms-per-client or --max-rooms reached.
TOO_MANY_ROOMS = "too_many_rooms"
#: A frame begun and not complete within the server's --frame-timeout, or,
#: sooner, one of the largest unfinished frames while the server holds
#: --read-budget bytes of them; the connection is then closed.
FRAME_TIMEOUT = "frame_timeout"
ERROR_CODES = frozenset(
    [
        BAD_FRAME,
        UNKNOWN_TYPE,
        FRAME_TOO_LARGE,
        BAD_NICK,
        NICK_TAKEN,
        TEXT_TOO_LONG,
        RESUME_FAILED,
        RATE_LIMITED,
        SERVER_FULL,
        TOO_MANY_CONNECTIONS,
        UNAVAILABLE,
        AUTH_FAILED,
        FLOODING,
        BAD_ROOM,
        NO_SUCH_ROOM,
        NOT_IN_ROOM,
        NOT_OP,
        BANNED,
        NO_SUCH_USER,
        TOO_MANY_ROOMS,
        FRAME_TIMEOUT,
    ]
)

#: The room every connection is in from its welcome; frames without a
#: "room" member are the lobby's.
LOBBY = "lobby"
#: The longest topic, in characters.
TOPIC_MAX = 256

# Leave reasons (the "reason" member of a leave event).
REASON_QUIT = "quit"
REASON_EOF = "eof"
REASON_RESET = "reset"
REASON_TIMEOUT = "timeout"
REASON_ERROR = "error"
REASON_SENDQ = "sendq"
REASON_FLOOD = "flood"
#: A client left one room (part); kicked, by an operator.
REASON_PART = "part"
REASON_KICKED = "kicked"
#: The reasons a connection ends (part and kicked end one membership only).
LEAVE_REASONS = frozenset(
    [
        REASON_QUIT,
        REASON_EOF,
        REASON_RESET,
        REASON_TIMEOUT,
        REASON_ERROR,
        REASON_SENDQ,
        REASON_FLOOD,
    ]
)

#: The longest session token a client may present.
SESSION_MAX = 64
#: The longest string a client frame's "id" may be, in characters.
ID_MAX = 64
#: The largest magnitude of a whole-number "id": what every JSON parser
#: reads exactly (2**53 - 1).
ID_NUMBER_MAX = 2**53 - 1
#: The longest password a client may present, in characters.
PASSWORD_MAX = 1024

#: The length prefix of every frame: 4 bytes, unsigned, big-endian.
PREFIX = struct.Struct("!I")

#: Bytes a JSON encoding may spend on one character of text at most: a
#: control character is escaped as \\u00XX.
MAX_BYTES_PER_CHAR = 6
#: Room for everything in a message event except its text.
MESSAGE_OVERHEAD = 256


class ProtocolError(Exception):
    """
    A peer broke the protocol; the server answers with an C{error} frame.

    @ivar code: one of L{ERROR_CODES}.
    @ivar message: human-readable text for the error frame.
    @ivar fields: further members of the error frame, such as
        C{retry_after} or C{oldest_seq}.
    """

    def __init__(self, code, message, **fields):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.fields = fields

    def __str__(self):
        return "%s: %s" % (self.code, self.message)


def encode(message):
    """
    Encode a message dict as a frame payload: compact UTF-8 JSON.

    @raise ValueError: if the dict holds NaN or infinity, which JSON lacks.
    """
    return _ENCODER.encode(message).encode("utf-8")


def frame(payload):
    """
    Prefix C{payload} with its 4-byte big-endian length.
    """
    return PREFIX.pack(len(payload)) + payload


def encode_frame(message):
    """
    Encode a message dict as complete frame bytes, ready for
    C{transport.write}: the way to encode a broadcast once for everybody.
    """
    return frame(encode(message))


def heartbeat_ack_frame(ts, now):
    """
    The frame of C{heartbeat_ack}, byte for byte what L{encode_frame} makes
    of C{{"type": "heartbeat_ack", "ts": ts, "now": now}} (C{ts} left out
    when L{None}), but formatted directly: every client sends a heartbeat
    every few seconds, and the general encoder is a third of the server's
    Python work in answering one.

    @param ts: the heartbeat's C{ts}, a finite int or float, or L{None}
        (see L{check_optional_number}).
    @param now: the server's time, a finite int or float.
    """
    # JSON writes ints and finite floats as their repr, as json.dumps does.
    if ts is None:
        payload = '{"type":"heartbeat_ack","now":%r}' % (now,)
    else:
        payload = '{"type":"heartbeat_ack","ts":%r,"now":%r}' % (ts, now)
    return frame(payload.encode("ascii"))


def _reject_constant(name):
    raise ValueError("%s is not JSON" % (name,))


class _DuplicateKey(ValueError):
    """
    A JSON object names the same member twice.
    """


def _unique_members(pairs):
    """
    Build a JSON object, refusing one that names a member twice: which of
    the two a parser keeps differs between JSON libraries, so a frame such
    as C{{"type":"x","type":"who"}} would mean different things to the
    server and to anything that read it on the way.
    """
    members = dict(pairs)
    if len(members) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return members


# Made once: json.dumps and json.loads with options build a new encoder or
# decoder on every call, a measurable part of handling a heartbeat.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# The same, refusing an object that names a member twice; a Python hook
# per object, so it is used only when the cheap test in decode cannot rule
# a repeat out.
_STRICT_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_members)


def decode(payload):
    """
    Decode a frame payload into a message dict.

    @return: a dict with a string C{"type"} member.
    @raise ProtocolError: with code L{BAD_FRAME} when the payload is empty,
        not UTF-8, not a JSON object, names a member twice (in any object),
        or lacks a string C{"type"}.
    """
    if not payload:
        raise ProtocolError(BAD_FRAME, "empty frame")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(BAD_FRAME, "frame is not valid UTF-8") from None
    try:
        message = _DECODER.decode(text)
        # Every member name is followed by a colon, so a text with no more
        # colons than the object has members names none twice, nested
        # objects included (a heartbeat, most frames).  Otherwise (colons
        # in strings, nested objects) look closely.
        if type(message) is dict and text.count(":") != len(message):
            message = _STRICT_DECODER.decode(text)
    except _DuplicateKey as e:
        raise ProtocolError(
            BAD_FRAME, "member %r appears twice" % (sanitize(str(e))[:NAME_MAX],)
        ) from None
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_FRAME, "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_FRAME, "frame is not a JSON object")
    if not isinstance(message.get("type"), str):
        raise ProtocolError(BAD_FRAME, 'frame has no string "type"')
    return message


def check_request_id(message):
    """
    Return the optional C{"id"} of a client frame, which the direct reply
    or error to that frame echoes.

    @return: a string of at most L{ID_MAX} characters, a whole number of
        magnitude at most L{ID_NUMBER_MAX}, or L{None} if absent.
    @raise ProtocolError: L{BAD_FRAME} for anything else.
    """
    value = message.get("id")
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) <= ID_MAX and _is_unicode(value):
            return value
    elif is_whole(value) and -ID_NUMBER_MAX <= value <= ID_NUMBER_MAX:
        return value
    raise ProtocolError(
        BAD_FRAME,
        '"id" must be a string of at most %d characters or a whole number' % (ID_MAX,),
    )


def _is_unicode(text):
    """
    Whether C{text} can be encoded as UTF-8 (JSON lets a peer send lone
    surrogates such as C{"\\ud800"}, which cannot).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text, max_text, field="text"):
    """
    Check the text of a chat message.

    @return: C{text}, unchanged.
    @raise ProtocolError: L{BAD_FRAME} if it is missing, not a string, empty
        or not valid Unicode; L{TEXT_TOO_LONG} if it has more than
        C{max_text} characters (Unicode code points).
    """
    if not isinstance(text, str):
        raise ProtocolError(BAD_FRAME, '"%s" must be a string' % (field,))
    if not text:
        raise ProtocolError(BAD_FRAME, '"%s" must not be empty' % (field,))
    if len(text) > max_text:
        raise ProtocolError(
            TEXT_TOO_LONG,
            "text is %d characters long, the limit is %d" % (len(text), max_text),
        )
    if not _is_unicode(text):
        raise ProtocolError(BAD_FRAME, '"%s" is not valid Unicode' % (field,))
    return text


def check_room(message):
    """
    The room a client frame is for: its C{room} member, the lobby without
    one.

    @raise ProtocolError: L{BAD_ROOM} unless it is 1 to 32 of
        C{A-Z a-z 0-9 _ -}.
    """
    if "room" not in message:
        return LOBBY
    room = message["room"]
    if not isinstance(room, str) or _NAME_RE.fullmatch(room) is None:
        raise ProtocolError(
            BAD_ROOM,
            "a room name is 1 to %d of the characters A-Z a-z 0-9 _ -" % (NAME_MAX,),
        )
    return room


def check_name(name):
    """
    Check the name of a user someone else names (a ban, a kick): any name a
    user can have, guest names too.

    @raise ProtocolError: L{BAD_NICK} unless it is 1 to 32 of
        C{A-Z a-z 0-9 _ -}.
    """
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ProtocolError(
            BAD_NICK,
            "a name is 1 to %d of the characters A-Z a-z 0-9 _ -" % (NAME_MAX,),
        )
    return name


def check_nick(name):
    """
    Check a name a client asks for.

    @return: C{name}, unchanged.
    @raise ProtocolError: L{BAD_NICK} unless it is 1 to 32 of
        C{A-Z a-z 0-9 _ -} and does not start with the reserved C{guest-}
        prefix (in any case).
    """
    check_name(name)
    if name.lower().startswith(GUEST_PREFIX):
        raise ProtocolError(
            BAD_NICK, "names starting with %r are reserved" % (GUEST_PREFIX,)
        )
    return name


def is_number(value):
    """
    Whether C{value} is a JSON number as decoded: an int or a float, and
    not a bool (which Python counts as an int).
    """
    return type(value) in (int, float)


def is_whole(value):
    """
    Whether C{value} is a whole JSON number as decoded: an int, and not a
    bool.
    """
    return type(value) is int


def check_optional_number(message, field):
    """
    Return C{message[field]} if it is a finite number, L{None} if absent.

    @raise ProtocolError: L{BAD_FRAME} if present but not a finite number.
    """
    value = message.get(field)
    if value is None:
        return None
    if not is_number(value):
        raise ProtocolError(BAD_FRAME, '"%s" must be a number' % (field,))
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(BAD_FRAME, '"%s" must be finite' % (field,))
    return value


def max_frame_for_text(max_text):
    """
    The smallest max_frame that carries any message of C{max_text}
    characters, however they encode.
    """
    return max_text * MAX_BYTES_PER_CHAR + MESSAGE_OVERHEAD


# C0 and C1 controls (escape sequences start with them), DEL, Unicode line
# and paragraph separators, bidirectional overrides and isolates, and lone
# surrogates that a terminal cannot encode.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match):
    code = ord(match.group())
    if code < 0x100:
        return "\\x%02x" % (code,)
    return "\\u%04x" % (code,)


def sanitize(value):
    """
    Make text from the network safe for a terminal: control characters,
    escape sequences and direction overrides are replaced by visible escapes
    such as C{\\x1b}, so they cannot move the cursor, recolour the screen or
    hide text.
    """
    if not isinstance(value, str):
        value = str(value)
    return _UNSAFE.sub(_escape, value)
