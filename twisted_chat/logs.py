"""
Log observers for C{twistd --logger}.

C{twistd --logger twisted_chat.logs.json} writes one JSON object a line to
standard output (twisted.logger's JSON format, without the RFC 7464 record
separator), for log shippers.  Every event about a client carries the
same fields, C{name} and C{peer}, besides its C{log_format}.
"""

import sys

from twisted.logger import jsonFileLogObserver


def json():
    """
    An observer writing JSON lines to standard output.
    """
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
