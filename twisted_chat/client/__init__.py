# -*- test-case-name: tests.test_client -*-
"""
The stdio chat client: C{python -m twisted_chat.client}, or the
C{twisted-chat} console script (L{run}).
"""

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
    ChatClient,
    ChatClientProtocol,
    ConsoleProtocol,
    Options,
    _ReportingEndpoint,
    describe_connect_failure,
    describe_tls_failure,
    main,
    render,
    run,
    shutdown_line,
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
    "ConsoleProtocol",
    "Options",
    "_ReportingEndpoint",
    "describe_connect_failure",
    "describe_tls_failure",
    "main",
    "render",
    "run",
    "shutdown_line",
]
