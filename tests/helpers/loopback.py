"""
Tests on real loopback sockets (127.0.0.1) and child processes: servers,
clients and children that clean up after themselves, a bare protocol client,
and a transcript of what a L{ChatClient} shows.
"""

import signal
import socket
import sys

from twisted.internet import defer, reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import ProcessExitedAlready
from twisted.protocols.basic import Int32StringReceiver

from twisted_chat import wire
from twisted_chat.client import ChatClient, ChatClientProtocol
from twisted_chat.server import ChatServerFactory
from tests.helpers.processes import TWISTD, ChildProcess, child_env, temp_dir
from tests.helpers.waiting import Waiter


class Transcript(Waiter):
    """
    The lines a L{ChatClient} shows, with waiting for a given line.
    """

    def __init__(self):
        super().__init__()
        self.lines = []

    def __call__(self, line):
        """
        Collect a shown line.
        """
        self.lines.append(line)
        self.check()

    def wait_for(self, text):
        """
        @return: a Deferred that fires once a line contains C{text}.
        """
        return self.wait_until(lambda: any(text in line for line in self.lines))


class LoopbackMixin:
    """
    Servers, clients and child processes on loopback, all cleaned up.
    """

    #: trial's own per-test time limit (L{TestCase.timeout}), with trial's
    #: meaning: no server setting of that name lives on this mixin.
    timeout = 15

    def start_server(self, **settings):
        """
        Listen on 127.0.0.1, on a free port, with a real L{ChatServerFactory}.

        @return: a Deferred firing with the factory; its C{port} attribute is
            the port number.
        """
        factory = ChatServerFactory(clock=reactor, **settings)
        self.addCleanup(factory.shutdown, "test over", 1.0)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

        def listening(port):
            self.addCleanup(port.stopListening)
            factory.port = port.getHost().port
            return factory

        return endpoint.listen(factory).addCallback(listening)

    @defer.inlineCallbacks
    def connect_raw(self, port, protocol=None, source=None):
        """
        Connect a bare protocol (a L{RawClient} by default) to
        127.0.0.1:C{port}, from the loopback address C{source} if given;
        cleanup aborts it and waits until it is closed.

        @return: a Deferred firing with the protocol once connected.
        """
        protocol = RawClient() if protocol is None else protocol
        bind = None if source is None else (source, 0)
        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=bind), protocol)

        def cleanup():
            if protocol.transport.connected:
                protocol.transport.abortConnection()
            return protocol.lost

        self.addCleanup(cleanup)
        return protocol

    def connect_client(self, port, nick=None):
        """
        Connect a L{ChatClient} to 127.0.0.1:C{port} and wait for its welcome.

        @return: a Deferred firing with the client; its C{transcript} and
            C{errors} attributes collect what it shows.
        """
        transcript, errors = Transcript(), Transcript()
        chat = ChatClient(reactor, "127.0.0.1:%d" % (port,), transcript, errors, nick=nick)
        chat.transcript, chat.errors = transcript, errors
        # Wait for the client's own side of the connection to close too.
        closed = defer.Deferred()
        chat.done.addBoth(lambda result: (closed.callback(None), result)[1])
        self.addCleanup(lambda: (chat.quit(), closed)[1])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        d = connectProtocol(endpoint, ChatClientProtocol(reactor, chat))
        d.addCallback(lambda _: transcript.wait_for("* you are "))
        return d.addCallback(lambda _: chat)

    def spawn(self, args, program=sys.executable, **kwargs):
        """
        Run this Python (or C{program}) with C{args}, the checkout first on
        its path.

        @return: the L{ChildProcess}; it is killed in cleanup if still
            running.
        """
        env = child_env()
        # Its working directory; removed after the cleanup below has waited
        # for the child to end.
        workdir = temp_dir(self)
        child = ChildProcess()
        reactor.spawnProcess(child, program, [program] + args, env=env, path=workdir, **kwargs)

        def cleanup():
            if not child.running:
                return None
            for number in [signal.SIGCONT, signal.SIGKILL]:
                try:
                    child.signal(number)
                except ProcessExitedAlready:
                    pass
            return child.ended

        self.addCleanup(cleanup)
        return child

    @defer.inlineCallbacks
    def spawn_twistd(self, *options):
        """
        Run C{twistd -n chat} on a free loopback port.

        @return: a Deferred firing with the child and its port.
        """
        child = self.spawn(
            TWISTD
            + ["-n", "--pidfile=", "chat", "--port", "tcp:0:interface=127.0.0.1"]
            + list(options)
        )
        match = yield child.wait_for(rb"starting on (\d+)")
        return child, int(match.group(1))

    def spawn_client(self, port, *options):
        """
        Run the stdio client against 127.0.0.1:C{port}.
        """
        return self.spawn(
            ["-m", "twisted_chat.client", "--port", str(port)] + list(options)
        )

    def free_port(self):
        """
        A loopback port nobody listens on (bound, then released).
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


class RawClient(Int32StringReceiver):
    """
    A bare protocol client: it collects frames and sends only when told.
    """

    def __init__(self):
        self.messages = []
        self.lost = defer.Deferred()
        self.waiter = Waiter()

    def stringReceived(self, payload):
        """
        Decode and collect a frame.  L{Int32StringReceiver} API.
        """
        self.messages.append(wire.decode(payload))
        self.waiter.check()

    def connectionLost(self, reason):
        """
        Fire L{lost}.  L{Int32StringReceiver} API.
        """
        self.lost.callback(None)

    def wait_for_type(self, kind):
        """
        @return: a Deferred firing with the messages of type C{kind}, once
            there is one.
        """
        return self.waiter.wait_until(
            lambda: [m for m in self.messages if m["type"] == kind]
        )
