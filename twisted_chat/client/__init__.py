# -*- test-case-name: tests.unit.test_client -*-
"""
The stdio chat client: C{python -m twisted_chat.client}, or the
C{twisted-chat} console script (L{run}).

 - L{twisted_chat.client.protocol}: the session with the server
   (L{ChatClientProtocol}, L{ChatSession}).
 - L{twisted_chat.client.console}: what the user types and sees
   (L{Console}, its commands, L{render}; L{ChatClient}, a session with its
   console; L{ConsoleProtocol} on stdio).
 - L{twisted_chat.client.rooms}: room names and L{Room}, what the session
   knows of one room it is in.
 - L{twisted_chat.client.failures}: connection and TLS failures in words.
 - L{twisted_chat.client.cli}: L{Options}, L{main} and L{run}.

What the tests and the console script import is here too.
"""

from twisted_chat.client.cli import Options, main, run
from twisted_chat.client.console import (
    ChatClient,
    Console,
    ConsoleProtocol,
    render,
    shutdown_line,
)
from twisted_chat.client.failures import describe_connect_failure, describe_tls_failure
from twisted_chat.client.protocol import (
    DRAIN_TIMEOUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SHUTDOWN,
    EXIT_USAGE,
    INTERRUPT_GRACE,
    OUTBOX_HIGH,
    RTT_WINDOW,
    ChatClientProtocol,
    ChatSession,
    IChatView,
)

__all__ = [
    "DRAIN_TIMEOUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_SHUTDOWN",
    "EXIT_USAGE",
    "INTERRUPT_GRACE",
    "OUTBOX_HIGH",
    "RTT_WINDOW",
    "ChatClient",
    "ChatClientProtocol",
    "ChatSession",
    "Console",
    "ConsoleProtocol",
    "IChatView",
    "Options",
    "describe_connect_failure",
    "describe_tls_failure",
    "main",
    "render",
    "run",
    "shutdown_line",
]
