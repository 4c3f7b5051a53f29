# -*- test-case-name: tests.unit.test_client,tests.system.test_client_stdio,tests.system.test_tls -*-
"""
The client's command line: L{Options} (with what C{--tls} connects with),
L{main} (a L{react} main) and L{run}, the C{twisted-chat} console script.
"""

import getpass
import importlib
import os
import sys

from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python import usage
from zope.interface import implementer

import twisted_chat
from twisted_chat import wire
from twisted_chat.client.console import ChatClient, ConsoleProtocol
from twisted_chat.client.protocol import EXIT_USAGE, ChatClientProtocol
from twisted_chat.net import format_host_port


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
    importlib.import_module("service_identity")  # host name checks need it
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
