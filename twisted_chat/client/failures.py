# -*- test-case-name: tests.unit.test_client,tests.system.test_tls -*-
"""
Why a connection attempt or a TLS handshake failed, in words for the user:
never the repr of an object.
"""

import os

from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectingCancelledError

from twisted_chat.wire import sanitize


def describe_connect_failure(reason):
    """
    Why a connection attempt failed, in words: never the repr of an object.
    """
    error = reason.value
    if isinstance(error, (defer.CancelledError, ConnectingCancelledError)):
        return "the attempt was cancelled"
    if isinstance(error, ConnectError) and isinstance(error.osError, int):
        return os.strerror(error.osError)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if all(isinstance(arg, (str, int, float)) for arg in error.args):
        text = str(error).rstrip(".")
        if text:
            return text
    return type(error).__name__


def _mismatched(error):
    """
    The names a certificate was checked for, from a service_identity
    error.
    """
    names = []
    for mismatch in getattr(error, "errors", []):
        wanted = getattr(mismatch, "mismatched_id", None)
        for field in ("hostname", "ip", "pattern"):
            value = getattr(wanted, field, None)
            if value is not None:
                if isinstance(value, bytes):
                    value = value.decode("ascii", "replace")
                names.append(sanitize(str(value)))
                break
    return names


def _openssl_reasons(error):
    """
    The reasons in a pyOpenSSL error (a list of (library, function, reason)).
    """
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(entry, tuple) and entry and isinstance(entry[-1], str) and entry[-1]:
            reasons.append(entry[-1])
    return "; ".join(reasons) or type(error).__name__


def describe_tls_failure(reason):
    """
    A line saying why TLS failed, from a connection's end reason; L{None}
    if it did not end because of TLS.
    """
    error = reason.value
    module = type(error).__module__ or ""
    if module.startswith("service_identity"):
        names = _mismatched(error)
        if names:
            return "the server's certificate is not for this host name (%s)" % (
                ", ".join(names),)
        return "the server's certificate is not for this host name"
    if not module.startswith("OpenSSL"):
        return None
    text = _openssl_reasons(error)
    if "certificate verify failed" in text:
        return ("the server's certificate is not trusted (certificate verify "
                "failed); --cafile trusts a private CA")
    if "wrong version number" in text or "record layer failure" in text:
        return "TLS handshake failed: the server does not speak TLS on this port"
    return "TLS handshake failed: %s" % (sanitize(text),)
