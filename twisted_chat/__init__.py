"""
twisted-chat: a TCP chat server and stdio client built on Twisted.

Peers exchange length-prefixed JSON frames (see docs/protocol.rst), and both
sides use heartbeats so that a dead peer is noticed within seconds instead of
the hours TCP keepalive would take.
"""

__version__ = "0.1.0"
