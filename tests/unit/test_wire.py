"""
Tests for L{twisted_chat.wire}: framing, decoding and validators.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import wire
from twisted_chat.wire import ProtocolError


class EncodeTests(SynchronousTestCase):
    """
    Encoding dicts into payloads and frames.
    """

    def test_compact_utf8(self):
        """
        Payloads are compact JSON with non-ASCII text as UTF-8, not escapes.
        """
        payload = wire.encode({"type": "message", "text": "h\u00e9"})
        self.assertEqual(payload, '{"type":"message","text":"h\u00e9"}'.encode("utf-8"))

    def test_frame_prefix(self):
        """
        A frame is a 4-byte big-endian length, then the payload.
        """
        self.assertEqual(wire.frame(b"abc"), b"\x00\x00\x00\x03abc")
        self.assertEqual(wire.frame(b"x" * 258)[:4], b"\x00\x00\x01\x02")

    def test_encode_frame(self):
        """
        encode_frame is frame(encode(...)).
        """
        message = {"type": "who"}
        self.assertEqual(wire.encode_frame(message), wire.frame(wire.encode(message)))

    def test_no_nan(self):
        """
        NaN is not JSON, so it is never encoded.
        """
        self.assertRaises(ValueError, wire.encode, {"type": "x", "n": float("nan")})


class DecodeTests(SynchronousTestCase):
    """
    Decoding payloads, and every way a payload is a bad frame.
    """

    def assertBadFrame(self, payload):
        error = self.assertRaises(ProtocolError, wire.decode, payload)
        self.assertEqual(error.code, wire.BAD_FRAME)
        return error

    def test_round_trip(self):
        """
        decode undoes encode, unknown members included.
        """
        message = {"type": "message", "text": "\u2603", "extra": [1, 2]}
        self.assertEqual(wire.decode(wire.encode(message)), message)

    def test_empty(self):
        """
        An empty payload is a bad frame.
        """
        self.assertBadFrame(b"")

    def test_not_utf8(self):
        """
        A payload that is not UTF-8 is a bad frame.
        """
        self.assertBadFrame(b'{"type":"\xff"}')

    def test_not_json(self):
        """
        A payload that is not JSON is a bad frame.
        """
        self.assertBadFrame(b"{type: heartbeat}")

    def test_not_object(self):
        """
        JSON that is not an object is a bad frame.
        """
        for payload in [b"[]", b'"heartbeat"', b"1", b"null"]:
            self.assertBadFrame(payload)

    def test_no_type(self):
        """
        An object without a string "type" is a bad frame.
        """
        for payload in [b"{}", b'{"type":1}', b'{"type":null}', b'{"Type":"who"}']:
            self.assertBadFrame(payload)

    def test_constants(self):
        """
        NaN and Infinity, which Python's json accepts, are bad frames.
        """
        for payload in [b'{"type":"heartbeat","ts":NaN}', b'{"type":"x","a":-Infinity}']:
            self.assertBadFrame(payload)

    def test_deep_nesting(self):
        """
        Nesting deep enough to exhaust the parser's recursion is a bad frame.
        """
        self.assertBadFrame(b'{"type":"x","a":' + b"[" * 100000 + b"]" * 100000 + b"}")

    def test_huge_integer(self):
        """
        An integer too long for Python to convert is a bad frame.
        """
        self.assertBadFrame(b'{"type":"x","a":' + b"9" * 5000 + b"}")


class DuplicateMemberTests(SynchronousTestCase):
    """
    A JSON object that names a member twice is refused, at any depth:
    parsers differ on which of the two they keep.
    """

    def test_top_level(self):
        """
        {"type":"x","type":"who"} is a bad frame, not a who.
        """
        error = self.assertRaises(
            ProtocolError, wire.decode, b'{"type":"x","type":"who"}')
        self.assertEqual(error.code, wire.BAD_FRAME)
        self.assertEqual(error.message, "member 'type' appears twice")

    def test_nested(self):
        """
        A duplicate inside a nested object is refused too.
        """
        error = self.assertRaises(
            ProtocolError, wire.decode, b'{"type":"x","a":{"b":1,"c":2,"b":3}}')
        self.assertEqual(error.message, "member 'b' appears twice")

    def test_colons_in_strings(self):
        """
        Colons in strings neither hide a repeat nor make a frame without
        one refused.
        """
        message = {"type": "message", "text": "at 10:30: lunch", "x": {"a": "b:c"}}
        self.assertEqual(wire.decode(wire.encode(message)), message)
        error = self.assertRaises(
            ProtocolError, wire.decode, b'{"type":"x","text":"a:b","type":"who"}')
        self.assertEqual(error.message, "member 'type' appears twice")

    @given(
        members=st.dictionaries(
            st.text(max_size=5),
            st.one_of(st.integers(), st.text(max_size=8), st.none()),
            min_size=1, max_size=6),
        data=st.data(),
    )
    def test_any_repeat_refused(self, members, data):
        """
        Whatever the members and their values (colons in them or not), an
        object that repeats one is refused, and one that does not decodes
        as it was.
        """
        members = dict(members, type="x")
        pairs = list(members.items())
        self.assertEqual(wire.decode(wire.encode(members)), members)
        repeated = data.draw(st.sampled_from(pairs))
        text = "{%s}" % ",".join(
            "%s:%s" % (json.dumps(k), json.dumps(v)) for k, v in pairs + [repeated])
        self.assertRaises(ProtocolError, wire.decode, text.encode("utf-8"))

    def test_escaped_spelling(self):
        """
        A member spelled with escapes is the same member.
        """
        self.assertRaises(ProtocolError, wire.decode, b'{"type":"x","\\u0074ype":"who"}')

    def test_many_members(self):
        """
        Finding the duplicate among many members costs in proportion to
        their number, not its square (a frame of 64 KiB with the repeat
        last took a second to refuse that way): counted in comparisons.
        """
        compared = []

        class Key(str):
            __hash__ = str.__hash__

            def __eq__(self, other):
                compared.append(1)
                return str.__eq__(self, other)

        pairs = [(Key("k%d" % (i,)), 1) for i in range(5000)]
        pairs.append((Key("k4999"), 2))
        # Private: keys that count comparisons cannot come through JSON.
        error = self.assertRaises(ValueError, wire._unique_members, pairs)
        self.assertEqual(str(error), "k4999")
        self.assertLess(len(compared), 5 * len(pairs))

    def test_quoted_back_safely(self):
        """
        The duplicated name is quoted back escaped and shortened.
        """
        name = "\x1b[2J" + "x" * 100
        payload = ('{"type":"x","%s":1,"%s":2}' % (name, name)).encode()
        payload = payload.replace(b"\x1b", b"\\u001b")
        error = self.assertRaises(ProtocolError, wire.decode, payload)
        self.assertNotIn("\x1b", error.message)
        self.assertLess(len(error.message), 60)


class NumberTests(SynchronousTestCase):
    """
    L{wire.is_number} and L{wire.is_whole}: what JSON decodes to a number.
    """

    def test_numbers(self):
        """
        Ints and floats are numbers; only ints are whole; bools, which
        Python counts as ints, and everything else are neither.
        """
        for value, number, whole in [
            (0, True, True), (-3, True, True), (2.5, True, False), (1.0, True, False),
            (True, False, False), (False, False, False), (None, False, False),
            ("1", False, False), ([1], False, False),
        ]:
            self.assertEqual(
                (wire.is_number(value), wire.is_whole(value)), (number, whole), repr(value))


class RequestIdTests(SynchronousTestCase):
    """
    L{wire.check_request_id}: the optional "id" of a client frame.
    """

    def test_absent(self):
        """
        No id is None.
        """
        self.assertIsNone(wire.check_request_id({"type": "who"}))

    def test_valid(self):
        """
        Strings of up to 64 characters and whole numbers JSON can carry
        exactly are ids.
        """
        for value in ["", "a", "x" * 64, 0, -5, 2**53 - 1, -(2**53 - 1)]:
            self.assertEqual(wire.check_request_id({"id": value}), value)

    def test_invalid(self):
        """
        Anything else is bad_frame.
        """
        for value in ["x" * 65, 2**53, 1.5, True, [], {}, "\ud800"]:
            error = self.assertRaises(ProtocolError, wire.check_request_id, {"id": value})
            self.assertEqual(error.code, wire.BAD_FRAME, value)


class CheckTextTests(SynchronousTestCase):
    """
    L{wire.check_text}.
    """

    def test_valid(self):
        """
        Text of 1 to max_text code points passes unchanged.
        """
        self.assertEqual(wire.check_text("a", 5), "a")
        self.assertEqual(wire.check_text("\U0001f600" * 5, 5), "\U0001f600" * 5)

    def test_too_long(self):
        """
        One code point over max_text is text_too_long.
        """
        error = self.assertRaises(ProtocolError, wire.check_text, "abcdef", 5)
        self.assertEqual(error.code, wire.TEXT_TOO_LONG)

    def test_not_text(self):
        """
        Missing, empty, non-string or lone-surrogate text is a bad frame.
        """
        for value in [None, "", 5, ["a"], "a\ud800"]:
            error = self.assertRaises(ProtocolError, wire.check_text, value, 10)
            self.assertEqual(error.code, wire.BAD_FRAME, value)


class CheckNickTests(SynchronousTestCase):
    """
    L{wire.check_nick}.
    """

    def test_valid(self):
        """
        1 to 32 of A-Z a-z 0-9 _ - are valid.
        """
        for name in ["a", "Alice_B-2", "x" * 32, "guest", "guests-1", "-_-"]:
            self.assertEqual(wire.check_nick(name), name)

    def test_invalid(self):
        """
        Empty, too long, other characters or a non-string are bad_nick.
        """
        for name in ["", "x" * 33, "al ice", "alice\n", "\u00e9", "a.b", None, 7]:
            error = self.assertRaises(ProtocolError, wire.check_nick, name)
            self.assertEqual(error.code, wire.BAD_NICK, name)

    def test_guest_prefix_reserved(self):
        """
        Names starting with guest-, in any case, are reserved.
        """
        for name in ["guest-1", "Guest-alice", "GUEST-"]:
            error = self.assertRaises(ProtocolError, wire.check_nick, name)
            self.assertEqual(error.code, wire.BAD_NICK)
            self.assertIn("reserved", error.message)


class CheckOptionalNumberTests(SynchronousTestCase):
    """
    L{wire.check_optional_number}.
    """

    def test_values(self):
        """
        Absent is None; ints and finite floats pass.
        """
        self.assertIsNone(wire.check_optional_number({}, "ts"))
        self.assertEqual(wire.check_optional_number({"ts": 3}, "ts"), 3)
        self.assertEqual(wire.check_optional_number({"ts": 1.5}, "ts"), 1.5)
        self.assertEqual(wire.check_optional_number({"ts": 10**100}, "ts"), 10**100)

    def test_invalid(self):
        """
        Booleans, strings and infinities are bad frames.
        """
        for value in [True, "1", [1], float("inf")]:
            error = self.assertRaises(
                ProtocolError, wire.check_optional_number, {"ts": value}, "ts"
            )
            self.assertEqual(error.code, wire.BAD_FRAME)


class LimitsTests(SynchronousTestCase):
    """
    The frame limit needed for the text limit.
    """

    def test_worst_case_message_fits(self):
        """
        A message event of max_text characters that each encode to the most
        bytes still fits in max_frame_for_text(max_text).
        """
        for max_text in [1, 100, wire.DEFAULT_MAX_TEXT]:
            for char in ["\x01", "\U0001f600", '"']:
                event = {
                    "type": "message",
                    "seq": 2**53,
                    "from": "x" * wire.NAME_MAX,
                    "text": char * max_text,
                    "time": 1.7e9 + 0.123456789,
                }
                self.assertLessEqual(
                    len(wire.encode(event)), wire.max_frame_for_text(max_text)
                )

    def test_defaults_consistent(self):
        """
        The default max_frame carries the default max_text.
        """
        self.assertLessEqual(
            wire.max_frame_for_text(wire.DEFAULT_MAX_TEXT), wire.DEFAULT_MAX_FRAME
        )


class SanitizeTests(SynchronousTestCase):
    """
    L{wire.sanitize} keeps the terminal safe.
    """

    def test_plain_unchanged(self):
        """
        Ordinary text, accents and emoji pass through.
        """
        text = "hello, w\u00f6rld \U0001f600 \u4e2d\u6587"
        self.assertEqual(wire.sanitize(text), text)

    def test_controls_escaped(self):
        """
        C0, DEL and C1 controls become visible escapes.
        """
        self.assertEqual(wire.sanitize("\x1b[2J"), "\\x1b[2J")
        self.assertEqual(wire.sanitize("a\nb\rc\td"), "a\\x0ab\\x0dc\\x09d")
        self.assertEqual(wire.sanitize("\x7f\x9b\x85"), "\\x7f\\x9b\\x85")
        self.assertEqual(wire.sanitize("\x00"), "\\x00")

    def test_unicode_tricks_escaped(self):
        """
        Direction overrides, isolates, line separators and lone surrogates
        are escaped.
        """
        self.assertEqual(wire.sanitize("a\u202eb"), "a\\u202eb")
        self.assertEqual(wire.sanitize("\u2066\u2028"), "\\u2066\\u2028")
        self.assertEqual(wire.sanitize("\ud800"), "\\ud800")

    def test_nothing_unsafe_left(self):
        """
        No character below U+00A0 other than printable ASCII survives.
        """
        everything = "".join(chr(c) for c in range(0xA0))
        cleaned = wire.sanitize(everything)
        self.assertTrue(all(0x20 <= ord(c) < 0x7F for c in cleaned))
        json.dumps(cleaned)

    def test_non_string(self):
        """
        Non-strings are rendered with str() first.
        """
        self.assertEqual(wire.sanitize(12), "12")


#: What check_optional_number lets through as a heartbeat's ts.
_numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


class HeartbeatAckTests(SynchronousTestCase):
    """
    L{wire.heartbeat_ack_frame} formats what the general encoder would.
    """

    @given(ts=st.none() | _numbers, now=_numbers)
    def test_same_as_encoder(self, ts, now):
        """
        Byte for byte the frame L{wire.encode_frame} makes, with or without
        C{ts}.
        """
        message = {"type": "heartbeat_ack"}
        if ts is not None:
            message["ts"] = ts
        message["now"] = now
        self.assertEqual(wire.heartbeat_ack_frame(ts, now), wire.encode_frame(message))

    def test_round_trip(self):
        """
        A client reads back the C{ts} it sent, exactly.
        """
        data = wire.heartbeat_ack_frame(1700000000.123456, 5)
        self.assertEqual(
            wire.decode(data[4:]), {"type": "heartbeat_ack", "ts": 1700000000.123456, "now": 5}
        )
        self.assertEqual(wire.PREFIX.unpack_from(data)[0], len(data) - 4)
