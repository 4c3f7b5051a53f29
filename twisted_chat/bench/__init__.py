# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
The twisted-chat load and chaos tool: C{python -m twisted_chat.bench}
(also installed as C{twisted-chat-bench}), behind the C{bench} extra:
C{pip install 'twisted-chat[bench]'}.

C{load} opens many connections to a server, makes some of them send, and
reports deliveries per second, end-to-end latency (an HDR histogram),
heartbeat round trips, and integrity: every receiver saw a gap-free C{seq}
and every sender's messages in order.  It spreads the connections over
several worker processes (C{--procs}) so that the tool is not the
bottleneck, and says how busy each was.

C{chaos} starts a server (or uses one given), reproduces the classic TCP
failure cases one by one and reports how long each side took to notice.

Only addresses the user gives are contacted; the default is 127.0.0.1.
Every run is bounded in time and stops by itself.

The parts:

  - L{cli}: the command line and L{cli.main}.
  - L{load}: a load run from the parent's side, and its report.
  - L{worker}: one worker process of a load run, and its connections.
  - L{chaos}: the failure cases, timed.
  - L{servers}: a chat server as a child process, and its memory; what
    benchmarks/*.py use.  Like this module, it needs nothing of the extra.
"""

import importlib
import sys

#: The modules of the bench extra, each with the distribution that
#: installs it (what pip is told).
EXTRA = (("hdrh.histogram", "hdrhistogram"), ("tqdm", "tqdm"))

#: The exit status when the extra is missing: the command cannot run as
#: installed, which is what a bad command line and C{twistd chat
#: --metrics} without its extra exit with too.
MISSING_EXTRA_STATUS = 2


def missing_extra(import_module=importlib.import_module):
    """
    The distributions of the bench extra whose modules cannot be imported.

    @param import_module: imports a module by name (tests pass one that
        fails).
    @return: a list of distribution names, empty when all are there.
    """
    missing = []
    for module, distribution in EXTRA:
        try:
            import_module(module)
        except ImportError:
            missing.append(distribution)
    return missing


def run(argv=None, import_module=importlib.import_module, err=None):
    """
    Console-script entry point: run the tool, or, without the bench extra,
    say so in one line on stderr and exit with L{MISSING_EXTRA_STATUS}.

    @param argv: the arguments; C{sys.argv[1:]} by default.
    @param import_module: see L{missing_extra}.
    @param err: where the one line goes; C{sys.stderr} by default.
    """
    missing = missing_extra(import_module)
    if missing:
        (sys.stderr if err is None else err).write(
            "twisted-chat-bench needs the bench extra: pip install "
            "'twisted-chat[bench]' (missing: %s)\n" % (", ".join(missing),)
        )
        raise SystemExit(MISSING_EXTRA_STATUS)
    from twisted.internet import task

    from twisted_chat.bench.cli import main

    task.react(main, sys.argv[1:] if argv is None else argv)
