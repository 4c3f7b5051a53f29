"""
Property tests (hypothesis): whatever bytes arrive, split however, the
decoder and the protocols never raise, answer only with documented error
codes, and leave no timer behind.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat import wire
from twisted_chat.client import ChatClient, ChatClientProtocol
from twisted_chat.server import ChatServerFactory
from tests.helpers.memory import frame, parse_frames

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)

messages = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["heartbeat", "message", "nick", "who", "quit", "resume", "welcome", "x"]
        )
        | st.text(max_size=10)
    },
    optional={
        "text": json_values | st.text(max_size=120),
        "name": json_values | st.from_regex(r"[A-Za-z0-9_-]{1,34}", fullmatch=True),
        "ts": json_values,
        "message": json_values,
        "session": json_values,
        "last_seq": json_values,
    },
)


def encoded(message):
    return json.dumps(message).encode("utf-8")


# A frame: a well-formed message, any bytes, or a lying length prefix.
frames = st.one_of(
    messages.map(lambda m: wire.frame(encoded(m))),
    st.binary(max_size=300).map(wire.frame),
    st.binary(min_size=4, max_size=40),
)
streams = st.lists(frames, max_size=12).map(b"".join)


def split(data, cuts):
    """
    Cut C{data} at the offsets C{cuts}.
    """
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return [piece for piece in pieces if piece]


class DecoderFuzzTests(SynchronousTestCase):
    """
    L{wire.decode} on anything.
    """

    @FUZZ
    @given(st.binary(max_size=500) | messages.map(encoded))
    def test_decode_anything(self, payload):
        """
        decode returns a dict with a string type, or raises bad_frame;
        nothing else.
        """
        try:
            message = wire.decode(payload)
        except wire.ProtocolError as e:
            self.assertEqual(e.code, wire.BAD_FRAME)
        else:
            self.assertIsInstance(message["type"], str)


class ServerFuzzTests(SynchronousTestCase):
    """
    The server protocol fed any stream, split anywhere.
    """

    @FUZZ
    @given(data=streams, cuts=st.lists(st.integers(0, 10000), max_size=20))
    def test_any_stream(self, data, cuts):
        """
        Nothing escapes dataReceived; the fuzzed client gets only documented
        error codes in well-formed frames; the others go on being served;
        no timer outlives the connection.
        """
        clock = Clock()
        factory = ChatServerFactory(
            clock=clock, max_frame=1024, max_text=100, timeout=30.0, heartbeat_interval=10.0
        )

        def connect(port):
            address = IPv4Address("TCP", "127.0.0.1", port)
            protocol = factory.buildProtocol(address)
            transport = StringTransport(peerAddress=address)
            protocol.makeConnection(transport)
            return protocol, transport

        observer, observer_t = connect(1)
        observer.dataReceived(frame(type="heartbeat"))
        fuzzed, fuzzed_t = connect(2)
        for piece in split(data, cuts):
            fuzzed.dataReceived(piece)
        for message in parse_frames(fuzzed_t.value()):
            if message["type"] == "error":
                self.assertIn(message["code"], wire.ERROR_CODES)
        for event in parse_frames(observer_t.value()):
            if event["type"] == "leave":
                self.assertIn(event["reason"], wire.LEAVE_REASONS)

        observer_t.clear()
        observer.dataReceived(frame(type="message", text="still served"))
        self.assertIn("still served", [m.get("text") for m in parse_frames(observer_t.value())])

        fuzzed.connectionLost(Failure(ConnectionDone()))
        observer.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(len(factory.connections), 0)
        self.assertEqual(len(factory.room), 0)


class ClientFuzzTests(SynchronousTestCase):
    """
    The client protocol fed any stream from a hostile server.
    """

    @FUZZ
    @given(data=streams, cuts=st.lists(st.integers(0, 10000), max_size=20))
    def test_any_stream(self, data, cuts):
        """
        Nothing escapes dataReceived, nothing unsafe reaches the terminal,
        and no timer outlives the connection.
        """
        clock = Clock()
        lines = []
        client = ChatClient(clock, "h:1", lines.append, lines.append)
        protocol = ChatClientProtocol(clock, client)
        transport = StringTransport()
        protocol.makeConnection(transport)
        welcome = frame(type="welcome", protocol=1, name="guest-1", heartbeat_interval=1.0,
                        timeout=3.0, max_frame=1024, max_text=100, seq=0, session="s")
        for piece in split(welcome + data, cuts):
            protocol.dataReceived(piece)
            clock.advance(0.5)
        for line in lines:
            self.assertEqual(line, wire.sanitize(line))
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])
