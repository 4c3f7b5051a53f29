# -*- test-case-name: tests.system.test_client_stdio -*-
"""
C{python -m twisted_chat.client}: the stdio chat client.
"""

from twisted_chat.client import run

run()
