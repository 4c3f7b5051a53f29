# -*- test-case-name: tests.unit.test_bench,tests.system.test_bench -*-
"""
C{python -m twisted_chat.bench}: the load and chaos tool.
"""

from twisted_chat.bench import run

run()
