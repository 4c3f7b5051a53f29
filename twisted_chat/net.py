# -*- test-case-name: tests.unit.test_net -*-
"""
What the server, the client and the load tool all need of a TCP
connection: no Nagle delay, and one way to write an address.
"""


def no_delay(transport):
    """
    Turn off Nagle's algorithm on C{transport}, if it is TCP: chat frames are
    small and wanted now, and Nagle holding one back until the previous is
    acknowledged (which Linux delays up to 40 ms) costs tens of
    milliseconds a message.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:
            pass


def format_host_port(host, port):
    """
    C{host:port}, or C{[host]:port} for an IPv6 address.
    """
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def format_peer(address):
    """
    Render a transport address for the log: C{host:port}, C{[v6]:port}, or
    whatever else the address has to say for itself (a UNIX socket's).
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return format_host_port(host, port)
